"""A client closes their own login: their membership of this workspace goes, their sessions
end, and the person's account goes too when it belongs to no other workspace. The client
record, appointments and media stay: they are the worker's business record (retention rules
in docs/data-lifecycle.md). The worker is told: an audit event in the workspace's trail and a
mail to the workspace's workers."""

from __future__ import annotations

import uuid
from datetime import datetime

from backend.core.passwords import verify_account_password
from backend.domain import audit as events
from backend.domain.errors import Forbidden, Unauthenticated
from backend.domain.identity import Role
from backend.service.identity.common import queue_notice
from backend.service.ports import JobQueue, RegistryUnitOfWork


def delete_own_client_account(
    *,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    client_id: uuid.UUID,
    password: str,
    workspace_name: str,
    now: datetime,
    uow: RegistryUnitOfWork,
    jobs: JobQueue,
    request_id: str | None = None,
) -> bool:
    """Returns True when the whole account went (no other workspace), False when only this
    workspace's login did."""
    with uow:
        user = uow.users.get(user_id, for_update=True)
        if user is None:
            raise Unauthenticated("invalid_token")
        if not verify_account_password(user.password_hash, password):
            raise Forbidden("invalid_password", "the password is wrong")
        uow.memberships.remove(user_id, tenant_id)
        uow.refresh_tokens.revoke_for(user_id, tenant_id, now)
        whole = not uow.memberships.for_user(user_id)
        if whole:
            uow.users.delete(user_id)
        uow.audit.record(
            events.CLIENT_ACCOUNT_DELETED,
            tenant_id=tenant_id,
            actor_user_id=None if whole else user_id,  # no dangling reference to a deleted user
            actor_role=Role.CLIENT.value,
            target_type="client",
            target_id=str(client_id),
            request_id=request_id,
            metadata={"reason": "account" if whole else "membership"},
        )
        workers = uow.memberships.worker_emails(tenant_id)
        uow.commit()
    body = (
        f"A client of {workspace_name} closed their login (client record {client_id}). They can no "
        "longer sign in; their client record, appointments and media stay in your workspace under "
        "your retention rules. Delete the record yourself if you no longer need it.\n"
    )
    for to in workers:
        queue_notice(jobs, to=to, subject="A client closed their login", body=body, request_id=request_id)
    return whole
