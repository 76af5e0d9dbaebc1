"""The TOTP second factor on in-memory units of work (tests/unit/fakes.py) with the real
RFC 6238 arithmetic (pyotp, no I/O) and a fake secret box: enrolment confirmed by a code,
recovery codes shown once and spent once, a code never replayed, the login's second step,
disabling with password and code, the operator's reset. The routes, their rate limits and the
sealed secret at rest are tested in tests/integration/identity/test_mfa.py."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pyotp
import pytest

from backend.domain.errors import Conflict, Forbidden, NotFound, Unauthenticated
from backend.domain.identity import MfaChallenge, Role, TokenPair
from backend.infrastructure.totp import PyOtpTotp
from backend.service.identity import mfa, sessions
from tests.unit.fakes import FakeRegistryUnitOfWork, FakeSecretBox, FakeTokenIssuer
from tests.unit.service.helpers import NOW, PASSWORD, events, owner_id, workspace

BOX, TOTP = FakeSecretBox(), PyOtpTotp()


@pytest.fixture()
def uow():
    uow = FakeRegistryUnitOfWork()
    workspace(uow, "acme")
    return uow


def who(uow):
    return {"user_id": owner_id(uow), "tenant_id": uow.tenants.get_by_slug("acme").id, "role": Role.WORKER}


def code_at(secret: str, when=NOW) -> str:
    return pyotp.TOTP(secret).at(when)


def enrol(uow) -> tuple[str, list[str]]:
    """An enabled factor: its secret and recovery codes."""
    enrolment = mfa.start_enrolment(user_id=owner_id(uow), issuer="Acme", uow=uow, box=BOX, totp=TOTP)
    codes = mfa.confirm_enrolment(
        **who(uow), code=code_at(enrolment.secret), now=NOW, uow=uow, box=BOX, totp=TOTP
    )
    return enrolment.secret, codes


def first_step(uow, now=NOW):
    return sessions.login(
        email="owner@example.com",
        password=PASSWORD,
        tenant_slug=None,
        now=now,
        refresh_ttl_s=3600,
        uow=uow,
        tokens=FakeTokenIssuer(),
    )


def second_step(uow, challenge, code, now=NOW):
    return mfa.complete_login(
        challenge=challenge,
        code=code,
        now=now,
        refresh_ttl_s=3600,
        uow=uow,
        tokens=FakeTokenIssuer(),
        box=BOX,
        totp=TOTP,
    )


def test_enrolment_stores_the_secret_sealed_and_is_off_until_confirmed(uow):
    enrolment = mfa.start_enrolment(user_id=owner_id(uow), issuer="Acme", uow=uow, box=BOX, totp=TOTP)
    factor = uow.mfa.get(owner_id(uow))
    assert factor.enabled_at is None and factor.secret_sealed == BOX.seal(enrolment.secret.encode())
    assert (
        enrolment.otpauth_uri.startswith("otpauth://totp/") and "owner%40example.com" in enrolment.otpauth_uri
    )
    assert mfa.status(user_id=owner_id(uow), uow=uow) == {
        "enabled": False,
        "enabled_at": None,
        "recovery_codes_left": 0,
    }
    assert isinstance(first_step(uow), TokenPair), "a pending factor asks for nothing at login"


def test_a_new_enrolment_replaces_a_pending_one(uow):
    first = mfa.start_enrolment(user_id=owner_id(uow), issuer="Acme", uow=uow, box=BOX, totp=TOTP)
    second = mfa.start_enrolment(user_id=owner_id(uow), issuer="Acme", uow=uow, box=BOX, totp=TOTP)
    with pytest.raises(Forbidden):
        mfa.confirm_enrolment(**who(uow), code=code_at(first.secret), now=NOW, uow=uow, box=BOX, totp=TOTP)
    mfa.confirm_enrolment(**who(uow), code=code_at(second.secret), now=NOW, uow=uow, box=BOX, totp=TOTP)


def test_confirming_turns_it_on_gives_ten_recovery_codes_and_is_audited(uow):
    _, codes = enrol(uow)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(code) == 19 and code.count("-") == 3 for code in codes)
    status = mfa.status(user_id=owner_id(uow), uow=uow)
    assert status == {"enabled": True, "enabled_at": NOW, "recovery_codes_left": 10}
    assert len(events(uow, "auth.mfa_enabled")) == 1
    with pytest.raises(Conflict) as again:
        mfa.start_enrolment(user_id=owner_id(uow), issuer="Acme", uow=uow, box=BOX, totp=TOTP)
    assert again.value.code == "mfa_already_enabled"
    with pytest.raises(Conflict) as confirm_again:
        mfa.confirm_enrolment(**who(uow), code="000000", now=NOW, uow=uow, box=BOX, totp=TOTP)
    assert confirm_again.value.code == "mfa_already_enabled"


def test_a_wrong_confirmation_code_is_refused_audited_and_leaves_it_off(uow):
    with pytest.raises(Conflict) as not_started:
        mfa.confirm_enrolment(**who(uow), code="123456", now=NOW, uow=uow, box=BOX, totp=TOTP)
    assert not_started.value.code == "mfa_not_enrolling"
    enrolment = mfa.start_enrolment(user_id=owner_id(uow), issuer="Acme", uow=uow, box=BOX, totp=TOTP)
    wrong = code_at(enrolment.secret, NOW + timedelta(minutes=10))
    with pytest.raises(Forbidden) as refused:
        mfa.confirm_enrolment(**who(uow), code=wrong, now=NOW, uow=uow, box=BOX, totp=TOTP)
    assert refused.value.code == "invalid_mfa_code"
    [fields] = events(uow, "auth.mfa_failed")
    assert fields["outcome"] == "failure" and fields["metadata"] == {"reason": "confirm"}
    assert uow.mfa.get(owner_id(uow)).enabled_at is None and uow.mfa.recovery_codes_left(owner_id(uow)) == 0


def test_with_a_factor_the_password_gives_a_challenge_and_the_code_the_tokens(uow):
    secret, _ = enrol(uow)
    challenge = first_step(uow)
    assert isinstance(challenge, MfaChallenge) and challenge.expires_in == 300
    assert uow.refresh_tokens.live() == [] and len(events(uow, "auth.mfa_challenged")) == 1
    later = NOW + timedelta(seconds=30)
    pair = second_step(uow, challenge.challenge, code_at(secret, later), now=later)
    assert isinstance(pair, TokenPair) and len(uow.refresh_tokens.live()) == 1
    [fields] = [f for f in events(uow, "auth.login") if f.get("metadata")]
    assert fields["metadata"] == {"reason": "mfa_totp"}
    with pytest.raises(Unauthenticated) as spent:
        second_step(uow, challenge.challenge, code_at(secret, later), now=later)
    assert spent.value.code == "invalid_token"


def test_a_code_is_never_accepted_twice(uow):
    secret, _ = enrol(uow)  # the enrolment spent NOW's code
    with pytest.raises(Unauthenticated) as replayed:
        second_step(uow, first_step(uow).challenge, code_at(secret, NOW))
    assert replayed.value.code == "invalid_mfa_code"


def test_a_wrong_code_is_audited_and_the_challenge_stays_usable_until_it_expires(uow):
    secret, _ = enrol(uow)
    challenge = first_step(uow).challenge
    with pytest.raises(Unauthenticated) as wrong:
        second_step(uow, challenge, code_at(secret, NOW + timedelta(hours=1)))  # well formed, wrong now
    assert wrong.value.code == "invalid_mfa_code"
    assert events(uow, "auth.mfa_failed")[-1]["metadata"] == {"reason": "login"}
    expired = NOW + timedelta(seconds=300)
    with pytest.raises(Unauthenticated) as late:
        second_step(uow, challenge, code_at(secret, expired), now=expired)
    assert late.value.code == "token_expired"
    later = NOW + timedelta(seconds=30)
    assert isinstance(second_step(uow, challenge, code_at(secret, later), now=later), TokenPair)


def test_a_recovery_code_works_once_whatever_its_dashes_and_case(uow):
    _, codes = enrol(uow)
    typed = codes[0].replace("-", " ").upper()
    pair = second_step(uow, first_step(uow).challenge, typed)
    assert isinstance(pair, TokenPair)
    [used] = events(uow, "auth.mfa_recovery_code_used")
    assert used["metadata"] == {"count": 9}
    assert mfa.status(user_id=owner_id(uow), uow=uow)["recovery_codes_left"] == 9
    with pytest.raises(Unauthenticated):
        second_step(uow, first_step(uow).challenge, codes[0])


def test_a_challenge_outlives_neither_the_membership_nor_the_factor(uow):
    secret, _ = enrol(uow)
    later = NOW + timedelta(seconds=30)
    challenge = first_step(uow).challenge
    with uow:
        uow.memberships.remove(owner_id(uow), who(uow)["tenant_id"])
        uow.commit()
    with pytest.raises(Unauthenticated) as left:
        second_step(uow, challenge, code_at(secret, later), now=later)
    assert left.value.code == "invalid_token"
    uow = FakeRegistryUnitOfWork()
    workspace(uow, "acme")
    secret, _ = enrol(uow)
    challenge = first_step(uow).challenge
    mfa.reset_by_operator(email="owner@example.com", now=NOW, uow=uow)
    with pytest.raises(Unauthenticated) as reset:
        second_step(uow, challenge, code_at(secret, later), now=later)
    assert reset.value.code == "invalid_token"


def disable(uow, password=PASSWORD, code="000000"):
    mfa.disable(**who(uow), password=password, code=code, now=NOW, uow=uow, box=BOX, totp=TOTP)


def test_disabling_needs_the_password_and_a_code(uow):
    secret, codes = enrol(uow)
    later = NOW + timedelta(seconds=30)
    with pytest.raises(Forbidden) as bad_password:
        disable(uow, password="not my password", code=code_at(secret, later))
    assert bad_password.value.code == "invalid_password"
    with pytest.raises(Forbidden) as bad_code:
        disable(uow, code="not-a-code")
    assert bad_code.value.code == "invalid_mfa_code"
    reasons = [f["metadata"]["reason"] for f in events(uow, "auth.mfa_failed")]
    assert reasons == ["disable_password", "disable"]
    assert uow.mfa.get(owner_id(uow)).enabled_at == NOW
    disable(uow, code=codes[3])
    assert uow.mfa.get(owner_id(uow)) is None and uow.mfa.recovery_codes_left(owner_id(uow)) == 0
    assert events(uow, "auth.mfa_disabled")[0]["metadata"] == {"reason": "user"}
    with pytest.raises(Conflict) as off:
        disable(uow, code=code_at(secret, later))
    assert off.value.code == "mfa_not_enabled"


def test_the_operator_reset_removes_the_factor_ends_sessions_and_is_recorded_in_each_workspace(uow):
    workspace(uow, "beta")
    enrol(uow)
    with uow:
        uow.refresh_tokens.add(
            family_id=uuid.uuid4(),
            user_id=owner_id(uow),
            tenant_id=uow.tenants.get_by_slug("beta").id,
            token_hash=b"beta",
            issued_at=NOW,
            expires_at=NOW + timedelta(hours=1),
        )
        uow.commit()
    assert mfa.reset_by_operator(email=" owner@example.com ", now=NOW, uow=uow) == owner_id(uow)
    assert uow.mfa.get(owner_id(uow)) is None and uow.refresh_tokens.live() == []
    rows = events(uow, "auth.mfa_disabled")
    assert {f["tenant_id"] for f in rows} == {t.id for t in uow.tenants.list()}
    assert all(f["metadata"] == {"reason": "operator"} for f in rows)
    with pytest.raises(Conflict) as none:
        mfa.reset_by_operator(email="owner@example.com", now=NOW, uow=uow)
    assert none.value.code == "mfa_not_enabled"
    with pytest.raises(NotFound):
        mfa.reset_by_operator(email="nobody@example.com", now=NOW, uow=uow)


def test_a_user_deleted_meanwhile_cannot_enrol_or_disable(uow):
    nobody = {"user_id": uuid.uuid4(), "tenant_id": uuid.uuid4(), "role": Role.CLIENT}
    with pytest.raises(Unauthenticated) as enrol_gone:
        mfa.start_enrolment(user_id=nobody["user_id"], issuer="Acme", uow=uow, box=BOX, totp=TOTP)
    with pytest.raises(Unauthenticated) as disable_gone:
        mfa.disable(**nobody, password=PASSWORD, code="123456", now=NOW, uow=uow, box=BOX, totp=TOTP)
    assert enrol_gone.value.code == disable_gone.value.code == "invalid_token"
    assert uow.mfa.rows == {}
