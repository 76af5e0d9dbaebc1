"""Changing the login email and a client closing their own login, on in-memory units of work
(tests/unit/fakes.py). Email change: asked with the password, effective only through the link
mailed to the new address, the old address told at both steps, what was mailed to the old
address dead afterwards. Closing: the membership and its sessions go, the account too when it
belongs nowhere else, the workers are told. Routes, roles and the client record's survival in
the tenant schema are tested in tests/integration/identity."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from backend.domain.errors import Conflict, Forbidden, Invalid, Unauthenticated
from backend.domain.identity import OneTimeTokenKind, Role
from backend.service.identity import closing, emails, passwords
from tests.unit.fakes import FakeJobQueue, FakeMailer, FakeRegistryUnitOfWork
from tests.unit.service.helpers import (
    APP_URL,
    NOW,
    PASSWORD,
    deliver,
    events,
    join,
    link_token,
    owner_id,
    person,
    workspace,
)

TTL = 3600


@pytest.fixture()
def uow():
    uow = FakeRegistryUnitOfWork()
    workspace(uow, "acme")
    return uow


def ask(uow, new_email="new@example.com", password=PASSWORD, mailer=None, now=NOW):
    """The request (checks, audit, enqueue), then the queued mail as the worker sends it."""
    mailer = mailer if mailer is not None else FakeMailer()
    jobs = FakeJobQueue()
    emails.request_email_change(
        user_id=owner_id(uow),
        tenant_id=uow.tenants.get_by_slug("acme").id,
        role=Role.WORKER,
        password=password,
        new_email=new_email,
        now=now,
        ttl_s=TTL,
        uow=uow,
        jobs=jobs,
        request_id="r1",
    )
    deliver(uow, jobs, mailer, now)
    return mailer


def confirm(uow, token, now=NOW, mailer=None):
    jobs = FakeJobQueue()
    user = emails.confirm_email_change(token=token, now=now, uow=uow, jobs=jobs)
    deliver(uow, jobs, mailer if mailer is not None else FakeMailer(), now)
    return user


def test_a_request_mails_a_link_to_the_new_address_and_warns_the_old_one(uow):
    mailer = ask(uow, new_email="  New@Example.com ")
    assert [m["to"] for m in mailer.sent] == ["New@Example.com", "owner@example.com"]
    assert "token=" in mailer.sent[0]["body"] and "token=" not in mailer.sent[1]["body"]
    [fields] = events(uow, "auth.email_change_requested")
    assert fields["actor_user_id"] == owner_id(uow) and fields["request_id"] == "r1"
    assert uow.users.by_email("owner@example.com") is not None, "nothing changes before the link is used"


def test_a_request_needs_the_password_a_new_and_free_address(uow):
    with pytest.raises(Forbidden) as wrong:
        ask(uow, password="not my password")
    assert wrong.value.code == "invalid_password"
    with pytest.raises(Invalid) as same:
        ask(uow, new_email="OWNER@example.com")
    assert "new_email" in same.value.errors
    person(uow, "taken@example.com")
    with pytest.raises(Conflict) as taken:
        ask(uow, new_email="Taken@Example.com")
    assert taken.value.code == "email_taken"
    assert events(uow, "auth.email_change_requested") == []
    assert uow.one_time_tokens.usable(OneTimeTokenKind.EMAIL_CHANGE, NOW) == []


def test_confirming_switches_the_address_verifies_it_and_kills_what_went_to_the_old_one(uow):
    owner = owner_id(uow)
    passwords.request_password_reset(
        email="owner@example.com", now=NOW, reset_ttl_s=TTL, app_url=APP_URL, uow=uow, mailer=FakeMailer()
    )
    link = link_token(ask(uow).sent[0])
    old_mail = FakeMailer()
    user = confirm(uow, link, now=NOW + timedelta(minutes=5), mailer=old_mail)
    assert user.email == "new@example.com" and user.verified_at == NOW + timedelta(minutes=5)
    assert uow.users.get(owner).email == "new@example.com" and uow.users.get(owner).verified_at is not None
    assert uow.users.by_email("owner@example.com") is None
    assert [msg["to"] for msg in old_mail.sent] == ["owner@example.com"]
    later = NOW + timedelta(minutes=6)
    assert uow.one_time_tokens.usable(OneTimeTokenKind.PASSWORD_RESET, later) == []
    assert uow.one_time_tokens.usable(OneTimeTokenKind.EMAIL_CHANGE, later) == []
    [fields] = events(uow, "auth.email_changed")
    assert fields["tenant_id"] == uow.tenants.get_by_slug("acme").id
    with pytest.raises(Unauthenticated) as reused:
        confirm(uow, link, now=later)
    assert reused.value.code == "invalid_token"


def test_an_invitation_mailed_to_the_old_address_dies_with_the_change(uow):
    with uow:
        uow.one_time_tokens.add(
            kind=OneTimeTokenKind.INVITATION,
            token_hash=b"invite",
            expires_at=NOW + timedelta(days=7),
            tenant_id=uuid.uuid4(),
            client_id=uuid.uuid4(),
            email="OWNER@example.com",
        )
        uow.commit()
    confirm(uow, link_token(ask(uow).sent[0]))
    assert uow.one_time_tokens.usable(OneTimeTokenKind.INVITATION, NOW + timedelta(seconds=1)) == []


def test_a_newer_request_supersedes_the_earlier_link(uow):
    first = link_token(ask(uow, new_email="first@example.com").sent[0])
    second = link_token(ask(uow, new_email="second@example.com", now=NOW + timedelta(minutes=1)).sent[0])
    with pytest.raises(Unauthenticated) as superseded:
        confirm(uow, first, now=NOW + timedelta(minutes=2))
    assert superseded.value.code == "token_expired"
    assert confirm(uow, second, now=NOW + timedelta(minutes=2)).email == "second@example.com"


def test_an_expired_link_or_an_address_taken_meanwhile_changes_nothing(uow):
    link = link_token(ask(uow).sent[0])
    with pytest.raises(Unauthenticated) as expired:
        confirm(uow, link, now=NOW + timedelta(seconds=TTL))
    assert expired.value.code == "token_expired"
    person(uow, "NEW@example.com")
    with pytest.raises(Conflict) as taken:
        confirm(uow, link)
    assert taken.value.code == "email_taken"
    assert uow.users.get(owner_id(uow)).email == "owner@example.com"
    assert events(uow, "auth.email_changed") == []


def test_a_user_in_two_workspaces_has_the_change_in_both_trails(uow):
    workspace(uow, "beta")
    confirm(uow, link_token(ask(uow).sent[0]))
    assert len(events(uow, "auth.email_changed")) == 2


@pytest.fixture()
def client_login(uow):
    """Ada, a client of acme with one session there."""
    acme = uow.tenants.get_by_slug("acme")
    ada, client_id = person(uow, "ada@example.com"), uuid.uuid4()
    join(uow, ada, acme, Role.CLIENT, client_id)
    with uow:
        uow.refresh_tokens.add(
            family_id=uuid.uuid4(),
            user_id=ada,
            tenant_id=acme.id,
            token_hash=b"ada-acme",
            issued_at=NOW,
            expires_at=NOW + timedelta(hours=1),
        )
        uow.commit()
    return acme, ada, client_id


def close(uow, tenant, user_id, client_id, password=PASSWORD, mailer=None):
    jobs = FakeJobQueue()
    whole = closing.delete_own_client_account(
        user_id=user_id,
        tenant_id=tenant.id,
        client_id=client_id,
        password=password,
        workspace_name="Acme",
        now=NOW,
        uow=uow,
        jobs=jobs,
        request_id="r2",
    )
    deliver(uow, jobs, mailer if mailer is not None else FakeMailer())
    return whole


def test_a_client_of_one_workspace_closes_the_whole_account_and_the_workers_are_told(uow, client_login):
    acme, ada, client_id = client_login
    bob = person(uow, "bob@example.com")
    join(uow, bob, acme)  # a second worker
    mailer = FakeMailer()
    assert close(uow, acme, ada, client_id, mailer=mailer) is True
    assert uow.users.get(ada) is None and uow.memberships.get(ada, acme.id) is None
    assert [t for t in uow.refresh_tokens.live() if t.user_id == ada] == []
    [fields] = events(uow, "client.account_deleted")
    assert fields["actor_user_id"] is None, "no reference to a deleted user"
    assert fields["target_id"] == str(client_id) and fields["metadata"] == {"reason": "account"}
    assert [m["to"] for m in mailer.sent] == ["bob@example.com", "owner@example.com"]
    assert str(client_id) in mailer.sent[0]["body"]


def test_a_client_of_two_workspaces_leaves_only_this_one(uow, client_login):
    acme, ada, client_id = client_login
    beta = workspace(uow, "beta")
    join(uow, ada, beta, Role.CLIENT, uuid.uuid4())
    assert close(uow, acme, ada, client_id) is False
    assert uow.users.get(ada) is not None and uow.memberships.get(ada, beta.id) is not None
    assert uow.memberships.get(ada, acme.id) is None
    [fields] = events(uow, "client.account_deleted")
    assert fields["actor_user_id"] == ada and fields["metadata"] == {"reason": "membership"}


def test_closing_needs_the_password_and_a_live_account(uow, client_login):
    acme, ada, client_id = client_login
    mailer = FakeMailer()
    with pytest.raises(Forbidden) as wrong:
        close(uow, acme, ada, client_id, password="not mine at all", mailer=mailer)
    assert wrong.value.code == "invalid_password"
    assert uow.memberships.get(ada, acme.id) is not None and mailer.sent == []
    assert events(uow, "client.account_deleted") == []
    with pytest.raises(Unauthenticated) as gone:
        close(uow, acme, uuid.uuid4(), client_id)
    assert gone.value.code == "invalid_token"


def test_a_mail_that_fails_does_not_undo_the_closing(uow, client_login):
    acme, ada, client_id = client_login
    assert close(uow, acme, ada, client_id, mailer=FakeMailer(down=True)) is True
    assert uow.users.get(ada) is None


def test_a_request_from_a_user_deleted_meanwhile_is_unauthenticated(uow):
    with pytest.raises(Unauthenticated) as gone:
        emails.request_email_change(
            user_id=uuid.uuid4(),
            tenant_id=uuid.uuid4(),
            role=Role.CLIENT,
            password=PASSWORD,
            new_email="new@example.com",
            now=NOW,
            ttl_s=TTL,
            uow=uow,
            jobs=FakeJobQueue(),
        )
    assert gone.value.code == "invalid_token"
