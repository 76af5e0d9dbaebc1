"""`tenants migrate --jobs N` killed with SIGKILL (the command's own pid only, as `kill -9 <pid>`
does): its fork server and pool workers die with it instead of living on under PID 1, and the
tenant a worker was migrating rolls back."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import psutil
import pytest

from backend.core.config import PROJECT_ROOT
from backend.core.tenancy import quoted_schema
from backend.infrastructure import migrations
from backend.infrastructure.sql.tenants import SqlTenantRepository
from tests.integration.faults.killing import (
    backends_blocked_by,
    cli_command,
    cli_env,
    held_lock,
    wait_backends_gone,
)
from tests.owner import owner_engine

pytestmark = pytest.mark.slow
GONE_WITHIN_S = 15


def test_workers_die_with_a_killed_migrate(settings, runtime, make_tenant):
    tenant = make_tenant()
    first = "t0001"
    with owner_engine().begin() as connection:  # the tenant is one revision behind
        migrations.downgrade_tenant(connection, tenant.schema_name, first)
        SqlTenantRepository(connection).record_migration(tenant.id, first, None)
    clients_table = f"{quoted_schema(tenant.schema_name)}.clients"
    descendants: list[psutil.Process] = []
    try:
        with held_lock(owner_engine(), clients_table, "SHARE") as holder:
            process = subprocess.Popen(
                cli_command("migrate", "--slug", tenant.slug, "--jobs", "2"),
                env=cli_env(settings),
                cwd=PROJECT_ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            # A worker is inside the tenant's migration, blocked behind our lock.
            backends = backends_blocked_by(owner_engine(), holder, process)
            descendants = psutil.Process(process.pid).children(recursive=True)
            assert len(descendants) >= 2, "a fork server and at least one worker"
            os.kill(process.pid, signal.SIGKILL)  # the command only, not its process group
            process.wait(timeout=30)
            # Still holding the lock: a surviving worker could not finish the migration either.
            _, alive = psutil.wait_procs(descendants, timeout=GONE_WITHIN_S)
            assert alive == [], f"survived their parent: {[(p.pid, p.name()) for p in alive]}"
        wait_backends_gone(owner_engine(), backends)
        with owner_engine().connect() as connection:
            assert migrations.tenant_revision(connection, tenant.schema_name) == first
            connection.rollback()
    finally:
        for survivor in descendants:  # never leave a process of this test behind
            with contextlib.suppress(psutil.NoSuchProcess):
                survivor.kill()
