"""Abuse limits for the public identity routes, per client address and per account.

The limit strings come from the settings at each request (Settings.rate_limits), so tests
and deployments tune them without code. The per-account key is a digest of the email or of
the one-time token, keyed by RATELIMIT_KEY_SECRET (HMAC, backend/api/extension.py): neither
appears in the limiter's storage or its log lines, nor can be found by hashing guesses. The counters
live in RATELIMIT_STORAGE_URI (Redis/Valkey in production), so every worker and every
process shares them (docs/security.md, "Rate limits").

Failed logins (docs/security.md, "Login throttling"): counted per account *and* client
address, so an attacker who knows an owner's email exhausts only their own address's budget
and never locks the owner out. Across addresses, a per-account ceiling of failures does not
lock either: once reached, each address gets the much smaller `login_slowed` budget on that
account, which slows a distributed guesser to a trickle while the owner (one address, few
failures) still logs in.

Key functions never raise: a body that is not a JSON object, a field that is not a string
or text that cannot be encoded all fall back to the client address.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from flask import after_this_request, g, request
from limits import parse_many

from backend.api.context import runtime
from backend.api.extension import client_address_key, limiter, limiter_key

log = logging.getLogger(__name__)
CEILING_SCOPE = "login-account-ceiling"


def _setting(name: str) -> Callable[[], str]:
    return lambda: getattr(runtime().settings.rate_limits, name)


def _address_key() -> str:
    # The address's keyed HMAC (the address itself only with LOG_CLIENT_IPS): backend/api/extension.py.
    return client_address_key()


def _account(field: str, *, lower: bool) -> str | None:
    """The account part of a key (digest of the body's field), None when the body has none."""
    try:
        body = request.get_json(silent=True)
        value = body.get(field) if isinstance(body, dict) else None
        if not isinstance(value, str) or not value.strip():
            return None
        value = value.strip().lower() if lower else value
        return limiter_key(field, value)  # keyed HMAC, never a plain hash of the email
    except Exception:  # never let a hostile body turn the limiter into a 500
        log.warning("rate-limit key fell back to the client address", exc_info=True)
        return None


def _body_key(field: str, *, lower: bool) -> Callable[[], str]:
    def key() -> str:
        return _account(field, lower=lower) or _address_key()

    return key


def _account_and_address_key(field: str, *, lower: bool) -> Callable[[], str]:
    def key() -> str:
        account = _account(field, lower=lower)
        return f"{account}|{_address_key()}" if account else _address_key()

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


# Login: the per-account ceiling of failures is counted by hand (it never refuses by itself),
# through the limiter's own strategy, so it uses the same store and the same memory fallback.
_login_account = _body_key("email", lower=True)
_login_pair = _account_and_address_key("email", lower=True)


def _ceiling_items():
    return parse_many(runtime().settings.rate_limits.login_account_ceiling)


def _ceiling_reached() -> bool:
    try:
        key = _login_account()
        return any(not limiter.limiter.test(item, CEILING_SCOPE, key) for item in _ceiling_items())
    except Exception:  # the store is down and no fallback answered: the pair limits still hold
        log.warning("login ceiling unavailable", exc_info=True)
        return False


def _count_failed_login(response):
    if _failed(response) and response.status_code != 429:
        try:
            key = _login_account()
            for item in _ceiling_items():
                limiter.limiter.hit(item, CEILING_SCOPE, key)
        except Exception:
            log.warning("login ceiling not counted", exc_info=True)
    return response


def login(view: Callable) -> Callable:
    per_ip = limiter.limit(_setting("login_ip"))
    per_account_and_address = limiter.limit(
        _setting("login_account"), key_func=_login_pair, deduct_when=_failed
    )
    # Past the account's ceiling of failures, every address gets the small slowed budget.
    slowed = limiter.limit(
        _setting("login_slowed"),
        key_func=_login_pair,
        scope="login-slowed",
        deduct_when=_failed,
        exempt_when=lambda: not _ceiling_reached(),
    )

    @functools.wraps(view)
    def counted(*args, **kwargs):
        after_this_request(_count_failed_login)  # runs on the 401 too (error handlers answer it)
        return view(*args, **kwargs)

    return per_ip(per_account_and_address(slowed(counted)))


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
    return limiter_key("bearer", value) if value else _address_key()


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


def _user_key() -> str:
    """The signed-in user (keyed HMAC of their id): `protected` has set the principal when
    the limit runs inside it; the address if ever there is none, so the key never raises."""
    principal = g.get("principal")
    return limiter_key("user", str(principal.user_id)) if principal is not None else _address_key()


def _started(response) -> bool:
    return response.status_code == 200


# A client's own data download (GET /me/data), per login whatever the address: applied inside
# `protected` (the key is the authenticated user). Only a download that starts counts; one
# refused (no client record, every download slot busy, the limit itself) costs nothing.
my_data = limiter.limit(_setting("my_data_user"), key_func=_user_key, deduct_when=_started)
