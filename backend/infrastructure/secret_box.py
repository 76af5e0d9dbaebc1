"""Sealing small secrets at rest (the TOTP secrets): Fernet (AES-128-CBC + HMAC-SHA256) from
the `cryptography` package, through MultiFernet so keys rotate: the first key seals, every
key opens.

Production: MFA_ENCRYPTION_KEYS, comma-separated Fernet keys (`Fernet.generate_key()`), kept
out of git like JWT_PRIVATE_KEYS. Development and tests: a key made once under var/.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from backend.core.config import Settings
from backend.domain.errors import Unavailable


class FernetSecretBox:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def seal(self, secret: bytes) -> bytes:
        return self._fernet.encrypt(secret)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken as error:
            # A key was removed before the secrets were re-sealed: an operator matter.
            raise Unavailable("service_unavailable", "a second-factor secret cannot be opened") from error


def secret_box_for(settings: Settings) -> FernetSecretBox:
    """Outside development, no key means no second factor (503), never a key on local disk
    that a redeploy would lose with every secret it sealed."""
    if not settings.mfa_encryption_keys and not settings.is_development:
        raise Unavailable("service_unavailable", "MFA_ENCRYPTION_KEYS is not set")
    return _box(settings.mfa_encryption_keys, str(settings.var_dir))


@cache
def _box(configured: str | None, var_dir: str) -> FernetSecretBox:
    if configured:
        return FernetSecretBox([k.strip().encode() for k in configured.split(",") if k.strip()])
    return FernetSecretBox([_development_key(Path(var_dir) / "mfa-key")])


def _development_key(path: Path) -> bytes:
    """Written once with mode 0600; a concurrent process that lost the race reads the winner's."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(Fernet.generate_key())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_bytes().strip()
