"""pg_dump/pg_restore discovery and the streaming zip writer."""

from __future__ import annotations

import io
import zipfile
import zlib

import pytest
from isal import isal_zlib

from backend.core.config import ConfigError, Settings
from backend.domain.lifecycle import ArchiveMember
from backend.infrastructure.exports import ZipStream
from backend.infrastructure.pg_tools import PgToolError, find_tools, libpq_target


def fake_tools(folder, major: int):
    folder.mkdir(parents=True)
    for tool in ("pg_dump", "pg_restore"):
        path = folder / tool
        path.write_text(f"#!/bin/sh\necho '{tool} (PostgreSQL) {major}.3'\n")
        path.chmod(0o755)
    return folder


def test_configured_tools_of_the_server_major_are_used(tmp_path):
    folder = fake_tools(tmp_path / "17", 17)
    tools = find_tools(17, folder)
    assert (tools.major, tools.pg_dump) == (17, str(folder / "pg_dump"))


def test_a_major_mismatch_is_one_clear_line(tmp_path):
    folder = fake_tools(tmp_path / "15", 15)
    with pytest.raises(PgToolError) as raised:
        find_tools(18, folder)
    message = str(raised.value)
    assert "\n" not in message
    assert "PostgreSQL 18" in message and "is 15" in message and "PG_BIN_DIR" in message


def test_a_missing_configured_directory_is_reported(tmp_path):
    with pytest.raises(PgToolError) as raised:
        find_tools(18, tmp_path / "nowhere")
    assert "none found" in str(raised.value)


def test_the_password_travels_in_the_environment_not_the_command_line():
    uri, env = libpq_target("postgresql://owner:s3cret@db.internal:5432/saas")
    assert "s3cret" not in uri
    assert uri == "postgresql://owner@db.internal:5432/saas"
    assert env["PGPASSWORD"] == "s3cret"


def _chunks_counting(parts, pulled):
    for part in parts:
        pulled.append(len(part))
        yield part


def test_zip_stream_writes_a_valid_zip_as_a_stream_without_seeking():
    pulled = []
    members = [
        ArchiveMember("tables/a.csv", _chunks_counting([b"id,name\n"] + [b"1,x\n" * 10_000] * 50, pulled)),
        ArchiveMember("media/f", [b"\x00\x01" * 1000], compress=False),
    ]
    stream = ZipStream().stream(members)
    first = next(iter(stream))
    assert first and len(pulled) < 51, "bytes come out before the whole member was read"
    data = first + b"".join(stream)
    result = zipfile.ZipFile(io.BytesIO(data))
    assert result.testzip() is None
    assert result.read("tables/a.csv") == b"id,name\n" + b"1,x\n" * 500_000
    assert result.getinfo("media/f").compress_type == zipfile.ZIP_STORED
    assert result.read("media/f") == b"\x00\x01" * 1000


def test_zip_stream_deflates_with_isal_and_any_inflater_reads_it():
    data = b"".join(b"%d,client %d,2020-01-01 00:00:00+00\n" % (n, n % 97) for n in range(20_000))
    zipped = b"".join(ZipStream().stream([ArchiveMember("tables/t.csv", [data])]))
    result = zipfile.ZipFile(io.BytesIO(zipped))
    info = result.getinfo("tables/t.csv")
    assert info.compress_type == zipfile.ZIP_DEFLATED
    assert result.read(info) == data  # inflated by the stdlib's zlib, CRC checked
    isal_level1 = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)
    zlib_level1 = zlib.compressobj(1, zlib.DEFLATED, -15)
    assert info.compress_size == len(isal_level1.compress(data) + isal_level1.flush())
    assert info.compress_size != len(zlib_level1.compress(data) + zlib_level1.flush())


def test_retention_settings_come_from_the_environment():
    settings = Settings.from_env({"DELETION_GRACE_DAYS": "0", "AUDIT_RETENTION_DAYS": "90"})
    assert (settings.deletion_grace_days, settings.audit_retention_days) == (0, 90)
    assert settings.media_retention_days == 30 and settings.export_retention_days == 14
    assert settings.exports_dir == settings.var_dir / "exports"
    with pytest.raises(ConfigError):
        Settings.from_env({"MEDIA_RETENTION_DAYS": "-1"})
