"""docker-compose.citus.yml: the three Citus nodes (healthy) -> cluster-init (one-shot) -> migrate
(one-shot) -> api and worker, pointed at the coordinator with CITUS=1; the workers reachable from
the cluster's network only; no secret committed. Validated by docker compose when installed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.ops.test_compose import (
    ENV_EXAMPLE,
    REFERENCE,
    SECRET_NAME,
    compose_config,
    env_example_with_secrets,
    environment,
    url_of,
)

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.citus.yml"
NODES = ("coordinator", "worker1", "worker2")
POOLERS = ("pooler1", "pooler2")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_nodes_are_healthy_before_the_cluster_forms_and_the_app_starts(compose):
    services = compose["services"]
    for name in NODES:
        node = services[name]
        assert node["image"].startswith("${CITUS_IMAGE:-citusdata/citus:") and node["image"].endswith(
            "-pg15}"
        )
        assert "pg_isready" in " ".join(node["healthcheck"]["test"])
        assert "wal_level=logical" in node["command"]  # online moves
        assert not any("synchronous_commit" in part for part in node["command"])
    init, migrate, api, worker = (services[n] for n in ("cluster-init", "migrate", "api", "worker"))
    assert init["command"] == ["python", "scripts/citus_bootstrap.py"]
    assert (ROOT / init["command"][1]).is_file()
    assert init["depends_on"] == {
        **{name: {"condition": "service_healthy"} for name in NODES},
        **{name: {"condition": "service_started"} for name in POOLERS},
    }
    assert migrate["depends_on"] == {
        "coordinator": {"condition": "service_healthy"},
        "cluster-init": {"condition": "service_completed_successfully"},
    }
    assert migrate["command"] == ["flask", "--app", "backend", "tenants", "migrate"]
    assert api["depends_on"] == {
        "coordinator": {"condition": "service_healthy"},
        "valkey": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert worker["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    for one_shot in (init, migrate):
        assert one_shot["restart"] == "no"
        assert one_shot["healthcheck"] == {"disable": True}


def test_the_app_talks_to_the_coordinator_only_and_never_reaches_a_worker(compose):
    services = compose["services"]
    for name in ("migrate", "api", "worker"):
        env = environment(services[name])
        assert env["CITUS"] == "1"
        assert url_of(env["DATABASE_URL"]).hostname == "coordinator"
        assert url_of(env["DATABASE_URL"]).username == "saas_app"
        assert services[name]["networks"] == ["app"]
    for name in ("migrate", "worker"):
        assert url_of(environment(services[name])["MIGRATION_DATABASE_URL"]).username == "saas_owner"
    # The API holds the runtime role only, on a cluster too: neither the owner's URL nor its password.
    api = environment(services["api"])
    assert "MIGRATION_DATABASE_URL" not in api and "OWNER_DB_PASSWORD" not in str(api)
    for name in ("worker1", "worker2"):
        assert set(services[name]["networks"]) == {"cluster"}
    assert set(services["coordinator"]["networks"]) == {"cluster", "app"}
    for name in NODES:
        assert "ports" not in services[name]
        scripts = [v for v in services[name]["volumes"] if "docker-entrypoint-initdb.d" in v]
        assert len(scripts) == 1 and (ROOT / scripts[0].split(":")[0]).is_file()


def _pgbouncer_settings(path: Path) -> dict[str, str]:
    """The [pgbouncer] section of a PgBouncer ini (its `%include` line is not configparser's)."""
    settings, section = {}, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "pgbouncer" and "=" in line and not line.startswith(";"):
            key, value = (part.strip() for part in line.split("=", 1))
            settings[key] = value
    return settings


def test_each_worker_sits_behind_its_own_pgbouncer_that_admits_the_coordinator_only(compose):
    from backend.infrastructure import citus_cluster

    services = compose["services"]
    init = environment(services["cluster-init"])
    workers = [url_of(url.strip()).hostname for url in init["WORKER_URLS"].split(",")]
    assert init["WORKER_POOLERS"].split(",") == [f"{name}:6432" for name in POOLERS]
    for pooler, worker in zip(POOLERS, workers, strict=True):
        service = services[pooler]
        assert set(service["networks"]) == {"cluster"} and "ports" not in service
        assert f"host={worker} port=5432" in " ".join(service["command"])
        assert f"{worker}-data:/worker-data:ro" in service["volumes"]  # the worker's certificate
        assert service["depends_on"] == {worker: {"condition": "service_healthy"}}
    files = [volume.split(":") for volume in services["pooler1"]["volumes"] if volume.startswith("./")]
    mounts = {inside: ROOT / outside for outside, inside, *_ in files}
    settings = _pgbouncer_settings(mounts["/etc/pgbouncer/pgbouncer.ini"])
    # The same pooling as the local cluster the tests and benchmarks run (citus_cluster.py).
    for name in ("pool_mode", "max_client_conn", "default_pool_size", "server_idle_timeout", "auth_query"):
        assert settings[name] == citus_cluster.POOLER_SETTINGS[name], name
    assert settings["max_db_connections"] == str(citus_cluster.POOLER_SERVER_CONNECTIONS)
    assert settings["client_tls_sslmode"] == "require"  # Citus's node connections require TLS
    assert settings["auth_type"] == "hba"
    coordinator = services["coordinator"]["networks"]["cluster"]["ipv4_address"]
    rules = [line.split() for line in mounts[settings["auth_hba_file"]].read_text().splitlines()]
    assert [rule for rule in rules if rule and not rule[0].startswith("#")] == [
        ["host", "all", "all", f"{coordinator}/32", "trust"]
    ]


def test_no_secret_value_is_committed(compose):
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            value, where = str(value), f"{name}.{key}"
            for reference in REFERENCE.finditer(value):
                if SECRET_NAME.search(reference["name"]):
                    assert not reference["default"], f"{where}: a default for a secret"
            for part in value.split(","):
                if "://" in part:
                    password = url_of(part.strip()).password
                    assert password is None or password.startswith("VAR__"), where


def test_docker_compose_accepts_the_file(tmp_path):
    valid = compose_config(COMPOSE, env_example_with_secrets(), tmp_path)
    assert valid.returncode == 0, valid.stderr
    rendered = yaml.safe_load(valid.stdout)
    apps = {"valkey", "cluster-init", "migrate", "api", "worker"}
    assert set(rendered["services"]) == {*NODES, *POOLERS, *apps}
    api = rendered["services"]["api"]["environment"]
    assert api["DATABASE_URL"] == "postgresql://saas_app:test-app_db_password@coordinator:5432/saas"
    workers = rendered["services"]["cluster-init"]["environment"]["WORKER_URLS"].split(",")
    assert [url_of(url).hostname for url in workers] == ["worker1", "worker2"]
    missing = compose_config(COMPOSE, ENV_EXAMPLE.read_text(), tmp_path)
    assert missing.returncode != 0
    assert "PASSWORD in .env" in missing.stderr
