"""Password hashing: argon2id through argon2-cffi.

Parameters are OWASP's minimum for argon2id (19 MiB, 2 iterations, 1 lane): about 70 ms
per hash on our 2-core machines, which keeps signup and login well under their budgets while
making offline guessing expensive. A stored hash made with other parameters is re-hashed at
the next successful login (`needs_rehash`).

Passwords are NFKC-normalised before hashing, so the same password typed on two keyboards
(composed vs decomposed accents) matches.

`verify_dummy` checks a password against a hash made once with the same parameters: a login
for an unknown email costs the same time as one with a wrong password (no enumeration by
timing).
"""

from __future__ import annotations

import functools
import unicodedata

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TIME_COST = 2
MEMORY_COST_KIB = 19 * 1024
PARALLELISM = 1

_hasher = PasswordHasher(
    time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM, type=Type.ID
)


def _normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    return _hasher.hash(_normalise(password))


def verify_password(stored_hash: str, password: str) -> bool:
    """True when the password matches; a malformed stored hash never matches."""
    try:
        return _hasher.verify(stored_hash, _normalise(password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except (InvalidHashError, ValueError):
        return True


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("dummy password that nobody has")


def verify_account_password(stored_hash: str | None, password: str) -> bool:
    """True when the password matches the account's hash. An account without a password (an
    invited client who never set one) costs the same time and never matches."""
    if stored_hash is None:
        return verify_dummy(password)
    return verify_password(stored_hash, password)


def verify_dummy(password: str) -> bool:
    """Spend the time of a real verification; always False."""
    verify_password(_dummy_hash(), password)
    return False
