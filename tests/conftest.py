"""Test session: a real PostgreSQL (embedded, or DATABASE_URL + MIGRATION_DATABASE_URL),
migrated once; every test makes its own tenants with unique slugs."""

from __future__ import annotations

import functools
import os
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend.core.config import RateLimits, Settings
from backend.infrastructure import embedded_postgres
from tests import owner
from tests.owner import owner_engine
from tests.sessions import session_token

ROOT = Path(__file__).resolve().parents[1]

# Fixtures of suites that also run on the Citus session cluster (tests/citus/suites/): plugins,
# so that both folders see one definition.
pytest_plugins = ["tests.integration.defense.fixtures"]

# The suite runs without a pool of spare schemas (here and in the commands and servers it
# starts), so each test's provisioning creates its schema as it always did; the tests of the
# pool (tests/integration/lifecycle/test_spare_*.py) turn it on for themselves.
os.environ.setdefault("SPARE_SCHEMAS", "0")


def citus_database(base_dir: Path):
    """Start a local Citus cluster (coordinator + 2 workers) for the session, or skip with
    the one reason it cannot run here (backend/infrastructure/citus_cluster.py)."""
    from backend.infrastructure import citus_cluster

    reason = citus_cluster.unavailable_reason()
    if reason:
        pytest.skip(f"Citus suite skipped: {reason}")
    cluster = citus_cluster.start(base_dir)
    try:
        yield {
            "runtime": cluster.runtime_url,
            "owner": cluster.owner_url,
            "superuser": cluster.superuser_url,
            "cluster": cluster,
            "citus": True,
        }
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def database() -> dict:
    """URLs of the test database: owner (migrations) and runtime (the API).
    TEST_CITUS=1 runs the whole session on a local Citus cluster (docs/scale-out.md)."""
    if os.environ.get("TEST_CITUS") == "1":
        yield from citus_database(Path(tempfile.mkdtemp(prefix="citustest-")))
        return
    if os.environ.get("DATABASE_URL"):
        runtime = os.environ["DATABASE_URL"]
        yield {"runtime": runtime, "owner": os.environ.get("MIGRATION_DATABASE_URL", runtime)}
        return
    pgdata = Path(tempfile.mkdtemp(prefix="pgtest-", dir=tempfile.gettempdir())) / "pgdata"
    db = embedded_postgres.start(pgdata, cleanup="delete")
    yield {"runtime": db.runtime_url, "owner": db.owner_url, "superuser": db.superuser_url, "server": db}
    db.server.cleanup()


@pytest.fixture(scope="session")
def settings(database, tmp_path_factory) -> Settings:
    return session_settings(database, tmp_path_factory.mktemp("var"))


def session_settings(database: dict, var_dir: Path) -> Settings:
    # Generous abuse limits: the suite logs in and signs up from one address. Tests of the
    # limits themselves tighten them on the runtime settings (tests/integration/identity).
    relaxed = RateLimits(**{name: "10000 per minute" for name in RateLimits.model_fields})
    return Settings(
        env="test",
        database_url=database["runtime"],
        migration_database_url=database["owner"],
        var_dir=var_dir,
        rate_limits=relaxed,
        spare_schemas=0,
        citus=bool(database.get("citus")),
    )


@pytest.fixture(scope="session")
def app(settings):
    yield from session_app(settings)


def session_app(settings: Settings, *, default_owner: bool = True):
    """The session's app, migrated. `default_owner`: its owner is the one module fixtures reach
    (they run before the per-test switch below): the root `app`'s. The Citus suite's app passes
    False and switches per module itself (tests/citus/conftest.py): registered first in a
    process, it used to become the default of the embedded modules that ran after it."""
    from backend import create_app
    from backend.cli.tenants import migrate_shared

    application = create_app(settings)
    if default_owner:
        owner.use(application)
    with application.app_context():
        migrate_shared()
    yield application
    close_app(application)  # before its PostgreSQL stops


@pytest.fixture(autouse=True)
def owner_of_this_tests_database(request):
    """`tests.owner.owner_engine()` is the owner of the database this test's `app` runs on:
    the embedded server's session app and the Citus suite's live side by side in one worker."""
    if "app" not in request.fixturenames:
        yield
        return
    with owner.using(request.getfixturevalue("app")):
        yield


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def runtime(app):
    return app.extensions["saas"]


@pytest.fixture(scope="session")
def run_jobs(app):
    """Run the queued jobs as `flask --app backend worker --once` does; returns when the queue
    has nothing left to do now. Without the periodic schedule: a test never starts a retention
    run, a due purge or an unverified-signup removal it did not ask for."""
    from backend.cli.worker import build_worker, run_worker

    def run() -> None:
        run_worker(build_worker(app, periodic=False), once=True)

    return run


@pytest.fixture(scope="session")
def ready_workspaces(app):
    """`fill(n)`: at least n spare workspaces ready, built by the worker's own refill
    (backend/cli/spares.refill_spare_pool). Signup only claims a workspace (it runs as the
    runtime role and never builds one), so tests that sign up fill the pool first, as the
    worker does in a running system; the suite's SPARE_SCHEMAS=0 keeps it empty otherwise."""
    from backend.cli.spares import refill_spare_pool

    def fill(count: int = 3) -> None:
        with app.app_context():
            refill_spare_pool(app, reason="test", at_least=count)

    return fill


def drain_workspaces(runtime) -> None:
    """Drop every spare workspace, whatever its revision (tests that count schemas or spares
    start from an empty pool)."""
    from backend.infrastructure.spares import SparePool

    SparePool(owner_engine(), runtime.runtime_role, 0).refill(target=0, shrink=True, drop_stale=True)


def close_app(application) -> None:
    """Close an app a test built for itself: its access listener (started when it served; it
    would outlive the test, holding a connection) and its pools."""
    from backend.cli.owner import EXTENSION as OWNER_EXTENSION

    runtime = application.extensions["saas"]
    runtime.access_cache.stop_listening()
    runtime.engine.dispose()
    if OWNER_EXTENSION in application.extensions:
        application.extensions[OWNER_EXTENSION].dispose()


def unique_slug(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def verify_owner(runtime, tenant) -> None:
    """Mark the tenant's worker(s) verified, as `tenants verify-worker` does: the access policy
    blocks an unverified worker (403 worker_unverified)."""
    from sqlalchemy import func, select, update

    from backend.infrastructure.sql.identity import memberships, users

    workers = select(memberships.c.user_id).where(
        memberships.c.tenant_id == tenant.id, memberships.c.role == "worker"
    )
    with owner_engine().begin() as connection:
        connection.execute(
            update(users)
            .where(users.c.id.in_(workers), users.c.verified_at.is_(None))
            .values(verified_at=func.now())
        )


def provision_workspace(
    runtime, slug: str | None = None, owner_email: str | None = None, verified: bool = True
):
    """A tenant provisioned the way operators do, its owner's email verified (verified=False:
    an unverified worker); returns the domain Tenant."""
    from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
    from backend.service.tenants import provision_tenant

    slug = slug or unique_slug()
    tenant = provision_tenant(
        slug=slug,
        name=f"Workspace {slug}",
        owner_email=owner_email or f"owner-{slug}@example.com",
        trial_days=14,
        now=datetime.now(UTC),
        uow=SqlRegistryUnitOfWork(owner_engine(), runtime.runtime_role),
    )
    if verified:
        verify_owner(runtime, tenant)
    return tenant


@pytest.fixture()
def make_tenant(app, runtime):
    """`provision_workspace` on this test's database (`app` makes its owner the test's own)."""
    return functools.partial(provision_workspace, runtime)


def worker_headers(runtime, tenant) -> dict:
    """Bearer headers of a new session of the tenant's owner (its worker)."""
    from sqlalchemy import select

    from backend.infrastructure.sql.identity import memberships

    with owner_engine().connect() as connection:
        user_id = connection.execute(
            select(memberships.c.user_id).where(
                memberships.c.tenant_id == tenant.id, memberships.c.role == "worker"
            )
        ).scalar_one()
    return {"Authorization": f"Bearer {session_token(runtime, user_id=user_id, tenant_id=tenant.id)}"}


@pytest.fixture()
def worker_token(runtime):
    """A valid access token for the tenant's owner (worker)."""
    return lambda tenant: worker_headers(runtime, tenant)


@pytest.fixture()
def client_token(runtime):
    """Create a client record in the tenant, a user and a client membership linked to it;
    return (client_id, headers with a valid client access token)."""
    from sqlalchemy import insert

    from backend.core.db import set_tenant_search_path
    from backend.domain.identity import Role
    from backend.infrastructure.sql.clients import clients
    from backend.infrastructure.sql.identity import SqlMembershipRepository, SqlUserRepository

    def make(tenant, name: str = "A Client") -> tuple[uuid.UUID, dict]:
        client_id, user_id = uuid.uuid4(), uuid.uuid4()
        with owner_engine().begin() as connection:
            set_tenant_search_path(connection, tenant.schema_name)
            connection.execute(insert(clients).values(id=client_id, name=name))
            SqlUserRepository(connection).add(user_id, f"c-{user_id.hex[:10]}@example.com", name, None)
            SqlMembershipRepository(connection).add(
                user_id=user_id, tenant_id=tenant.id, role=Role.CLIENT, client_id=client_id
            )
        value = session_token(runtime, user_id=user_id, tenant_id=tenant.id)
        return client_id, {"Authorization": f"Bearer {value}"}

    return make
