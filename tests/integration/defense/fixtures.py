"""Fixtures of the defense suite: tenants made once per module, and the roles in play.

A plugin (tests/conftest.py `pytest_plugins`), not this folder's conftest: the Citus suite runs
the same tests on its session cluster (tests/citus/suites/) and needs the same fixtures."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.conftest import provision_workspace, unique_slug
from tests.owner import owner_engine


@pytest.fixture(scope="module")
def module_tenants(app, runtime):
    """Provision tenants the way operators do, once for the module (provisioning is the slow
    part of these tests); returns a factory that caches by label."""
    made: dict[str, object] = {}

    def tenant(label: str):
        if label not in made:
            made[label] = provision_workspace(runtime, unique_slug(label))
        return made[label]

    return tenant


@pytest.fixture(scope="module")
def owner_user_id(runtime):
    """The worker (owner) user id of a tenant."""
    from backend.infrastructure.sql.identity import memberships

    def user_id(tenant):
        with owner_engine().connect() as connection:
            return connection.execute(
                select(memberships.c.user_id).where(
                    memberships.c.tenant_id == tenant.id, memberships.c.role == "worker"
                )
            ).scalar_one()

    return user_id


@pytest.fixture(scope="module")
def runtime_role(runtime) -> str:
    if runtime.runtime_role is None:
        pytest.skip("API and owner are the same role: no least-privilege set-up to check")
    return runtime.runtime_role


@pytest.fixture(scope="module")
def owner_role(runtime) -> str:
    return owner_engine().url.username
