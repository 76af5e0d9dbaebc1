"""Signup and email verification on in-memory units of work (tests/unit/fakes.py): the
workspace and the unverified owner together, the link mailed after the commit, single-use
and expiring tokens, a generated slug that avoids a taken one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from backend.domain.errors import Conflict, Invalid, Unauthenticated
from backend.service.identity import accounts
from tests.unit.fakes import FakeMailer, FakeRegistryUnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TTL = 3600


def signup(uow, mailer, email="Ada@Example.com", slug=None, workspace="Acme Studio"):
    return accounts.signup(
        email=email,
        password="correct horse battery",
        name="Ada",
        workspace_name=workspace,
        workspace_slug=slug,
        trial_days=14,
        verification_ttl_s=TTL,
        app_url="https://app.example",
        now=NOW,
        uow=uow,
        mailer=mailer,
    )


def mailed_token(mailer) -> str:
    link = next(line for line in mailer.sent[-1]["body"].splitlines() if line.startswith("https://"))
    return parse_qs(urlparse(link).query)["token"][0]


def test_signup_makes_an_unverified_owner_and_mails_a_link_that_verifies_once():
    uow, mailer = FakeRegistryUnitOfWork(), FakeMailer()
    result = signup(uow, mailer)
    assert result.user.email == "Ada@Example.com" and result.user.verified_at is None  # kept as typed
    assert result.user.password_hash is None, "the hash never leaves the service"
    assert result.tenant.slug == "acme-studio"
    assert uow.audit.names() == ["tenant.provisioned", "auth.signup"]
    assert [m["to"] for m in mailer.sent] == ["Ada@Example.com"]
    token = mailed_token(mailer)
    verified = accounts.verify_email(token=token, now=NOW + timedelta(minutes=5), uow=uow)
    assert verified.verified_at == NOW + timedelta(minutes=5)
    with pytest.raises(Conflict) as again:
        accounts.verify_email(token=token, now=NOW + timedelta(minutes=6), uow=uow)
    assert again.value.code == "already_verified"


def test_an_expired_or_unknown_verification_token_is_refused():
    uow, mailer = FakeRegistryUnitOfWork(), FakeMailer()
    signup(uow, mailer)
    with pytest.raises(Unauthenticated) as expired:
        accounts.verify_email(token=mailed_token(mailer), now=NOW + timedelta(seconds=TTL), uow=uow)
    assert expired.value.code == "token_expired"
    with pytest.raises(Unauthenticated) as unknown:
        accounts.verify_email(token="not-a-token", now=NOW, uow=uow)
    assert unknown.value.code == "invalid_token"


def test_a_generated_slug_avoids_a_taken_one_but_an_asked_for_slug_does_not():
    uow, mailer = FakeRegistryUnitOfWork(), FakeMailer()
    signup(uow, mailer)
    second = signup(uow, mailer, email="bob@example.com")
    assert second.tenant.slug.startswith("acme-studio-") and second.tenant.slug != "acme-studio"
    with pytest.raises(Conflict) as taken:
        signup(uow, mailer, email="cy@example.com", slug="acme-studio")
    assert taken.value.code == "slug_taken"


def test_an_email_already_registered_is_refused_and_nothing_is_mailed():
    uow, mailer = FakeRegistryUnitOfWork(), FakeMailer()
    signup(uow, mailer)
    with pytest.raises(Conflict) as taken:
        signup(uow, mailer, email="ADA@example.com", workspace="Other")
    assert taken.value.code == "email_taken" and len(mailer.sent) == 1


def test_a_weak_password_is_refused_before_anything_is_written():
    uow, mailer = FakeRegistryUnitOfWork(), FakeMailer()
    with pytest.raises(Invalid):
        accounts.signup(
            email="ada@example.com",
            password="short",
            name="Ada",
            workspace_name="Acme",
            workspace_slug=None,
            trial_days=14,
            verification_ttl_s=TTL,
            app_url="https://app.example",
            now=NOW,
            uow=uow,
            mailer=mailer,
        )
    assert uow.commits == 0 and mailer.sent == [] and uow.users.rows == {}
