"""TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, what every authenticator app speaks) through
pyotp. A code is accepted one step either side of now (clock drift), and only for a step
later than the last accepted one, so a code seen once cannot be replayed."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

STEP_S = 30
DRIFT_STEPS = 1


class PyOtpTotp:
    def new_secret(self) -> str:
        return pyotp.random_base32()  # 160 bits, as RFC 4226 recommends

    def provisioning_uri(self, secret: str, *, account: str, issuer: str) -> str:
        return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)

    def matching_step(self, secret: str, code: str, *, now: datetime, after_step: int | None) -> int | None:
        """The time step the code belongs to, or None (wrong, too old, or already used)."""
        code = (code or "").strip().replace(" ", "")
        if not (code.isdigit() and len(code) == 6):
            return None
        totp = pyotp.TOTP(secret)
        current = int(now.timestamp()) // STEP_S
        for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
            if after_step is not None and step <= after_step:
                continue
            if hmac.compare_digest(totp.at(step * STEP_S), code):
                return step
        return None
