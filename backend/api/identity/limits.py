"""Abuse limits for the public identity routes, per client IP and per account.

The limit strings come from the settings at each request (Settings.rate_limits), so tests
and deployments tune them without code. The per-account key is a digest of the email or of
the one-time token: neither appears in the limiter's storage or its log lines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from flask import request
from flask_limiter.util import get_remote_address

from backend.api.context import runtime
from backend.api.extension import limiter


def _setting(name: str) -> Callable[[], str]:
    return lambda: getattr(runtime().settings.rate_limits, name)


def _body_key(field: str, *, lower: bool) -> Callable[[], str]:
    def key() -> str:
        body = request.get_json(silent=True)
        value = body.get(field) if isinstance(body, dict) else None
        if not isinstance(value, str) or not value.strip():
            return f"ip:{get_remote_address()}"
        value = value.strip().lower() if lower else value
        # surrogatepass: a lone surrogate (valid JSON, no character) must not make the key
        # raise; the route's parser then refuses the body with a 422.
        return f"{field}:{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}"

    return key


def _failed(response) -> bool:
    return response.status_code >= 400


def _limits(action: str, account_key: Callable[[], str], *, failures_only: bool) -> Callable:
    per_ip = limiter.limit(_setting(f"{action}_ip"))
    per_account = limiter.limit(
        _setting(f"{action}_account"),
        key_func=account_key,
        deduct_when=_failed if failures_only else None,
    )

    def decorate(view: Callable) -> Callable:
        return per_ip(per_account(view))

    return decorate


# Login counts failures per account (a legitimate user is not locked out by logging in
# often) and every attempt per IP.
login = _limits("login", _body_key("email", lower=True), failures_only=True)
signup = _limits("signup", _body_key("email", lower=True), failures_only=False)
verify = _limits("verify", _body_key("token", lower=False), failures_only=False)
resend_verification = _limits("verify", _body_key("email", lower=True), failures_only=False)
accept_invitation = _limits("invitation", _body_key("token", lower=False), failures_only=True)
# Password reset: every request counts (each may send a mail), per IP and per email; the
# spending of a reset token counts failures per token (guessing one is hopeless, but cheap
# to bound) and every attempt per IP.
request_password_reset = _limits("password_reset", _body_key("email", lower=True), failures_only=False)
reset_password = _limits("password_reset", _body_key("token", lower=False), failures_only=True)


def _bearer_key() -> str:
    value = request.headers.get("Authorization", "")
    if not value:
        return f"ip:{get_remote_address()}"
    return f"bearer:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


# Changing the password checks the current one: a stolen access token must not become a
# password oracle. Failures count per token (the login's per-account limit) and per IP.
change_password = _limits("login", _bearer_key, failures_only=True)
change_email = _limits("login", _bearer_key, failures_only=True)
confirm_email = _limits("verify", _body_key("token", lower=False), failures_only=False)
# The second login step: failures per challenge (a challenge is bound to one account), every
# attempt per IP. A wrong code keeps the challenge alive, so this is what bounds guessing.
mfa_login = _limits("mfa", _body_key("challenge", lower=False), failures_only=True)
# Confirming or disabling a factor checks a code: failures per bearer token, like login's.
mfa_manage = _limits("mfa", _bearer_key, failures_only=True)
