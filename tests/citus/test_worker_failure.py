"""A worker stops: only the tenants it holds are unavailable (503 with Retry-After, never a 500),
the others and the readiness check keep answering; restarted, its tenants serve again.

Behind the PgBouncer in front of the worker, a tenant whose worker login failed during the outage
is refused once more after the restart (503, Retry-After): PgBouncer fails a new client fast while
the last login of that role's pool failed, and retries the worker after `server_login_retry` (1 s
here; docs/scale-out.md, "Worker connections")."""

from __future__ import annotations

import time

from tests.citus.test_distributed_schemas import _placements

API = "/api/v1"


def test_a_stopped_worker_fails_only_its_own_tenants_and_they_return_with_it(
    client, database, make_tenant, worker_token
):
    tenants = [make_tenant() for _ in range(4)]
    cluster = database["cluster"]
    placements = _placements(database)
    down = cluster.workers[0]
    there = [t for t in tenants if placements[t.schema_name] == down.port]
    elsewhere = [t for t in tenants if placements[t.schema_name] != down.port]
    assert there and elsewhere
    down.stop()
    try:
        for tenant in there:
            response = client.get(f"{API}/clients", headers=worker_token(tenant))
            assert response.status_code == 503, response.json
            assert response.json == {"detail": "database_unavailable"}
            assert response.headers["Retry-After"]
        for tenant in elsewhere:
            assert client.get(f"{API}/clients", headers=worker_token(tenant)).status_code == 200
        assert client.get("/health/ready").status_code == 200
    finally:
        down.start()
    refused_after_restart = 0
    for tenant in there:
        deadline = time.monotonic() + 10
        while (response := client.get(f"{API}/clients", headers=worker_token(tenant))).status_code != 200:
            assert response.status_code == 503 and response.headers["Retry-After"], response.json
            assert time.monotonic() < deadline, "the tenant did not come back within 10 s of the restart"
            refused_after_restart += 1
            time.sleep(0.5)
    print(f"requests refused (503) after the restart: {refused_after_restart} for {len(there)} tenant(s)")
