"""A generated SDK as a test: openapi-python-client builds a Python client from the live
server's /api/openapi.json, mypy --strict checks the generated package, and the whole journey
runs through it against a gunicorn started here. A change that breaks generated clients (a
renamed operationId, a binary answer the generator cannot read, a schema name that collides
with the generator's classes, a model that cannot round-trip) fails this test."""

from __future__ import annotations

import datetime as dt
import importlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import uuid
import zipfile
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from tests.integration.ops.test_gunicorn import free_port, get, wait_for

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
PACKAGE = "saas_sdk"
PASSWORD = "journey-password-1"
TOKEN_RE = re.compile(r"token=([A-Za-z0-9_-]+)")
# A real PNG: the upload's type is sniffed from the bytes.
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture(scope="module")
def live(app, database, tmp_path_factory, ready_workspaces):
    """gunicorn (one worker) serving the API's app (runtime role only) on a free port, with its
    own VAR_DIR (mail files, media, exports); `app` has migrated the shared schema, and a
    workspace is ready for the journey's signup (the worker's refill)."""
    ready_workspaces(2)
    tmp = tmp_path_factory.mktemp("sdk")
    port = free_port()
    var_dir = tmp / "var"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "APP_URL": f"http://127.0.0.1:{port}",
        "DATABASE_URL": database["runtime"],
        "VAR_DIR": str(var_dir),
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "2",
        "LOG_LEVEL": "WARNING",
    }
    processes = []
    # The API (runtime URL only) enqueues its mail; the worker (the owner URL too; without the
    # periodic retention runs: none of its own in the shared test database) delivers it.
    commands = {
        "gunicorn": ([str(BIN / "gunicorn"), "-c", "backend/gunicorn_conf.py", "backend:create_api()"], env),
        "worker": (
            [str(BIN / "flask"), "--app", "backend", "worker", "--no-schedule"],
            {**env, "MIGRATION_DATABASE_URL": database["owner"]},
        ),
    }
    for name, (command, environment) in commands.items():
        with (tmp / f"{name}.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get(f"{base}/health")[0] == 200, "gunicorn to answer")
        yield base, var_dir / "mail", tmp
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)


@pytest.fixture(scope="module")
def sdk(live):
    """The client package generated from the live document, type-checked, then imported."""
    base, _, tmp = live
    status, document = get(f"{base}/api/openapi.json")
    assert status == 200
    spec = tmp / "openapi.json"
    spec.write_bytes(document)
    config = tmp / "generator.json"
    config.write_text(json.dumps({"post_hooks": []}))  # no formatter needed offline
    out = tmp / PACKAGE
    generated = subprocess.run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            f"--path={spec}",
            f"--config={config}",
            f"--output-path={out}",
            "--meta=none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # A warning means an operation or a response was left out of the client.
    report = generated.stdout + generated.stderr
    assert generated.returncode == 0 and "Warning" not in generated.stdout, report
    checked = subprocess.run(
        [str(BIN / "mypy"), "--strict", "--no-incremental", "--cache-dir=/dev/null", PACKAGE],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    sys.path.insert(0, str(tmp))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def _newest_token(mail_dir: Path, to: str) -> str | None:
    for path in sorted(mail_dir.glob("*.eml"), reverse=True):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if message["To"].lower() == to.lower():
            match = TOKEN_RE.search(message.get_content())
            assert match
            return match.group(1)
    return None


def mailed_token(mail_dir: Path, to: str) -> str:
    """The newest link mailed to `to`, once the worker delivered it."""
    wait_for(lambda: _newest_token(mail_dir, to) is not None, f"a mail to {to}")
    return _newest_token(mail_dir, to)


def api(sdk, area: str, operation: str):
    return importlib.import_module(f"{PACKAGE}.api.{area}.{operation}")


def test_the_whole_journey_through_the_generated_client(sdk, live):
    base, mail_dir, _ = live
    models = importlib.import_module(f"{PACKAGE}.models")
    types = importlib.import_module(f"{PACKAGE}.types")
    anonymous = sdk.Client(base_url=base, raise_on_unexpected_status=True)
    slug = f"sdk-{uuid.uuid4().hex[:10]}"
    email = f"{slug}@example.com"

    # signup, verify, login
    signed = api(sdk, "identity", "signup").sync_detailed(
        client=anonymous,
        body=models.Signup(
            email=email, password=PASSWORD, name="Wendy", workspace_name="Journey", workspace_slug=slug
        ),
    )
    assert signed.status_code == 201, signed.content
    verified = api(sdk, "identity", "verify_email").sync_detailed(
        client=anonymous, body=models.Verify(token=mailed_token(mail_dir, email))
    )
    assert verified.status_code == 200, verified.content
    pair = api(sdk, "identity", "login").sync(
        client=anonymous, body=models.TokenRequest(email=email, password=PASSWORD)
    )
    assert isinstance(pair, models.TokenResponse)
    worker = sdk.AuthenticatedClient(base_url=base, token=pair.access_token, raise_on_unexpected_status=True)
    me = api(sdk, "identity", "get_me").sync(client=worker)
    assert isinstance(me, models.Me) and me.role == "worker"

    # clients: create, read-modify-write, list
    created = api(sdk, "clients", "create_client").sync(
        client=worker, body=models.ClientRecordCreate(name="Carla", email=f"carla-{slug}@example.com")
    )
    assert isinstance(created, models.ClientRecord) and isinstance(created.id, uuid.UUID)
    fetched = api(sdk, "clients", "get_client").sync(created.id, client=worker)
    assert isinstance(fetched, models.ClientRecord)
    changes = models.ClientRecordUpdate.from_dict({**fetched.to_dict(), "phone": "+49 30 1234"})
    updated = api(sdk, "clients", "update_client").sync_detailed(created.id, client=worker, body=changes)
    assert updated.status_code == 200, updated.content
    assert isinstance(updated.parsed, models.ClientRecord) and updated.parsed.phone == "+49 30 1234"
    listed = api(sdk, "clients", "list_clients").sync_detailed(client=worker)
    assert isinstance(listed.parsed, list) and [c.id for c in listed.parsed] == [created.id]
    # The totals: the X-Pagination header, a JSON object the generated model reads.
    totals = models.PaginationMetadata.from_dict(json.loads(listed.headers["X-Pagination"]))
    assert (totals.total, totals.total_pages) == (1, 1)

    # appointments, the second overlapping one refused
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=2)
    booking = models.AppointmentCreate(
        client_id=created.id, starts_at=start, ends_at=start + dt.timedelta(hours=1)
    )
    first = api(sdk, "appointments", "create_appointment").sync_detailed(client=worker, body=booking)
    assert first.status_code == 201, first.content
    overlap = api(sdk, "appointments", "create_appointment").sync_detailed(client=worker, body=booking)
    assert overlap.status_code == 409
    assert isinstance(overlap.parsed, models.Error) and overlap.parsed.detail == "appointment_overlap"

    # media: upload, then the same bytes back
    upload = models.MediaUpload(
        file=types.File(payload=io.BytesIO(PNG), file_name="dot.png", mime_type="image/png"),
        client_id=created.id,
    )
    media = api(sdk, "media", "upload_media").sync(client=worker, body=upload)
    assert isinstance(media, models.Media) and media.content_type == "image/png"
    content = api(sdk, "media", "download_media_content").sync(media.id, client=worker)
    assert isinstance(content, types.File) and content.payload.read() == PNG

    # invitation, then the client logs in and sees their appointment
    invited = api(sdk, "identity", "invite_client").sync_detailed(created.id, client=worker)
    assert invited.status_code == 201, invited.content
    client_email = f"carla-{slug}@example.com"
    accepted = api(sdk, "identity", "accept_invitation").sync_detailed(
        client=anonymous,
        body=models.AcceptInvitation(token=mailed_token(mail_dir, client_email), password=PASSWORD),
    )
    assert accepted.status_code == 200, accepted.content
    client_pair = api(sdk, "identity", "login").sync(
        client=anonymous, body=models.TokenRequest(email=client_email, password=PASSWORD)
    )
    assert isinstance(client_pair, models.TokenResponse)
    as_client = sdk.AuthenticatedClient(base_url=base, token=client_pair.access_token)
    client_me = api(sdk, "identity", "get_me").sync(client=as_client)
    assert isinstance(client_me, models.Me) and client_me.client_id == created.id  # what uploads take
    own = api(sdk, "appointments", "list_appointments").sync(client=as_client)
    assert isinstance(own, list) and [a.client_id for a in own] == [created.id]

    # refresh rotation; presenting the spent token again revokes the family
    rotated = api(sdk, "identity", "refresh_token").sync(
        client=anonymous, body=models.Refresh(refresh_token=pair.refresh_token)
    )
    assert isinstance(rotated, models.TokenResponse) and rotated.refresh_token != pair.refresh_token
    reused = api(sdk, "identity", "refresh_token").sync_detailed(
        client=anonymous, body=models.Refresh(refresh_token=pair.refresh_token)
    )
    assert reused.status_code == 401
    assert isinstance(reused.parsed, models.Error) and reused.parsed.detail == "refresh_token_reused"

    # export: a zip whose tables and media are there
    worker = sdk.AuthenticatedClient(base_url=base, token=_login(sdk, anonymous, models, email).access_token)
    archive = api(sdk, "exports", "download_export").sync(client=worker)
    assert isinstance(archive, types.File)
    with zipfile.ZipFile(io.BytesIO(archive.payload.read())) as unzipped:
        names = set(unzipped.namelist())
        assert {"manifest.json", "README.md", "tables/csv-metadata.json", "tables/clients.csv"} <= names
        assert unzipped.read(f"media/{media.id}.png") == PNG  # named with the type's extension

    # logout: the session's refresh token is dead
    out = api(sdk, "identity", "logout").sync_detailed(client=as_client)
    assert out.status_code == 204
    dead = api(sdk, "identity", "refresh_token").sync_detailed(
        client=anonymous, body=models.Refresh(refresh_token=client_pair.refresh_token)
    )
    assert dead.status_code == 401


def test_answers_always_present_are_plain_attributes(sdk):
    """`required` on response fields: the generated models type them `X` (or `X | None`),
    never `X | Unset`; only the fields workers alone receive stay optional."""
    models = importlib.import_module(f"{PACKAGE}.models")
    always = {
        "ClientRecord": {"id", "name", "email", "phone", "notes", "created_at", "updated_at"},
        "Appointment": {"id", "client_id", "starts_at", "ends_at", "status", "shared_notes", "cancelled_at"},
        "Media": {"id", "client_id", "appointment_id", "filename", "content_type", "size_bytes", "sha256"},
        "Me": {"user", "tenant", "role", "access_mode", "client_id"},
        "TokenResponse": {"access_token", "token_type", "expires_in", "refresh_token"},
        "PaginationMetadata": {"total", "total_pages"},
    }
    for name, fields in always.items():
        annotations = getattr(models, name).__annotations__
        unset = sorted(field for field in fields if "Unset" in str(annotations[field]))
        assert not unset, f"{name}: {unset} typed as possibly unset"
    workers_only = models.Appointment.__annotations__
    assert all("Unset" in str(workers_only[field]) for field in ("notes", "created_at", "updated_at"))


def _login(sdk, anonymous, models, email: str):
    pair = api(sdk, "identity", "login").sync(
        client=anonymous, body=models.TokenRequest(email=email, password=PASSWORD)
    )
    assert isinstance(pair, models.TokenResponse)
    return pair
