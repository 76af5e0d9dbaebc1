"""Client invitations on in-memory units of work (tests/unit/fakes.py): a worker invites a
client record with an email, the link is single use, superseded by a newer one and dead once
the record's email changes; accepting makes a client login or joins an existing one with its
own password, never by replacing it. The tenant-schema lookup, the 404 across tenants and the
routes' roles are tested in tests/integration/identity/test_invitations.py."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from backend.core.passwords import verify_password
from backend.domain.errors import Conflict, Invalid, NotFound, Unauthenticated
from backend.domain.identity import ClientContact, OneTimeTokenKind, Role
from backend.domain.tenants import TenantStatus
from backend.service.identity import invitations
from backend.service.identity.common import token_digest
from tests.unit.fakes import FakeJobQueue, FakeMailer, FakeRegistryUnitOfWork
from tests.unit.service.helpers import APP_URL, NOW, PASSWORD, events, link_token, owner_id, person, workspace

TTL = 7 * 24 * 3600


@pytest.fixture()
def uow():
    return FakeRegistryUnitOfWork()


@pytest.fixture()
def tenant(uow):
    return workspace(uow)


def a_client(uow, tenant, email="ada@example.com", name="Ada"):
    return uow.client_directory.put(tenant.schema_name, ClientContact(uuid.uuid4(), name, email))


def invite(uow, tenant, client, mailer=None, now=NOW):
    """The request's half (checks, audit, one enqueue), then the queued job as the worker runs
    it (draws the link, mails it)."""
    jobs = FakeJobQueue()
    sent = invitations.invite_client(
        tenant_id=tenant.id,
        schema_name=tenant.schema_name,
        client_id=client.id,
        inviter_id=owner_id(uow),
        now=now,
        invitation_ttl_s=TTL,
        uow=uow,
        jobs=jobs,
        request_id="req-1",
    )
    for task, queue, arguments in jobs.jobs:
        assert (task, queue) == (invitations.INVITATION_TASK, "mail")
        invitations.mail_invitation(
            tenant_id=uuid.UUID(arguments["tenant_id"]),
            client_id=uuid.UUID(arguments["client_id"]),
            expires_at=datetime.fromisoformat(arguments["expires_at"]),
            now=now,
            app_url=APP_URL,
            uow=uow,
            mailer=mailer if mailer is not None else FakeMailer(),
        )
    return sent


def invited(uow, tenant, client, now=NOW) -> str:
    mailer = FakeMailer()
    invite(uow, tenant, client, mailer, now)
    return link_token(mailer.sent[-1])


def accept(uow, token, password=PASSWORD, name=None, now=NOW):
    return invitations.accept_invitation(token=token, password=password, name=name, now=now, uow=uow)


def test_an_invitation_mails_a_link_to_the_clients_address_and_is_audited(uow, tenant):
    client, mailer = a_client(uow, tenant), FakeMailer()
    sent = invite(uow, tenant, client, mailer)
    assert (sent.client_id, sent.email, sent.expires_at) == (
        client.id,
        client.email,
        NOW + timedelta(seconds=TTL),
    )
    [message] = mailer.sent
    assert message["to"] == "ada@example.com" and "Acme" in message["subject"]
    [fields] = events(uow, "invitation.sent")
    assert fields["target_id"] == str(client.id) and fields["actor_role"] == "worker"
    assert fields["tenant_id"] == tenant.id and fields["request_id"] == "req-1"
    [token] = uow.one_time_tokens.usable(OneTimeTokenKind.INVITATION, NOW)
    assert (token.tenant_id, token.client_id, token.email) == (tenant.id, client.id, client.email)


def test_a_client_without_email_unknown_or_already_with_a_login_is_refused(uow, tenant):
    with pytest.raises(NotFound):
        invite(uow, tenant, ClientContact(uuid.uuid4(), "Ghost", "g@example.com"))
    with pytest.raises(Invalid) as no_email:
        invite(uow, tenant, a_client(uow, tenant, email=None))
    assert "email" in no_email.value.errors
    linked = a_client(uow, tenant, email="bob@example.com")
    accept(uow, invited(uow, tenant, linked))
    with pytest.raises(Conflict) as again:
        invite(uow, tenant, linked)
    assert again.value.code == "already_member"
    assert len(events(uow, "invitation.sent")) == 1


def test_a_mail_that_cannot_be_delivered_still_leaves_a_valid_invitation(uow, tenant):
    client = a_client(uow, tenant)
    sent = invite(uow, tenant, client, FakeMailer(down=True))
    assert (
        sent.email == client.email and len(uow.one_time_tokens.usable(OneTimeTokenKind.INVITATION, NOW)) == 1
    )


def test_accepting_creates_a_verified_client_login_and_spends_the_link(uow, tenant):
    client = a_client(uow, tenant)
    token = invited(uow, tenant, client)
    accepted = accept(uow, token, name="Ada L.")
    assert accepted.client_id == client.id and accepted.tenant.id == tenant.id
    assert accepted.user.email == "ada@example.com" and accepted.user.verified_at == NOW
    assert accepted.user.password_hash is None, "the hash never leaves the service"
    stored = uow.users.by_email("ada@example.com")
    assert stored.name == "Ada L." and verify_password(stored.password_hash, PASSWORD)
    membership = uow.memberships.get(stored.id, tenant.id)
    assert (membership.role, membership.client_id) == (Role.CLIENT, client.id)
    [fields] = events(uow, "invitation.accepted")
    assert fields["actor_user_id"] == stored.id and fields["target_id"] == str(client.id)
    with pytest.raises(Conflict) as reused:
        accept(uow, token)
    assert reused.value.code == "invitation_used"


def test_the_clients_name_is_used_when_none_is_given(uow, tenant):
    accepted = accept(uow, invited(uow, tenant, a_client(uow, tenant, name="Ada Lovelace")))
    assert uow.users.get(accepted.user.id).name == "Ada Lovelace"


def test_a_newer_invitation_supersedes_the_earlier_link(uow, tenant):
    client = a_client(uow, tenant)
    first = invited(uow, tenant, client)
    second = invited(uow, tenant, client, now=NOW + timedelta(minutes=1))
    with pytest.raises(Unauthenticated) as superseded:
        accept(uow, first, now=NOW + timedelta(minutes=2))
    assert superseded.value.code == "token_expired"
    assert accept(uow, second, now=NOW + timedelta(minutes=2)).client_id == client.id


def test_an_unknown_link_is_refused(uow):
    with pytest.raises(Unauthenticated) as refused:
        accept(uow, "not-a-token")
    assert refused.value.code == "invalid_token"


def test_an_expired_link_is_refused_and_nothing_is_written(uow, tenant):
    token = invited(uow, tenant, a_client(uow, tenant))
    with pytest.raises(Unauthenticated) as expired:
        accept(uow, token, now=NOW + timedelta(seconds=TTL))
    assert expired.value.code == "token_expired"
    assert uow.users.by_email("ada@example.com") is None


@pytest.mark.parametrize("status", [TenantStatus.DELETION_SCHEDULED, TenantStatus.DELETED])
def test_a_workspace_being_deleted_accepts_no_one(uow, tenant, status):
    token = invited(uow, tenant, a_client(uow, tenant))
    uow.tenants.rows[tenant.id] = replace(tenant, status=status)
    with pytest.raises(Unauthenticated) as refused:
        accept(uow, token)
    assert refused.value.code == "invalid_token"
    assert uow.users.by_email("ada@example.com") is None


def test_a_deleted_client_record_or_a_changed_email_makes_the_link_worthless(uow, tenant):
    gone, moved = a_client(uow, tenant), a_client(uow, tenant, email="bob@example.com")
    gone_token, moved_token = invited(uow, tenant, gone), invited(uow, tenant, moved)
    del uow.client_directory.contacts[tenant.schema_name][gone.id]
    with pytest.raises(NotFound):
        accept(uow, gone_token)
    uow.client_directory.put(tenant.schema_name, replace(moved, email="someone.else@example.com"))
    with pytest.raises(Unauthenticated) as changed:
        accept(uow, moved_token)
    assert changed.value.code == "invalid_token"
    uow.client_directory.put(tenant.schema_name, replace(moved, email="BOB@example.com"))
    assert accept(uow, moved_token).client_id == moved.id, "the same address in another case"


def test_a_weak_password_creates_nothing_and_leaves_the_link_usable(uow, tenant):
    token = invited(uow, tenant, a_client(uow, tenant))
    with pytest.raises(Invalid) as weak:
        accept(uow, token, password="short")
    assert "password" in weak.value.errors
    assert uow.users.by_email("ada@example.com") is None
    assert accept(uow, token).user.email == "ada@example.com"


def test_someone_with_a_login_joins_with_their_own_password_never_by_replacing_it(uow, tenant):
    existing = person(uow, "ada@example.com", password="my own password", verified=False)
    token = invited(uow, tenant, a_client(uow, tenant))
    with pytest.raises(Unauthenticated) as wrong:
        accept(uow, token, password=PASSWORD)
    assert wrong.value.code == "invalid_credentials"
    assert uow.memberships.get(existing, tenant.id) is None
    assert verify_password(uow.users.get(existing).password_hash, "my own password")
    accepted = accept(uow, token, password="my own password")
    assert accepted.user.id == existing and accepted.user.verified_at == NOW, "the link proves the address"
    assert uow.memberships.get(existing, tenant.id).role is Role.CLIENT


def test_an_account_without_a_password_sets_it_by_accepting(uow, tenant):
    existing = person(uow, "ada@example.com", password=None, verified=False)
    accept(uow, invited(uow, tenant, a_client(uow, tenant)), password="a brand new one")
    assert verify_password(uow.users.get(existing).password_hash, "a brand new one")
    assert uow.users.get(existing).verified_at == NOW


def test_a_member_of_the_workspace_cannot_become_its_client_too(uow, tenant):
    token = invited(uow, tenant, a_client(uow, tenant, email="owner@example.com"))
    with pytest.raises(Conflict) as member:
        accept(uow, token)
    assert member.value.code == "already_member"
    assert uow.memberships.get(owner_id(uow), tenant.id).role is Role.WORKER


def test_a_client_record_linked_meanwhile_refuses_a_second_link(uow, tenant):
    client = a_client(uow, tenant)
    first = invited(uow, tenant, client)
    # Two live links for one record (raced, or restored with the registry): the first
    # accepted wins, the other is refused once the record has a login.
    with uow:
        uow.one_time_tokens.add(
            kind=OneTimeTokenKind.INVITATION,
            token_hash=token_digest("second"),
            expires_at=NOW + timedelta(days=1),
            tenant_id=tenant.id,
            client_id=client.id,
            email=client.email,
        )
        uow.commit()
    accept(uow, first)
    with pytest.raises(Conflict) as linked:
        accept(uow, "second", password="another password")
    assert linked.value.code == "invitation_used"


def test_a_spent_link_stays_spent_after_the_login_it_made_is_gone(uow, tenant):
    client = a_client(uow, tenant)
    token = invited(uow, tenant, client)
    accepted = accept(uow, token)
    with uow:  # the client closed their login (service/identity/closing.py)
        uow.memberships.remove(accepted.user.id, tenant.id)
        uow.commit()
    with pytest.raises(Conflict) as spent:
        accept(uow, token)
    assert spent.value.code == "invitation_used"
    assert uow.memberships.get(accepted.user.id, tenant.id) is None
