"""The Citus suite: its own session cluster (a coordinator and two workers), started once for
the tests of this folder, whatever the rest of the session runs on. Where Citus is not installed
(`../shared/tools/citus/install --check` fails) every test here skips with one line saying why.

The session fixtures of tests/conftest.py are redefined here, not reused: pytest caches a
session fixture once, so `settings`/`app`/`runtime` would otherwise keep the embedded server."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests import owner
from tests.conftest import citus_database, session_app, session_settings


@pytest.fixture(scope="session")
def database():
    yield from citus_database(Path(tempfile.mkdtemp(prefix="citustest-")))


@pytest.fixture(scope="session")
def settings(database, tmp_path_factory):
    return session_settings(database, tmp_path_factory.mktemp("citus-var"))


@pytest.fixture(scope="session")
def app(settings):
    yield from session_app(settings, default_owner=False)


@pytest.fixture(scope="session")
def runtime(app):
    return app.extensions["saas"]


@pytest.fixture(scope="module", autouse=True)
def owner_of_the_cluster(app):
    """Module fixtures (tenants made once per module: tests/citus/suites/) set up data as the
    owner before the per-test switch of tests/conftest.py applies: without this they reached
    the session's default owner, the embedded server's (`make test`'s workers run both)."""
    with owner.using(app):
        yield
