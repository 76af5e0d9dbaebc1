"""Client use cases (the worker's client book).

Deleting a client is a hard delete (docs/domain.md): their appointments go with them (FK
cascade) and their media are soft-deleted in the same transaction, so the purge removes
the files after the media retention period.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from backend.domain.clients import Client, clean_client_fields
from backend.domain.errors import NotFound
from backend.domain.identity import Principal
from backend.service.ports import TenantUnitOfWork


def list_clients(
    *, page: int, page_size: int, uow: TenantUnitOfWork, search: str | None = None
) -> tuple[list[Client], int]:
    """Lists one page of the workspace's clients by name, optionally those whose name or
    email starts with `search`, with the total count."""
    with uow:
        return uow.clients.list_page(offset=(page - 1) * page_size, limit=page_size, search=search or None)


def get_client(*, client_id: uuid.UUID, uow: TenantUnitOfWork) -> Client:
    """Returns one client of the workspace."""
    with uow:
        client = uow.clients.get(client_id)
    if client is None:
        raise NotFound()
    return client


def create_client(*, fields: dict, now: datetime, uow: TenantUnitOfWork) -> Client:
    """Adds a client; an email already used by another client is a conflict."""
    cleaned = clean_client_fields({"email": None, "phone": None, "notes": None, **fields})
    client = Client(id=uuid.uuid4(), created_at=now, updated_at=now, **cleaned)
    with uow:
        created = uow.clients.add(client)
        uow.commit()
    return created


def update_client(*, client_id: uuid.UUID, changes: dict, now: datetime, uow: TenantUnitOfWork) -> Client:
    """Changes the given fields of a client. A changed or removed email revokes the
    invitations mailed to the old one: a link in someone else's mailbox must not become a
    login tied to this record."""
    cleaned = clean_client_fields(changes)
    with uow:
        before = uow.clients.get(client_id) if "email" in cleaned else None
        updated = uow.clients.update(client_id, cleaned, now)
        if updated is None:
            raise NotFound()
        if before is not None and not _same_email(before.email, updated.email):
            uow.client_logins.revoke_invitations(client_id, now)
        uow.commit()
    return updated


def _same_email(a: str | None, b: str | None) -> bool:
    return (a or "").casefold() == (b or "").casefold()


def delete_client(
    *,
    client_id: uuid.UUID,
    actor: Principal,
    now: datetime,
    uow: TenantUnitOfWork,
    request_id: str | None = None,
) -> None:
    """Deletes a client with their appointments; their media are soft-deleted for the purge;
    their login leaves the workspace and its sessions end (the person's account stays)."""
    with uow:
        if not uow.clients.exists(client_id):
            raise NotFound()
        media_count = uow.media.soft_delete_for_client(client_id, now)
        if media_count:
            uow.media_trash.trashed(now)  # the retention run finds this tenant (due work)
        logins = uow.client_logins.remove(client_id, now)
        uow.clients.delete(client_id)
        uow.audit.record(
            "client.deleted",
            tenant_id=actor.tenant_id,
            actor_user_id=actor.user_id,
            actor_role=actor.role.value,
            target_type="client",
            target_id=str(client_id),
            request_id=request_id,
            metadata={"count": media_count, "logins_removed": logins},
        )
        uow.commit()
