"""A worker stops: only the tenants it holds are unavailable (503 with Retry-After, never a 500),
the others and the readiness check keep answering; restarted, its tenants serve again."""

from __future__ import annotations

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
    for tenant in there:
        assert client.get(f"{API}/clients", headers=worker_token(tenant)).status_code == 200
