"""Helpers for identity tests: sign up through the API, read the mailed token, put a
tenant or a user in a given state, make members with tokens."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy import insert, update

from backend.core.config import RateLimits
from backend.core.db import set_tenant_search_path
from backend.domain.identity import Role
from backend.infrastructure.access_events import AccessChange
from backend.infrastructure.sql.clients import clients
from backend.infrastructure.sql.identity import SqlMembershipRepository, SqlUserRepository, users
from backend.infrastructure.sql.tenants import tenants
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service.tenants import provision_tenant
from tests.conftest import drain_workspaces
from tests.owner import owner_engine
from tests.sessions import session_token

PASSWORD = "correct-horse-battery"
TOKEN_RE = re.compile(r"token=([A-Za-z0-9_-]+)")


def unique(prefix: str = "id") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# Mail leaves through the worker (docs/jobs.md): reading a mailbox first runs the queued jobs,
# as a running worker would have by then. Set for each test by `_worker_delivers_mail`.
_deliver: list = []


def deliver_queued_mail() -> None:
    """Run the queued jobs now (the mail the requests so far asked for)."""
    for run in _deliver:
        run()


@pytest.fixture(autouse=True)
def _worker_delivers_mail(run_jobs):
    _deliver.append(run_jobs)
    yield
    _deliver.clear()


def mailed_token(mail_dir: Path, to: str) -> str:
    """The token in the newest message sent to `to` (file mail backend), once the worker
    delivered the queued mail."""
    deliver_queued_mail()
    messages = []
    for path in sorted(mail_dir.glob("*.eml")):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        if message["To"].lower() == to.lower():
            messages.append(message)
    assert messages, f"no mail to {to}"
    match = TOKEN_RE.search(messages[-1].get_content())
    assert match, "no token in the mail"
    return match.group(1)


def signup_body(**overrides) -> dict:
    slug = unique("ws")
    body = {
        "email": f"{slug}@example.com",
        "password": PASSWORD,
        "name": "Wendy Worker",
        "workspace_name": f"Workspace {slug}",
        "workspace_slug": slug,
    }
    body.update(overrides)
    return body


def bearer(value: str) -> dict:
    return {"Authorization": f"Bearer {value}"}


def update_tenant(runtime, tenant_id: uuid.UUID, **values) -> None:
    with owner_engine().begin() as connection:
        connection.execute(update(tenants).where(tenants.c.id == tenant_id).values(**values))
    runtime.access_cache.forget(AccessChange(tenant_id=tenant_id))


def mark_verified(runtime, user_id: uuid.UUID) -> None:
    with owner_engine().begin() as connection:
        connection.execute(update(users).where(users.c.id == user_id).values(verified_at=datetime.now(UTC)))
    runtime.access_cache.forget(AccessChange(user_id=user_id))


@dataclass
class Member:
    """A tenant with a worker (its owner) and one client who has a login, with tokens."""

    tenant: object
    worker_id: uuid.UUID
    worker: dict
    client_id: uuid.UUID
    client_user_id: uuid.UUID
    client: dict


def add_client_record(runtime, tenant, *, name: str = "A Client", email: str | None = None) -> uuid.UUID:
    client_id = uuid.uuid4()
    with owner_engine().begin() as connection:
        set_tenant_search_path(connection, tenant.schema_name)
        connection.execute(insert(clients).values(id=client_id, name=name, email=email))
    return client_id


def make_member(runtime, *, state: str = "active") -> Member:
    """Provision a tenant in `state`: active, disabled, deletion_scheduled, deleted,
    unverified (owner's email not verified), trial_expired, paid_expired, provisioning,
    mfa_missing (the workspace requires a second factor; its worker has none)."""
    slug = unique("m")
    owner_email = f"owner-{slug}@example.com"
    now = datetime.now(UTC)
    tenant = provision_tenant(
        slug=slug,
        name=f"Member {slug}",
        owner_email=owner_email,
        trial_days=14,
        now=now,
        uow=SqlRegistryUnitOfWork(owner_engine(), runtime.runtime_role),
    )
    client_id = add_client_record(runtime, tenant, email=f"client-{slug}@example.com")
    client_user_id = uuid.uuid4()
    with owner_engine().begin() as connection:
        worker_id = SqlUserRepository(connection).id_by_email(owner_email)
        SqlUserRepository(connection).add(client_user_id, f"c-{slug}@example.com", "Client", None, now)
        SqlMembershipRepository(connection).add(
            user_id=client_user_id, tenant_id=tenant.id, role=Role.CLIENT, client_id=client_id
        )
        if state != "unverified":
            connection.execute(update(users).where(users.c.id == worker_id).values(verified_at=now))
    values = {
        "active": {},
        "unverified": {},
        "disabled": {"status": "disabled", "disabled_at": now},
        "deletion_scheduled": {"status": "deletion_scheduled", "deletion_due_at": now + timedelta(days=30)},
        # A purged tenant's tombstone names nobody (lifecycle's rule: empty name, slug from id).
        "deleted": {"status": "deleted", "deleted_at": now, "name": "", "slug": f"deleted-{tenant.id.hex}"},
        "trial_expired": {"trial_ends_at": now - timedelta(days=1)},
        "paid_expired": {"trial_ends_at": now - timedelta(days=1), "plan": "paid"},
        "provisioning": {"status": "provisioning"},
        "mfa_missing": {"mfa_required_for_workers": True},
    }[state]
    if values:
        update_tenant(runtime, tenant.id, **values)
    worker = session_token(runtime, user_id=worker_id, tenant_id=tenant.id)
    client = session_token(runtime, user_id=client_user_id, tenant_id=tenant.id)
    return Member(tenant, worker_id, bearer(worker), client_id, client_user_id, bearer(client))


@pytest.fixture()
def member(runtime):
    return lambda state="active": make_member(runtime, state=state)


# Signups claim pre-built workspaces only: every identity test starts with a few ready, made
# by the worker's refill (tests/conftest.py `ready_workspaces`); a test that needs more, or
# none, says so itself (tests/integration/lifecycle/test_workspace_claim.py).
READY_WORKSPACES = 4


@pytest.fixture(scope="module")
def _workspaces_drained_after(runtime):
    yield
    drain_workspaces(runtime)  # no test elsewhere meets this module's spares


@pytest.fixture(autouse=True)
def _workspaces_ready(ready_workspaces, _workspaces_drained_after):
    ready_workspaces(READY_WORKSPACES)


@pytest.fixture()
def signup(client):
    """Sign up through the API; returns (response, body sent)."""

    def do(**overrides):
        body = signup_body(**overrides)
        return client.post("/api/v1/auth/signup", json=body), body

    return do


@pytest.fixture()
def login(client):
    def do(email: str, password: str = PASSWORD, tenant: str | None = None):
        body = {"email": email, "password": password}
        if tenant is not None:
            body["tenant"] = tenant
        return client.post("/api/v1/auth/token", json=body)

    return do


@pytest.fixture()
def mail_dir(runtime) -> Path:
    return runtime.settings.mail_dir


@pytest.fixture()
def listening(runtime):
    """The app's access cache, its listener delivering registry changes to this process."""
    assert runtime.access_cache.wait_listening(10), "the access listener did not connect"
    return runtime.access_cache


@pytest.fixture()
def limits(runtime, monkeypatch):
    """Tighten some abuse limits on the live settings (the suite runs with generous ones)."""

    def tighten(**values: str) -> None:
        generous = {name: "10000 per minute" for name in RateLimits.model_fields}
        monkeypatch.setattr(
            runtime,
            "settings",
            runtime.settings.model_copy(update=dict(rate_limits=RateLimits(**generous | values))),
        )

    return tighten
