"""The owner role's engine for tests and their fixtures.

The API's Runtime holds no owner engine (issue 14); the commands' app keeps an `OwnerAccess`
beside it (backend/cli/owner.py). The session app registers its own here, so fixtures and
tests that set up data as the owner (as operators and the worker would) reach it in one call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy.engine import Engine

from backend.cli.owner import OwnerAccess, owner_access

_session: dict[str, OwnerAccess] = {}


def use(app: Flask) -> OwnerAccess:
    """The session's default owner: the root session app's (the Citus suite's app does not
    register; tests/conftest.py `session_app`); each test, and each module of tests/citus, gets
    its own app's (tests/conftest.py, tests/citus/conftest.py)."""
    return _session.setdefault("access", owner_access(app))


def owner() -> OwnerAccess:
    if "access" not in _session:
        raise RuntimeError("no owner engine yet: the session `app` fixture registers it (ask for `runtime`)")
    return _session["access"]


def owner_engine() -> Engine:
    return owner().engine


@contextmanager
def using(app: Flask) -> Iterator[OwnerAccess]:
    """Another app's owner access (a test with a database of its own) for the helpers that
    take the owner engine from here (verify_owner, session_token, ...), then the session's
    again."""
    previous = _session.get("access")
    _session["access"] = owner_access(app)
    try:
        yield _session["access"]
    finally:
        if previous is None:
            _session.pop("access", None)
        else:
            _session["access"] = previous
