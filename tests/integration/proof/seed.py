"""Populated workspaces for the proof suite, made through the API, with a unique marker
string in every piece of text a tenant stores (client names, emails, notes, appointment
notes, media file names, and a text chunk inside each uploaded PNG).

A marker says whose data it is; a fuzzer then searches every response for markers the
caller must not see (another tenant's, another client's, the worker's private notes)."""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from backend.domain.identity import Role
from backend.infrastructure.sql.identity import SqlMembershipRepository, SqlUserRepository
from tests.conftest import provision_workspace, unique_slug
from tests.owner import owner_engine
from tests.sessions import session_token

API = "/api/v1"


def png_with_text(text: str) -> bytes:
    """A real 1x1 PNG carrying `text` in a tEXt chunk: a download of its bytes shows whose it is."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"Comment\x00" + text.encode())
        + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + chunk(b"IEND", b"")
    )


def upcoming(days: float) -> str:
    """An instant `days` from now, whole hours, with offset (upcoming, cancellable)."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return (base + timedelta(days=days)).isoformat()


@dataclass
class Person:
    """A client user of a seeded workspace: their client record and their token."""

    client_id: uuid.UUID
    user_id: uuid.UUID
    headers: dict
    visible: set[str] = field(default_factory=set)  # markers this client may receive
    # Their own entry in the client book (name, email; never the worker's note on it): only
    # their own data download (GET /me/data) shows it to them.
    record: set[str] = field(default_factory=set)


@dataclass
class Seeded:
    tenant: object
    worker: dict
    people: list[Person]
    markers: set[str]  # every marker stored in this workspace
    private: set[str]  # the worker's private notes: never shown to a client
    client_records: set[str]  # client book entries: workers only


class Markers:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.all: set[str] = set()

    def new(self, kind: str) -> str:
        value = f"mk{self.tag}{kind}{uuid.uuid4().hex[:16]}".lower()  # emails come back lowercased
        self.all.add(value)
        return value


def provision(runtime, label: str):
    """A workspace made the way operators make one, its owner verified."""
    return provision_workspace(runtime, unique_slug(label))


def session_headers(runtime, tenant, user_id: uuid.UUID) -> dict:
    """Bearer headers of a new session of this member of the tenant."""
    return {"Authorization": f"Bearer {session_token(runtime, user_id=user_id, tenant_id=tenant.id)}"}


def add_client_user(runtime, tenant, client_id: uuid.UUID, name: str) -> tuple[uuid.UUID, dict]:
    """A client user linked to an existing client record (what accepting an invitation makes)."""
    user_id = uuid.uuid4()
    with owner_engine().begin() as connection:
        SqlUserRepository(connection).add(user_id, f"c-{user_id.hex[:12]}@example.com", name, None)
        SqlMembershipRepository(connection).add(
            user_id=user_id, tenant_id=tenant.id, role=Role.CLIENT, client_id=client_id
        )
    token = session_token(runtime, user_id=user_id, tenant_id=tenant.id)
    return user_id, {"Authorization": f"Bearer {token}"}


def _ok(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    return response.json


def upload(http, headers: dict, content: bytes, filename: str, **form) -> object:
    body = {key: str(value) for key, value in form.items() if value is not None}
    body["file"] = (io.BytesIO(content), filename)
    return http.post(f"{API}/media", data=body, headers=headers, content_type="multipart/form-data")


def seed_workspace(http, runtime, tenant, worker: dict, *, tag: str, people: int = 2, extra_clients: int = 1):
    """Fill a workspace through the API: `people` clients with a login, `extra_clients`
    without, each with two upcoming appointments and a file (the worker's; the people also
    upload one of their own). Every text carries its own marker."""
    marks = Markers(tag)
    seeded = Seeded(tenant, worker, [], marks.all, set(), set())
    slot = 0
    for index in range(people + extra_clients):
        name, note = marks.new("name"), marks.new("cnote")
        client = _ok(
            http.post(
                f"{API}/clients",
                json={"name": name, "email": f"{marks.new('mail')}@example.com", "notes": note},
                headers=worker,
            ),
            201,
        )
        seeded.client_records.update({name, note, client["email"].split("@")[0]})
        visible: set[str] = set()
        for _ in range(2):
            slot += 1
            private, shared = marks.new("anote"), marks.new("ashared")
            _ok(
                http.post(
                    f"{API}/appointments",
                    json={
                        "client_id": client["id"],
                        "starts_at": upcoming(slot),
                        "ends_at": upcoming(slot + 1 / 24),
                        "notes": private,
                        "shared_notes": shared,
                    },
                    headers=worker,
                ),
                201,
            )
            seeded.private.add(private)
            visible.add(shared)
        filename, inside = marks.new("file"), marks.new("png")
        uploaded = upload(http, worker, png_with_text(inside), f"{filename}.png", client_id=client["id"])
        _ok(uploaded, 201)
        visible.update({filename, inside})
        if index < people:
            user_id, headers = add_client_user(runtime, tenant, uuid.UUID(client["id"]), "Person")
            filename, inside = marks.new("file"), marks.new("png")
            _ok(upload(http, headers, png_with_text(inside), f"{filename}.png", client_id=client["id"]), 201)
            visible.update({filename, inside})
            record = {name, client["email"].split("@")[0]}
            seeded.people.append(Person(uuid.UUID(client["id"]), user_id, headers, visible, record))
    return seeded
