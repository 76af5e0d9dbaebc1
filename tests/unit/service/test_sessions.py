"""Session rules on in-memory units of work (tests/unit/fakes.py): login picks the workspace,
failures are audited and committed, refresh tokens rotate, a reused one revokes its family,
logout revokes. Token signatures, rate limits and SQL locking are tested in tests/integration."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher

from backend.core.passwords import hash_password, needs_rehash, verify_password
from backend.domain.errors import Forbidden, Invalid, Unauthenticated
from backend.domain.identity import Role
from backend.domain.tenants import TenantStatus
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


def test_a_failed_password_names_the_workspace_it_was_aimed_at(password_hash):
    uow = FakeRegistryUnitOfWork()
    acme = workspace(uow, "acme", password_hash)
    workspace(uow, "beta", password_hash)
    for slug in (None, "acme"):
        with pytest.raises(Unauthenticated):
            login(uow, password="wrong password!", slug=slug)
    tenants_named = [f["tenant_id"] for e, f in uow.audit.events if e == "auth.login" and f.get("outcome")]
    assert tenants_named == [None, acme.id], "ambiguous without a slug, named with one"


def test_an_account_without_a_password_or_a_workspace_is_refused_and_the_reason_recorded(password_hash):
    uow = FakeRegistryUnitOfWork()
    tenants.provision_tenant(
        slug="acme", name="Acme", owner_email="ada@example.com", trial_days=14, now=NOW, uow=uow
    )  # an owner provisioned by an operator: no password yet
    with pytest.raises(Unauthenticated) as no_password:
        login(uow)
    assert no_password.value.code == "invalid_credentials"
    lone = FakeRegistryUnitOfWork()
    with lone:
        lone.users.add(uuid.uuid4(), "ada@example.com", "Ada", password_hash)
        lone.commit()
    with pytest.raises(Forbidden):
        login(lone)
    assert failures(uow) == ["no_password"] and failures(lone) == ["no_membership"]
    assert lone.refresh_tokens.live() == []


def test_a_hash_with_old_parameters_is_upgraded_at_login():
    uow = FakeRegistryUnitOfWork()
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    workspace(uow, "acme", weak)
    login(uow)
    stored = uow.users.by_email("ada@example.com").password_hash
    assert stored != weak and not needs_rehash(stored) and verify_password(stored, PASSWORD)


def test_a_successful_login_is_audited_with_the_membership(password_hash):
    uow = FakeRegistryUnitOfWork()
    acme = workspace(uow, "acme", password_hash)
    sessions.login(
        email="ada@example.com",
        password=PASSWORD,
        tenant_slug=None,
        now=NOW,
        refresh_ttl_s=TTL,
        uow=uow,
        tokens=FakeTokenIssuer(),
        request_id="r1",
    )
    [fields] = [f for e, f in uow.audit.events if e == "auth.login"]
    assert fields["tenant_id"] == acme.id and fields["actor_role"] == "worker" and "outcome" not in fields
    assert fields["request_id"] == "r1" and fields["metadata"] is None


def test_a_refresh_is_audited_and_keeps_the_session(password_hash):
    uow = FakeRegistryUnitOfWork()
    workspace(uow, "acme", password_hash)
    issuer = FakeTokenIssuer()
    first = login(uow, issuer=issuer)
    renewer = FakeTokenIssuer()
    sessions.refresh(refresh_token=first.refresh_token, now=NOW, refresh_ttl_s=TTL, uow=uow, tokens=renewer)
    assert renewer.issued[0]["session_id"] == issuer.issued[0]["session_id"]
    assert uow.audit.names()[-1] == "auth.refresh"


def test_an_unknown_or_logged_out_refresh_token_is_refused(password_hash):
    uow = FakeRegistryUnitOfWork()
    acme = workspace(uow, "acme", password_hash)
    with pytest.raises(Unauthenticated) as unknown:
        refresh(uow, "never-issued")
    assert unknown.value.code == "invalid_token"
    issuer = FakeTokenIssuer()
    pair = login(uow, issuer=issuer)
    owner = uow.users.by_email("ada@example.com").id
    sessions.logout(
        user_id=owner,
        tenant_id=acme.id,
        role=Role.WORKER,
        session_id=issuer.issued[0]["session_id"],
        now=NOW,
        uow=uow,
    )
    assert uow.audit.names()[-1] == "auth.logout"
    with pytest.raises(Unauthenticated) as revoked:
        refresh(uow, pair.refresh_token)
    assert revoked.value.code == "invalid_token"


def test_a_logout_without_a_session_ends_every_session_in_this_workspace_only(password_hash):
    uow = FakeRegistryUnitOfWork()
    acme = workspace(uow, "acme", password_hash)
    workspace(uow, "beta", password_hash)
    login(uow, slug="acme")
    login(uow, slug="acme")
    kept = login(uow, slug="beta")
    owner = uow.users.by_email("ada@example.com").id
    sessions.logout(user_id=owner, tenant_id=acme.id, role=Role.WORKER, session_id=None, now=NOW, uow=uow)
    assert [t.tenant_id for t in uow.refresh_tokens.live()] == [uow.tenants.get_by_slug("beta").id]
    assert refresh(uow, kept.refresh_token).access_token


@pytest.mark.parametrize("gone", ["membership", "tenant"])
def test_a_refresh_after_the_membership_or_the_workspace_went_ends_the_session(password_hash, gone):
    uow = FakeRegistryUnitOfWork()
    acme = workspace(uow, "acme", password_hash)
    pair = login(uow)
    owner = uow.users.by_email("ada@example.com").id
    with uow:
        if gone == "membership":
            uow.memberships.remove(owner, acme.id)
        else:
            uow.tenants.rows[acme.id] = replace(acme, status=TenantStatus.DELETED)
        uow.commit()
    with pytest.raises(Unauthenticated) as refused:
        refresh(uow, pair.refresh_token)
    assert refused.value.code == "invalid_token" and uow.refresh_tokens.live() == []
