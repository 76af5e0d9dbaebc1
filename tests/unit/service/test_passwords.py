"""Password reset and change on in-memory units of work (tests/unit/fakes.py): the same work
and a committed audit row whatever the email, a single-use link bound to the address it was
mailed to, sessions ended everywhere on a reset and all but (optionally) this one on a
change. Timing, rate limits and the routes are tested in tests/integration/identity."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from backend.core.passwords import verify_password
from backend.domain.errors import Forbidden, Invalid, Unauthenticated
from backend.domain.identity import OneTimeTokenKind, Role
from backend.service.identity import passwords, sessions
from tests.unit.fakes import FakeMailer, FakeRegistryUnitOfWork, FakeTokenIssuer
from tests.unit.service.helpers import (
    APP_URL,
    NOW,
    PASSWORD,
    events,
    join,
    link_token,
    owner_id,
    person,
    workspace,
)

TTL = 1800
NEW = "a new password 42"


@pytest.fixture()
def uow():
    uow = FakeRegistryUnitOfWork()
    workspace(uow, "acme")
    return uow


def request(uow, email="owner@example.com", mailer=None, now=NOW):
    mailer = mailer if mailer is not None else FakeMailer()
    found = passwords.request_password_reset(
        email=email, now=now, reset_ttl_s=TTL, app_url=APP_URL, uow=uow, mailer=mailer, request_id="r"
    )
    return found, mailer


def reset(uow, token, password=NEW, now=NOW):
    return passwords.reset_password(token=token, password=password, now=now, uow=uow)


def log_in(uow, password=PASSWORD, slug=None) -> uuid.UUID:
    """Logs the owner in; returns the session (refresh family) the access token names."""
    issuer = FakeTokenIssuer()
    sessions.login(
        email="owner@example.com",
        password=password,
        tenant_slug=slug,
        now=NOW,
        refresh_ttl_s=3600,
        uow=uow,
        tokens=issuer,
    )
    return issuer.issued[-1]["session_id"]


def test_an_unknown_email_is_audited_as_a_failure_and_nothing_is_mailed(uow):
    commits = uow.commits
    found, mailer = request(uow, email="nobody@example.com")
    assert found is False and mailer.sent == [] and uow.commits == commits + 1
    [fields] = events(uow, "auth.password_reset_requested")
    assert fields["outcome"] == "failure" and fields["metadata"] == {"reason": "unknown_email"}
    assert uow.one_time_tokens.rows == {}


def test_a_known_email_gets_a_single_link_that_supersedes_the_earlier_one(uow):
    found, mailer = request(uow)
    assert found is True and mailer.sent[0]["to"] == "owner@example.com"
    assert mailer.sent[0]["subject"] == "Reset your password" and "30 minutes" in mailer.sent[0]["body"]
    first = link_token(mailer.sent[0])
    _, mailer = request(uow, now=NOW + timedelta(minutes=1))
    second = link_token(mailer.sent[0])
    [fields, _] = events(uow, "auth.password_reset_requested")
    assert fields["actor_user_id"] == owner_id(uow) and "outcome" not in fields
    with pytest.raises(Unauthenticated) as superseded:
        reset(uow, first, now=NOW + timedelta(minutes=2))
    assert superseded.value.code == "token_expired"
    reset(uow, second, now=NOW + timedelta(minutes=2))


def test_an_owner_without_a_password_is_asked_to_set_one():
    uow = FakeRegistryUnitOfWork()
    workspace(uow, "acme", password=None)
    _, mailer = request(uow)
    assert mailer.sent[0]["subject"] == "Set your password"


def test_a_reset_sets_the_password_ends_every_session_and_verifies_the_address(uow):
    workspace(uow, "beta")  # the owner's second workspace
    log_in(uow, slug="acme")
    log_in(uow, slug="beta")
    assert uow.users.by_email("owner@example.com").verified_at is None
    _, mailer = request(uow)
    token = link_token(mailer.sent[0])
    user = reset(uow, token, now=NOW + timedelta(minutes=1))
    assert user.verified_at == NOW + timedelta(minutes=1) and user.password_hash is None
    assert verify_password(uow.users.get(user.id).password_hash, NEW)
    assert uow.refresh_tokens.live() == []
    rows = events(uow, "auth.password_reset")
    assert {f["tenant_id"] for f in rows} == {t.id for t in uow.tenants.list()}, "one row per workspace"
    assert all(f["metadata"] == {"count": 2} for f in rows)
    with pytest.raises(Unauthenticated) as used:
        reset(uow, token, password="yet another password")
    assert used.value.code == "invalid_token"


def test_a_weak_new_password_changes_nothing_and_the_link_stays_usable(uow):
    _, mailer = request(uow)
    token = link_token(mailer.sent[0])
    with pytest.raises(Invalid):
        reset(uow, token, password="owner@example.com")
    assert verify_password(uow.users.by_email("owner@example.com").password_hash, PASSWORD)
    reset(uow, token)


def test_an_expired_link_or_one_sent_to_an_address_the_account_left_is_refused(uow):
    _, mailer = request(uow)
    token = link_token(mailer.sent[0])
    with pytest.raises(Unauthenticated) as expired:
        reset(uow, token, now=NOW + timedelta(seconds=TTL))
    assert expired.value.code == "token_expired"
    with uow:
        uow.users.set_email(owner_id(uow), "moved@example.com")
        uow.commit()
    with pytest.raises(Unauthenticated) as moved:
        reset(uow, token)
    assert moved.value.code == "invalid_token"
    with pytest.raises(Unauthenticated):
        reset(uow, "never-issued")


def change(uow, current=PASSWORD, new=NEW, keep=True, session_id=None):
    tenant = uow.tenants.get_by_slug("acme")
    return passwords.change_password(
        user_id=owner_id(uow),
        tenant_id=tenant.id,
        role=Role.WORKER,
        session_id=session_id,
        current_password=current,
        new_password=new,
        keep_this_session=keep,
        now=NOW,
        uow=uow,
    )


def test_a_change_needs_the_current_password_and_the_refusal_is_audited(uow):
    commits = uow.commits
    with pytest.raises(Forbidden) as wrong:
        change(uow, current="not my password")
    assert wrong.value.code == "invalid_password" and uow.commits == commits + 1
    [fields] = events(uow, "auth.password_changed")
    assert fields["outcome"] == "failure" and fields["metadata"] == {"reason": "bad_password"}
    assert verify_password(uow.users.by_email("owner@example.com").password_hash, PASSWORD)


def test_a_change_keeps_this_session_when_asked_and_ends_the_others_everywhere(uow):
    workspace(uow, "beta")
    this_family = log_in(uow, slug="acme")
    log_in(uow, slug="acme")
    log_in(uow, slug="beta")
    _, mailer = request(uow)
    ended = change(uow, session_id=this_family)
    assert ended == 2 and [t.family_id for t in uow.refresh_tokens.live()] == [this_family]
    assert verify_password(uow.users.by_email("owner@example.com").password_hash, NEW)
    [fields] = events(uow, "auth.password_changed")
    assert fields["metadata"] == {"count": 2, "reason": "kept_this_session"}
    with pytest.raises(Unauthenticated) as stale:
        reset(uow, link_token(mailer.sent[0]))
    assert stale.value.code == "token_expired", "an outstanding reset link dies with the change"


def test_a_change_without_keeping_ends_every_session(uow):
    log_in(uow)
    ended = change(uow, keep=False, session_id=uuid.uuid4())
    assert ended == 1 and uow.refresh_tokens.live() == []
    assert events(uow, "auth.password_changed")[0]["metadata"]["reason"] == "ended_all_sessions"


def test_a_weak_new_password_or_a_vanished_user_changes_nothing(uow):
    with pytest.raises(Invalid):
        change(uow, new="short")
    assert verify_password(uow.users.by_email("owner@example.com").password_hash, PASSWORD)
    assert events(uow, "auth.password_changed") == []
    with pytest.raises(Unauthenticated) as gone:
        passwords.change_password(
            user_id=uuid.uuid4(),
            tenant_id=uuid.uuid4(),
            role=Role.CLIENT,
            session_id=None,
            current_password=PASSWORD,
            new_password=NEW,
            keep_this_session=False,
            now=NOW,
            uow=uow,
        )
    assert gone.value.code == "invalid_token"


def test_a_user_without_a_workspace_gets_one_global_audit_row():
    uow = FakeRegistryUnitOfWork()
    person(uow, "loner@example.com")
    _, mailer = request(uow, email="loner@example.com")
    reset(uow, link_token(mailer.sent[0]))
    [fields] = events(uow, "auth.password_reset")
    assert fields["tenant_id"] is None


def test_an_undelivered_mail_still_leaves_the_link_valid():
    uow = FakeRegistryUnitOfWork()
    workspace(uow, "acme")
    found, _ = request(uow, mailer=FakeMailer(down=True))
    assert found and len(uow.one_time_tokens.usable(OneTimeTokenKind.PASSWORD_RESET, NOW)) == 1


def test_a_change_leaves_another_users_sessions_alone(uow):
    other = person(uow, "bob@example.com")
    join(uow, other, uow.tenants.get_by_slug("acme"))
    with uow:
        uow.refresh_tokens.add(
            family_id=uuid.uuid4(),
            user_id=other,
            tenant_id=uow.tenants.get_by_slug("acme").id,
            token_hash=b"bob",
            issued_at=NOW,
            expires_at=NOW + timedelta(hours=1),
        )
        uow.commit()
    change(uow, keep=False)
    assert [t.user_id for t in uow.refresh_tokens.live()] == [other]
