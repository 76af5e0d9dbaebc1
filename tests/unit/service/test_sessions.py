"""Session rules on in-memory units of work (tests/unit/fakes.py): login picks the workspace,
failures are audited and committed, refresh tokens rotate, a reused one revokes its family,
logout revokes. Token signatures, rate limits and SQL locking are tested in tests/integration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.core.passwords import hash_password
from backend.domain.errors import Forbidden, Invalid, Unauthenticated
from backend.service import tenants
from backend.service.identity import sessions
from tests.unit.fakes import FakeRegistryUnitOfWork, FakeTokenIssuer

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
TTL = 3600


@pytest.fixture(scope="module")
def password_hash():
    return hash_password(PASSWORD)


def workspace(uow, slug, password_hash):
    return tenants.provision_tenant(
        slug=slug,
        name=slug.title(),
        owner_email="ada@example.com",
        owner_password_hash=None if uow.users.rows else password_hash,
        trial_days=14,
        now=NOW,
        uow=uow,
    )


def login(uow, password=PASSWORD, slug=None, issuer=None):
    return sessions.login(
        email=" ada@example.com ",
        password=password,
        tenant_slug=slug,
        now=NOW,
        refresh_ttl_s=TTL,
        uow=uow,
        tokens=issuer or FakeTokenIssuer(),
    )


def failures(uow) -> list[str]:
    return [f["metadata"]["reason"] for e, f in uow.audit.events if e == "auth.login" and f.get("outcome")]


def test_a_login_issues_a_token_for_the_one_workspace_and_a_refresh_token(password_hash):
    uow = FakeRegistryUnitOfWork()
    tenant = workspace(uow, "acme", password_hash)
    issuer = FakeTokenIssuer()
    pair = login(uow, issuer=issuer)
    assert pair.access_token == "access-1" and pair.expires_in == issuer.ttl_s
    [claims] = issuer.issued
    assert claims["tenant_id"] == tenant.id and claims["role"] == "worker"
    [token] = uow.refresh_tokens.live()
    assert token.expires_at == NOW + timedelta(seconds=TTL) and claims["session_id"] == token.family_id


def test_a_wrong_password_is_refused_and_the_failure_is_committed(password_hash):
    uow = FakeRegistryUnitOfWork()
    workspace(uow, "acme", password_hash)
    commits = uow.commits
    with pytest.raises(Unauthenticated) as refused:
        login(uow, password="wrong password!")
    assert refused.value.code == "invalid_credentials"
    assert failures(uow) == ["bad_password"] and uow.commits == commits + 1
    assert uow.refresh_tokens.live() == []


def test_an_unknown_email_gets_the_same_answer():
    uow = FakeRegistryUnitOfWork()
    with pytest.raises(Unauthenticated) as refused:
        login(uow)
    assert refused.value.code == "invalid_credentials" and failures(uow) == ["unknown_user"]


def test_several_workspaces_need_a_slug_and_a_foreign_slug_is_forbidden(password_hash):
    uow = FakeRegistryUnitOfWork()
    workspace(uow, "acme", password_hash)
    workspace(uow, "beta", password_hash)
    with pytest.raises(Invalid):
        login(uow)
    with pytest.raises(Forbidden):
        login(uow, slug="gamma")
    assert failures(uow) == ["tenant_required", "not_member"]
    assert login(uow, slug="beta").access_token


def refresh(uow, value, now=NOW):
    return sessions.refresh(
        refresh_token=value, now=now, refresh_ttl_s=TTL, uow=uow, tokens=FakeTokenIssuer()
    )


def test_a_refresh_token_rotates_and_its_reuse_revokes_the_whole_family(password_hash):
    uow = FakeRegistryUnitOfWork()
    workspace(uow, "acme", password_hash)
    first = login(uow)
    second = refresh(uow, first.refresh_token)
    assert second.refresh_token != first.refresh_token and len(uow.refresh_tokens.live()) == 2
    with pytest.raises(Unauthenticated) as reused:
        refresh(uow, first.refresh_token)
    assert reused.value.code == "refresh_token_reused"
    assert uow.refresh_tokens.live() == []
    assert uow.audit.names()[-1] == "auth.refresh_reused"
    with pytest.raises(Unauthenticated):
        refresh(uow, second.refresh_token)


def test_an_expired_refresh_token_is_refused(password_hash):
    uow = FakeRegistryUnitOfWork()
    workspace(uow, "acme", password_hash)
    pair = login(uow)
    with pytest.raises(Unauthenticated) as expired:
        refresh(uow, pair.refresh_token, now=NOW + timedelta(seconds=TTL))
    assert expired.value.code == "token_expired"
