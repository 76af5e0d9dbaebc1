"""JWT attack suite (RFC 8725 JWT best current practices, RFC 9068 access-token profile).

Every token is built by hand (tests/integration/defense/forge.py) and sent to the real app:
GET /api/v1/clients with the identity of a real worker of a real tenant. Each malicious token
differs from a valid one in one respect only, and the control tests prove that the same
builder with nothing changed is accepted, so a 401 here is caused by the attack itself.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import KeySet

from backend.core.tokens import LEEWAY_S, TokenService, generate_key, load_signing_keys
from tests.integration.defense.forge import (
    attacker_keys,
    b64url,
    b64url_decode,
    forge,
    replace_claims,
    segment,
)
from tests.sessions import session_token

ROUTE = "/api/v1/clients"
ATTACKER = attacker_keys()


@pytest.fixture(scope="module")
def app_key(runtime):
    """The app's own signing key (the same file the running app loaded)."""
    key = load_signing_keys(runtime.settings).keys[0]
    issued = runtime.tokens.issue(
        user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="worker", session_id=uuid.uuid4()
    )
    assert json.loads(b64url_decode(issued.split(".")[0]))["kid"] == key.kid
    return key


@pytest.fixture(scope="module")
def victim(module_tenants, owner_user_id):
    tenant = module_tenants("victim")
    return tenant, owner_user_id(tenant)


@pytest.fixture(scope="module")
def other_tenant(module_tenants):
    return module_tenants("other")


@pytest.fixture()
def header(app_key) -> dict:
    return {"alg": "ES256", "typ": "at+jwt", "kid": app_key.kid}


@pytest.fixture(scope="module")
def live_session(runtime, victim) -> str:
    """The `sid` of a real session of the victim (every accepted token names one)."""
    tenant, user_id = victim
    token = session_token(runtime, user_id=user_id, tenant_id=tenant.id)
    return json.loads(b64url_decode(token.split(".")[1]))["sid"]


@pytest.fixture()
def claims(runtime, victim, live_session) -> dict:
    tenant, user_id = victim
    now = int(time.time())
    return {
        "sid": live_session,
        "iss": runtime.settings.jwt_issuer,
        "aud": runtime.settings.jwt_audience,
        "sub": str(user_id),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "client_id": runtime.settings.oauth_client_id,
        "tenant_id": str(tenant.id),
        "role": "worker",
    }


def call(client, token: str):
    return client.get(ROUTE, headers={"Authorization": f"Bearer {token}"})


def assert_refused(response, code: str = "invalid_token") -> None:
    assert response.status_code == 401, response.json
    assert response.json == {"detail": code}


def signed(app_key, header: dict, claims: dict) -> str:
    return forge(header, claims, app_key.private_key)


# --- controls: the builder makes tokens the app accepts -------------------------------------


def test_control_hand_built_token_passes(client, app_key, header, claims):
    assert call(client, signed(app_key, header, claims)).status_code == 200


def test_control_typ_application_at_jwt_passes(client, app_key, header, claims):
    # RFC 9068 section 4: "at+jwt" or "application/at+jwt"; media types compare case-insensitively.
    for typ in ("application/at+jwt", "AT+JWT"):
        assert call(client, signed(app_key, {**header, "typ": typ}, claims)).status_code == 200


def test_expired_within_leeway_passes(client, app_key, header, claims):
    """Clock skew: a token expired 10 s ago is still accepted (leeway LEEWAY_S, at most 60 s)."""
    assert 10 < LEEWAY_S <= 60
    claims = {**claims, "exp": int(time.time()) - 10}
    assert call(client, signed(app_key, header, claims)).status_code == 200


def test_audience_list_containing_ours_passes(client, app_key, header, claims):
    claims = {**claims, "aud": ["another-api", claims["aud"]]}
    assert call(client, signed(app_key, header, claims)).status_code == 200


# --- algorithm attacks (RFC 8725 2.1, 3.1, 3.2) ----------------------------------------------


def test_alg_none_without_signature(client, header, claims):
    assert_refused(call(client, forge({**header, "alg": "none"}, claims, None)))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_keeping_a_valid_signature(client, app_key, header, claims, alg):
    valid = signed(app_key, header, claims)
    _, payload, signature = valid.split(".")
    assert_refused(call(client, f"{segment({**header, 'alg': alg})}.{payload}.{signature}"))


@pytest.mark.parametrize("alg", ["RS256", "ES384", "EdDSA"])
def test_algorithm_outside_allow_list(client, header, claims, alg):
    # Signed correctly for its own algorithm, with the app's kid: only the allow-list stops it.
    assert_refused(call(client, forge({**header, "alg": alg}, claims, ATTACKER[alg])))


@pytest.mark.parametrize("encoding", ["pem", "der", "jwk"])
def test_hs256_with_the_public_key_as_hmac_secret(client, app_key, header, claims, encoding):
    public = app_key.public_key
    secret = {
        "pem": lambda: public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": lambda: public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": lambda: json.dumps(app_key.as_dict(private=False)).encode(),
    }[encoding]()
    assert_refused(call(client, forge({**header, "alg": "HS256"}, claims, secret)))


# --- signature ------------------------------------------------------------------------------


def test_bad_signature(client, app_key, header, claims):
    head, payload, signature = signed(app_key, header, claims).split(".")
    raw = bytearray(b64url_decode(signature))
    raw[10] ^= 0x01
    assert_refused(call(client, f"{head}.{payload}.{b64url(bytes(raw))}"))


@pytest.mark.parametrize("signature", ["", "AAAA", b64url(bytes(64))])
def test_empty_short_or_zero_signature(client, app_key, header, claims, signature):
    head, payload, _ = signed(app_key, header, claims).split(".")
    assert_refused(call(client, f"{head}.{payload}.{signature}"))


def test_signed_by_attacker_key_with_our_kid(client, header, claims):
    assert_refused(call(client, forge(header, claims, ATTACKER["ES256"])))


@pytest.mark.parametrize("value", ["a.b", "not-a-token", "a.b.c.d.e", "..", "e30.e30."])
def test_malformed(client, value):
    assert_refused(call(client, value))


# --- time claims (RFC 7519 4.1.4-4.1.6) -------------------------------------------------------


@pytest.mark.parametrize("ago", [61, LEEWAY_S + 1, 3600])
def test_expired_beyond_leeway(client, app_key, header, claims, ago):
    claims = {**claims, "exp": int(time.time()) - ago}
    assert_refused(call(client, signed(app_key, header, claims)), "token_expired")


def test_missing_exp(client, app_key, header, claims):
    claims.pop("exp")
    assert_refused(call(client, signed(app_key, header, claims)))


@pytest.mark.parametrize("exp", ["9999999999", None, True, [9999999999], 1e400])
def test_exp_not_a_number(client, app_key, header, claims, exp):
    # 1e400 is serialised as Infinity, which a NumericDate never is.
    claims["exp"] = exp
    assert_refused(call(client, signed(app_key, header, claims)))


def test_nbf_in_the_future(client, app_key, header, claims):
    claims["nbf"] = int(time.time()) + LEEWAY_S + 60
    assert_refused(call(client, signed(app_key, header, claims)))


def test_iat_in_the_future(client, app_key, header, claims):
    claims["iat"] = int(time.time()) + LEEWAY_S + 60
    assert_refused(call(client, signed(app_key, header, claims)))


# --- issuer, audience and required claims -----------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"iss": "https://evil.example"},
        {"iss": ["http://127.0.0.1:8000"]},
        {"aud": "another-api"},
        {"aud": ["another-api"]},
        {"aud": []},
        {"role": "admin"},
        {"role": ["worker"]},
        {"sub": "not-a-uuid"},
        {"tenant_id": "not-a-uuid"},
        {"client_id": "another-oauth-client"},
    ],
    ids=lambda change: "-".join(f"{k}={v}" for k, v in change.items()),
)
def test_wrong_claim_value(client, app_key, header, claims, change):
    assert_refused(call(client, signed(app_key, header, {**claims, **change})))


@pytest.mark.parametrize("name", ["iss", "aud", "sub", "iat", "jti", "client_id", "tenant_id", "role", "sid"])
def test_missing_required_claim(client, app_key, header, claims, name):
    claims.pop(name)
    assert_refused(call(client, signed(app_key, header, claims)))


# --- token type (RFC 8725 3.11, RFC 9068 4) -----------------------------------------------------


@pytest.mark.parametrize("typ", ["JWT", "jwt", "application/jwt", "at+jwt; x=y", "", None, "missing"])
def test_typ_other_than_at_jwt(client, app_key, header, claims, typ):
    header = {k: v for k, v in header.items() if k != "typ"}
    if typ != "missing":
        header["typ"] = typ
    assert_refused(call(client, signed(app_key, header, claims)))


# --- key selection (RFC 8725 3.10) --------------------------------------------------------------


@pytest.mark.parametrize("kid", ["unknown-kid", "../../../../dev/null", "", None, 7, "missing"])
def test_unknown_or_missing_kid(client, app_key, header, claims, kid):
    header = {k: v for k, v in header.items() if k != "kid"}
    if kid != "missing":
        header["kid"] = kid
    assert_refused(call(client, signed(app_key, header, claims)))


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://evil.example/jwks.json"},
        {"x5u": "https://evil.example/cert.pem"},
        {"x5c": ["MIIB"]},
        {"crit": ["exp"]},
    ],
    ids=lambda extra: next(iter(extra)),
)
def test_key_carrying_or_critical_header_even_with_a_valid_signature(client, app_key, header, claims, extra):
    assert_refused(call(client, signed(app_key, {**header, **extra}, claims)))


def test_embedded_jwk_of_the_attacker(client, header, claims):
    """The classic: embed your own public key in the header and sign with it."""
    from joserfc.jwk import ECKey

    attacker = ECKey.import_key(ATTACKER["ES256"])
    embedded = {**header, "jwk": attacker.as_dict(private=False)}
    assert_refused(call(client, forge(embedded, claims, ATTACKER["ES256"])))
    del embedded["kid"]
    assert_refused(call(client, forge(embedded, claims, ATTACKER["ES256"])))


def test_embedded_jwk_even_with_a_valid_signature(client, app_key, header, claims):
    embedded = {**header, "jwk": app_key.as_dict(private=False)}
    assert_refused(call(client, signed(app_key, embedded, claims)))


# --- tampered tenant or role --------------------------------------------------------------------


def test_tenant_claim_tampered_without_re_signing(client, app_key, header, claims, other_tenant):
    token = replace_claims(signed(app_key, header, claims), tenant_id=str(other_tenant.id))
    assert_refused(call(client, token))


def test_tenant_claim_tampered_and_re_signed_by_attacker(client, header, claims, other_tenant):
    claims["tenant_id"] = str(other_tenant.id)
    assert_refused(call(client, forge(header, claims, ATTACKER["ES256"])))


def test_tenant_claim_of_a_tenant_without_membership(client, app_key, header, claims, other_tenant):
    """Even a correctly signed token is refused for a tenant the user does not belong to:
    the registry is the authority, not the claim."""
    claims["tenant_id"] = str(other_tenant.id)
    assert_refused(call(client, signed(app_key, header, claims)))


@pytest.fixture()
def client_member(module_tenants, client_token) -> str:
    """A valid token of a real client membership of the victim tenant."""
    _, headers = client_token(module_tenants("victim"))
    return headers["Authorization"].removeprefix("Bearer ")


def test_role_claim_tampered_without_re_signing(client, client_member):
    assert call(client, client_member).status_code == 403  # a client on a worker route
    token = replace_claims(client_member, role="worker", client_record_id=None)
    assert_refused(call(client, token))


def test_role_claim_tampered_and_re_signed_by_attacker(client, app_key, client_member):
    head, payload, _ = client_member.split(".")
    claims = json.loads(b64url_decode(payload))
    claims.update(role="worker")
    claims.pop("client_record_id")
    header = json.loads(b64url_decode(head))
    assert_refused(call(client, forge(header, claims, ATTACKER["ES256"])))


def test_role_claim_not_matching_the_membership(client, app_key, client_member):
    """Correctly signed, but the registry says this user is a client: refused."""
    claims = json.loads(b64url_decode(client_member.split(".")[1]))
    claims.update(role="worker")
    claims.pop("client_record_id")
    header = {"alg": "ES256", "typ": "at+jwt", "kid": app_key.kid}
    assert_refused(call(client, signed(app_key, header, claims)))


# --- key rotation ---------------------------------------------------------------------------------


def test_key_rotation(client, runtime, monkeypatch, victim, live_session):
    """Two active keys: the first signs, both verify. Once the old key is removed from the
    set, tokens it signed are refused."""
    tenant, user_id = victim
    settings = runtime.settings
    old, new = generate_key(), generate_key()

    def service(*keys):
        return TokenService(
            KeySet(list(keys)),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_s=settings.access_token_ttl_s,
        )

    session = uuid.UUID(live_session)
    old_token = service(old).issue(user_id=user_id, tenant_id=tenant.id, role="worker", session_id=session)
    monkeypatch.setattr(runtime, "tokens", service(new, old))  # rotation: new signs first
    new_token = runtime.tokens.issue(user_id=user_id, tenant_id=tenant.id, role="worker", session_id=session)
    assert json.loads(b64url_decode(new_token.split(".")[0]))["kid"] == new.kid
    assert call(client, new_token).status_code == 200
    assert call(client, old_token).status_code == 200  # second active key still verifies

    monkeypatch.setattr(runtime, "tokens", service(new))  # the old key is retired
    assert call(client, new_token).status_code == 200
    assert_refused(call(client, old_token))
