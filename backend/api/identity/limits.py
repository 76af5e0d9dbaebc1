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
