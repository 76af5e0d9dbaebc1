"""The JWKS document and key rotation: the first key signs, every active key verifies."""

from __future__ import annotations

import json
import uuid

from joserfc.jwk import KeySet

from backend.core.tokens import TokenService, generate_key, load_signing_keys


def test_jwks_publishes_the_public_part_of_every_active_key(client, runtime):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200 and "max-age" in response.headers["Cache-Control"]
    keys = response.json["keys"]
    assert keys and all(k["kty"] == "EC" and k["alg"] == "ES256" and "d" not in k for k in keys)
    # A verifier holding only the published keys accepts our tokens.
    token = runtime.tokens.issue(
        user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="worker", session_id=uuid.uuid4()
    )
    verifier = TokenService(
        KeySet.import_key_set(response.json),
        issuer=runtime.settings.jwt_issuer,
        audience=runtime.settings.jwt_audience,
        ttl_s=60,
    )
    assert verifier.verify(token).role == "worker"


def test_rotation_first_key_signs_all_keys_verify(runtime):
    old, new = generate_key("old-key"), generate_key("new-key")
    private = json.dumps(KeySet([new, old]).as_dict(private=True))
    keys = load_signing_keys(runtime.settings.model_copy(update=dict(jwt_private_keys=private)))
    settings = runtime.settings
    rotated = TokenService(keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=60)
    before = TokenService(KeySet([old]), issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl_s=60)
    old_token = before.issue(
        user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="client", session_id=uuid.uuid4()
    )
    assert rotated.verify(old_token).role == "client"  # issued before the rotation, still valid
    new_token = rotated.issue(
        user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="worker", session_id=uuid.uuid4()
    )
    assert json.loads(_header(new_token))["kid"] == "new-key"
    assert {k["kid"] for k in rotated.jwks["keys"]} == {"new-key", "old-key"}
    assert all("d" not in k for k in rotated.jwks["keys"])


def _header(token: str) -> str:
    import base64

    segment = token.split(".")[0]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()


def test_rfc8414_metadata_leads_from_the_issuer_to_keys_that_verify_our_tokens(client, runtime):
    """A resource server knowing only `iss` finds the metadata, then the key set, then verifies."""
    issuer = runtime.settings.jwt_issuer
    metadata = client.get("/.well-known/oauth-authorization-server")
    assert metadata.status_code == 200
    body = metadata.json
    assert body["issuer"] == issuer
    assert body["jwks_uri"] == issuer.rstrip("/") + "/.well-known/jwks.json"
    assert body["token_endpoint"] == issuer.rstrip("/") + "/api/v1/auth/token"
    assert set(body["grant_types_supported"]) == {"password", "refresh_token"}
    jwks_path = body["jwks_uri"].removeprefix(issuer.rstrip("/"))
    keys = client.get(jwks_path).json
    token = runtime.tokens.issue(
        user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="worker", session_id=uuid.uuid4()
    )
    verifier = TokenService(
        KeySet.import_key_set(keys), issuer=issuer, audience=runtime.settings.jwt_audience, ttl_s=60
    )
    assert verifier.verify(token).role == "worker"
