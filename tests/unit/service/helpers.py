"""What the identity tests on fakes share: a fixed clock, a workspace with its owner, people
with a password, and the token inside a mailed link."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import cache
from urllib.parse import parse_qs, urlparse

from backend.core.passwords import hash_password
from backend.domain.identity import Role
from backend.domain.tenants import Tenant
from backend.service import tenants

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
APP_URL = "https://app.example"


@cache
def password_hash(password: str = PASSWORD) -> str:
    """argon2id costs ~25 ms: each distinct password is hashed once per test run."""
    return hash_password(password)


def workspace(
    uow, slug: str = "acme", owner: str = "owner@example.com", password: str | None = PASSWORD
) -> Tenant:
    """A provisioned workspace whose owner (a worker) has `password` (None: no password yet)."""
    existing = uow.users.by_email(owner)
    return tenants.provision_tenant(
        slug=slug,
        name=slug.title(),
        owner_email=owner,
        owner_name="Owner",
        owner_password_hash=None if existing or password is None else password_hash(password),
        trial_days=14,
        now=NOW,
        uow=uow,
    )


def person(uow, email: str, password: str | None = PASSWORD, *, verified: bool = True) -> uuid.UUID:
    """A user with no workspace yet; committed."""
    user_id = uuid.uuid4()
    with uow:
        uow.users.add(
            user_id, email, "Person", password_hash(password) if password else None, NOW if verified else None
        )
        uow.commit()
    return user_id


def join(uow, user_id: uuid.UUID, tenant: Tenant, role: Role = Role.WORKER, client_id=None) -> None:
    with uow:
        uow.memberships.add(user_id=user_id, tenant_id=tenant.id, role=role, client_id=client_id)
        uow.commit()


def owner_id(uow, email: str = "owner@example.com") -> uuid.UUID:
    return uow.users.by_email(email).id


def link_token(message: dict) -> str:
    """The `token` query parameter of the link in a mailed message."""
    link = next(line for line in message["body"].splitlines() if line.startswith("https://"))
    return parse_qs(urlparse(link).query)["token"][0]


def events(uow, name: str) -> list[dict]:
    return [fields for event, fields in uow.audit.events if event == name]
