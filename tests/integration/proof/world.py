"""The isolation fuzzer's world: three workspaces, each with a worker and two client users,
and the model of who owns what that every answer is compared with."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from psycopg import sql
from sqlalchemy import insert

from backend.core.db import set_tenant_search_path
from backend.core.tenancy import schema_identifier
from backend.infrastructure.sql.clients import clients
from tests.conftest import worker_headers
from tests.integration.proof.seed import add_client_user, provision
from tests.owner import owner_engine

SLOTS = 12  # appointment start times a step may pick: overlaps happen, on purpose
FIRST_SLOT = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)


def slot_times(slot: int) -> tuple[str, str]:
    starts = FIRST_SLOT + timedelta(hours=slot)
    return starts.isoformat(), (starts + timedelta(minutes=50)).isoformat()


@dataclass(frozen=True)
class Person:
    """A client user: their login and the client record it is linked to."""

    tenant: int
    client_id: str
    user_id: str
    headers: dict


@dataclass(frozen=True)
class Workspace:
    index: int
    tenant: object
    worker: dict
    people: tuple[Person, Person]


@dataclass
class Client:
    id: str
    tenant: int
    name: str
    linked: bool = False  # a client user logs in as this record


@dataclass
class Appointment:
    id: str
    tenant: int
    client_id: str
    slot: int
    shared_notes: str
    status: str = "scheduled"


@dataclass
class Media:
    id: str
    tenant: int
    client_id: str
    uploaded_by: str  # "worker" or the uploading client user's id


@dataclass
class Model:
    """What exists, in creation order (draws stay reproducible), and what was deleted."""

    clients: list[Client] = field(default_factory=list)
    appointments: list[Appointment] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    gone: list[tuple[str, int, str]] = field(default_factory=list)  # (kind, tenant, id)

    def of(self, kind: str, tenant: int) -> list:
        return [item for item in getattr(self, kind) if item.tenant == tenant]

    def slot_taken(self, tenant: int, slot: int) -> bool:
        return any(
            a.tenant == tenant and a.slot == slot and a.status != "cancelled" for a in self.appointments
        )

    def remove(self, kind: str, item) -> None:
        getattr(self, kind).remove(item)
        self.gone.append((kind, item.tenant, item.id))

    def remove_client(self, client: Client) -> None:
        """A deleted client takes its appointments along; its media are soft-deleted."""
        self.remove("clients", client)
        for appointment in [a for a in self.appointments if a.client_id == client.id]:
            self.remove("appointments", appointment)
        for item in [m for m in self.media if m.client_id == client.id]:
            self.remove("media", item)


def build_world(runtime, size: int = 3) -> list[Workspace]:
    """Provision the workspaces and their users once; the rows are reset before every example
    (`reset_rows` also makes the client records the users are linked to)."""
    workspaces = []
    for index in range(size):
        tenant = provision(runtime, f"iso{index}")
        people = []
        for _ in range(2):
            client_id = uuid.uuid4()
            user_id, headers = add_client_user(runtime, tenant, client_id, "Person")
            people.append(Person(index, str(client_id), str(user_id), headers))
        workspaces.append(Workspace(index, tenant, worker_headers(runtime, tenant), tuple(people)))
    return workspaces


def reset_rows(runtime, tenant, people: list[Person]) -> None:
    """Empty the workspace's tables, then put back the client records its users log in as."""
    schema = schema_identifier(tenant.schema_name)
    statement = sql.SQL("TRUNCATE {}.media, {}.appointments, {}.clients").format(schema, schema, schema)
    with owner_engine().begin() as connection:
        connection.exec_driver_sql(statement.as_string(None))
        if people:
            set_tenant_search_path(connection, tenant.schema_name)
            connection.execute(
                insert(clients), [{"id": uuid.UUID(p.client_id), "name": "Person"} for p in people]
            )
