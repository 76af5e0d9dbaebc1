"""Our access tokens as another resource server sees them: discovered through RFC 8414 metadata,
validated strictly as RFC 9068 JWTs by PyJWT and joserfc (the metadata's fields and the RFC 6750
challenges: test_jwks.py, foundation/test_error_contract.py)."""

from __future__ import annotations

import uuid

import jwt as pyjwt
import pytest
from joserfc import jwt as josejwt
from joserfc.jwk import KeySet

from backend.core.tokens import CLIENT_RECORD_CLAIM
from tests.integration.identity.conftest import mark_verified

# RFC 9068 section 2.2: every one of these is required in an access token.
RFC9068_CLAIMS = ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"]


def discover(client) -> tuple[dict, dict]:
    """What a resource server does: the metadata from the issuer, then the keys it names."""
    metadata = client.get("/.well-known/oauth-authorization-server")
    assert metadata.status_code == 200, metadata.json
    jwks = client.get(metadata.json["jwks_uri"].removeprefix(metadata.json["issuer"]))
    assert jwks.status_code == 200
    return metadata.json, jwks.json


def strict_pyjwt(token: str, jwks: dict, *, issuer: str, audience: str, client_id: str) -> dict:
    header = pyjwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"  # RFC 9068 section 4
    key = pyjwt.PyJWKSet.from_dict(jwks)[header["kid"]]
    claims = pyjwt.decode(
        token,
        key,
        algorithms=["ES256"],
        audience=audience,
        issuer=issuer,
        options={"require": RFC9068_CLAIMS, "strict_aud": True},
    )
    assert claims["client_id"] == client_id
    return claims


def strict_joserfc(token: str, jwks: dict, *, issuer: str, audience: str, client_id: str) -> dict:
    decoded = josejwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256"])
    assert decoded.header["typ"] == "at+jwt"
    josejwt.JWTClaimsRegistry(
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
        client_id={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
    ).validate(decoded.claims)
    return decoded.claims


@pytest.fixture()
def logged_in(client, signup, login, runtime):
    """A worker's token pair from a real signup and login."""
    response, body = signup()
    assert response.status_code == 201, response.json
    mark_verified(runtime, uuid.UUID(response.json["user"]["id"]))
    pair = login(body["email"])
    assert pair.status_code == 200, pair.json
    return response.json, pair


def test_worker_token_passes_strict_pyjwt_and_joserfc(client, runtime, logged_in):
    account, pair = logged_in
    metadata, jwks = discover(client)
    expected = {
        "issuer": metadata["issuer"],
        "audience": runtime.settings.jwt_audience,
        "client_id": runtime.settings.oauth_client_id,
    }
    token = pair.json["access_token"]
    claims = strict_pyjwt(token, jwks, **expected)
    assert claims["sub"] == account["user"]["id"] and claims["role"] == "worker"
    assert CLIENT_RECORD_CLAIM not in claims
    assert strict_joserfc(token, jwks, **expected)["sub"] == account["user"]["id"]


def test_client_token_keeps_the_oauth_client_id_and_moves_the_record(client, runtime, member):
    m = member()
    token = m.client["Authorization"].removeprefix("Bearer ")
    metadata, jwks = discover(client)
    claims = strict_pyjwt(
        token,
        jwks,
        issuer=metadata["issuer"],
        audience=runtime.settings.jwt_audience,
        client_id=runtime.settings.oauth_client_id,
    )
    assert claims[CLIENT_RECORD_CLAIM] == str(m.client_id)
    assert client.get("/api/v1/appointments", headers=m.client).status_code == 200
