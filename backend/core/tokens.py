"""Access tokens: RFC 9068 JWTs signed with ES256 through joserfc.

Verification pins the algorithm, requires `typ: at+jwt` (or `application/at+jwt`), refuses
key-carrying headers (`jku`, `jwk`, `x5u`, `x5c`: RFC 8725 3.10), looks the key up by `kid`
in our own set only, and validates every claim with `exp` essential (joserfc's `decode`
checks only the signature).
Several keys can be active: the first one signs, all of them verify (rotation).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import ECKey, KeySet

from backend.core.config import Settings

ALGORITHM = "ES256"
TOKEN_TYPE = "at+jwt"
# RFC 9068 section 4: "at+jwt" or "application/at+jwt"; media types are case-insensitive
# (RFC 7515 4.1.9). Anything else, or no `typ`, is refused (RFC 8725 3.11).
ACCEPTED_TYPES = frozenset({TOKEN_TYPE, f"application/{TOKEN_TYPE}"})
LEEWAY_S = 30
FORBIDDEN_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c", "crit"})
# RFC 9068 `client_id` names the OAuth client (Settings.oauth_client_id); a client's record
# in the workspace (role `client`) travels in this private claim instead.
CLIENT_RECORD_CLAIM = "client_record_id"
DEFAULT_OAUTH_CLIENT_ID = "saas-app"


class TokenError(Exception):
    """A token that must not be accepted; `code` is the 401 detail code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
    client_id: uuid.UUID | None
    jti: str
    expires_at: int
    session_id: uuid.UUID  # `sid`: the session (refresh-token family) the token belongs to


def generate_key(kid: str | None = None) -> ECKey:
    kid = kid or uuid.uuid4().hex[:16]
    return ECKey.generate_key("P-256", parameters={"kid": kid, "alg": ALGORITHM, "use": "sig"})


def load_signing_keys(settings: Settings) -> KeySet:
    """Production: JWT_PRIVATE_KEYS (a private JWK set). Development: a key kept under var/."""
    if settings.jwt_private_keys:
        return KeySet.import_key_set(json.loads(settings.jwt_private_keys))
    path = settings.var_dir / "jwt-keys.json"
    if not path.exists():
        _create_private(path, KeySet([generate_key()]).as_dict(private=True))
    return KeySet.import_key_set(json.loads(path.read_text()))


def _create_private(path: Path, data: dict) -> None:
    """Write the file once: if another process won the race, its key stays (one key for all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    try:
        os.link(tmp, path)  # atomic and refuses to replace an existing file
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def public_jwks(keys: KeySet) -> dict:
    return keys.as_dict(private=False)


class TokenService:
    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        ttl_s: int,
        oauth_client_id: str = DEFAULT_OAUTH_CLIENT_ID,
    ) -> None:
        self._keys = keys
        self._oauth_client_id = oauth_client_id
        self._signing_key = keys.keys[0]
        self._issuer = issuer
        self._audience = audience
        self.ttl_s = ttl_s
        self.jwks = public_jwks(keys)  # every active key verifies; served at /.well-known/jwks.json
        self._claims_registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_S,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
            client_id={"essential": True, "value": oauth_client_id},
            tenant_id={"essential": True},
            sid={"essential": True},
            role={"essential": True, "values": ["worker", "client"]},
        )

    def issue(
        self,
        *,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID,
        role: str,
        session_id: uuid.UUID,
        client_id: uuid.UUID | None = None,
        now: float | None = None,
    ) -> str:
        issued_at = int(now if now is not None else time.time())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "client_id": self._oauth_client_id,
            "tenant_id": str(tenant_id),
            "role": role,
        }
        if client_id is not None:
            claims[CLIENT_RECORD_CLAIM] = str(client_id)
        claims["sid"] = str(session_id)
        header = {"alg": ALGORITHM, "typ": TOKEN_TYPE, "kid": self._signing_key.kid}
        return jwt.encode(header, claims, self._signing_key, algorithms=[ALGORITHM])

    def verify(self, value: str) -> AccessClaims:
        try:
            token = jwt.decode(value, self._key_for, algorithms=[ALGORITHM])
        except (JoseError, ValueError, TypeError, KeyError):
            raise TokenError("invalid_token") from None
        typ = token.header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES:
            raise TokenError("invalid_token")
        if FORBIDDEN_HEADERS & token.header.keys():
            raise TokenError("invalid_token")
        try:
            self._claims_registry.validate(token.claims)
        except ExpiredTokenError:
            raise TokenError("token_expired") from None
        except JoseError:
            raise TokenError("invalid_token") from None
        try:
            client = token.claims.get(CLIENT_RECORD_CLAIM)
            return AccessClaims(
                user_id=uuid.UUID(token.claims["sub"]),
                tenant_id=uuid.UUID(token.claims["tenant_id"]),
                role=token.claims["role"],
                client_id=uuid.UUID(client) if client else None,
                jti=token.claims["jti"],
                expires_at=int(token.claims["exp"]),
                session_id=uuid.UUID(token.claims["sid"]),
            )
        except (ValueError, TypeError, AttributeError):
            raise TokenError("invalid_token") from None

    def _key_for(self, guest):
        kid = guest.headers().get("kid")
        if not isinstance(kid, str):
            raise TokenError("invalid_token")
        try:
            return self._keys.get_by_kid(kid)
        except (ValueError, KeyError):
            raise TokenError("invalid_token") from None
