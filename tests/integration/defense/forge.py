"""Hand-built JWS compact tokens for the attack suite: base64url JSON and a signature made
with `cryptography` directly, so a header or claim can be anything an attacker sends."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def segment(obj: dict) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def _ecdsa(key: ec.EllipticCurvePrivateKey, message: bytes, digest: hashes.HashAlgorithm) -> bytes:
    # JWS wants the raw r || s form (RFC 7518 3.4), not DER.
    r, s = utils.decode_dss_signature(key.sign(message, ec.ECDSA(digest)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def sign(alg: str, key, message: bytes) -> bytes:
    """A signature over `message` with `alg`; `key` is a cryptography private key, or the
    HMAC secret (bytes) for HS256, or None for `none`."""
    if alg == "none":
        return b""
    if alg == "HS256":
        return hmac.new(key, message, hashlib.sha256).digest()
    if alg == "ES256":
        return _ecdsa(key, message, hashes.SHA256())
    if alg == "ES384":
        return _ecdsa(key, message, hashes.SHA384())
    if alg == "RS256":
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    if alg == "EdDSA":
        return key.sign(message)
    raise ValueError(f"no signer for {alg}")


def forge(header: dict, claims: dict, key, alg: str | None = None) -> str:
    """The compact serialization of `header`.`claims`, signed with `alg` (default: header's)."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = sign(alg or header.get("alg"), key, signing_input.encode())
    return f"{signing_input}.{b64url(signature)}"


def replace_claims(token: str, **changes) -> str:
    """The token with its payload edited and its original signature kept (unsigned tamper)."""
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims.update(changes)
    return f"{header}.{segment(claims)}.{signature}"


def attacker_keys() -> dict:
    return {
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "ES384": ec.generate_private_key(ec.SECP384R1()),
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }
