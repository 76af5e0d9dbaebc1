"""docker-compose.yml: db (healthy) -> migrate (one-shot) -> api (healthy, after valkey), volumes, and no
secret committed. Validated by docker compose itself when it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|PRIVATE_KEY")
# ${NAME}, ${NAME:?message}, ${NAME:-default}: a secret never has a non-empty default
REFERENCE = re.compile(r"\$\{(?P<name>[A-Z_]+)(?::?\?[^}]*|:?-(?P<default>[^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def environment(service: dict) -> dict:
    env = service.get("environment", {})
    return env if isinstance(env, dict) else dict(item.split("=", 1) for item in env)


def url_of(value: str):
    """The URL with each ${NAME...} replaced by VAR__NAME, so that it parses."""
    return urlsplit(REFERENCE.sub(lambda m: f"VAR__{m['name']}", value))


def test_services_start_in_order_of_health(compose):
    services = compose["services"]
    db, init, migrate, api = (services[name] for name in ("db", "db-init", "migrate", "api"))
    assert db["image"] == "postgres:18"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert init["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert init["command"] == ["python", "scripts/db_bootstrap.py"]
    assert migrate["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "db-init": {"condition": "service_completed_successfully"},
    }
    assert migrate["command"] == ["flask", "--app", "backend", "tenants", "migrate"]
    assert api["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "valkey": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert "/health/ready" in " ".join(api["healthcheck"]["test"])
    for one_shot in (init, migrate):
        assert one_shot["restart"] == "no"
        assert one_shot["healthcheck"] == {"disable": True}  # the image's HEALTHCHECK is the API's
    assert (ROOT / init["command"][1]).is_file()


def test_api_shares_its_rate_limits_through_the_health_checked_valkey(compose):
    services = compose["services"]
    valkey = services["valkey"]
    assert valkey["image"].startswith("valkey/valkey:")
    assert valkey["healthcheck"]["test"] == ["CMD", "valkey-cli", "ping"]
    assert "ports" not in valkey  # reachable by the API only, never published on the host
    default = REFERENCE.fullmatch(environment(services["api"])["RATELIMIT_STORAGE_URI"])["default"]
    store = urlsplit(default)
    assert (store.scheme, store.hostname, store.port) == ("redis", "valkey", 6379)


def test_volumes_for_database_media_and_exports(compose):
    services = compose["services"]
    assert services["db"]["volumes"] == ["pgdata:/var/lib/postgresql"]
    api_mounts = {v.split(":")[1] for v in services["api"]["volumes"]}
    assert {"/var/lib/saas/media", "/var/lib/saas/exports"} <= api_mounts
    assert {"pgdata", "media", "exports"} <= set(compose["volumes"])


def test_app_services_use_two_roles_and_only_db_init_sees_the_superuser(compose):
    services = compose["services"]
    for name in ("migrate", "worker", "api"):
        env = environment(services[name])
        assert url_of(env["DATABASE_URL"]).username == "saas_app"
        assert env["APP_ENV"] == "production"
    for name in ("migrate", "worker"):
        assert url_of(environment(services[name])["MIGRATION_DATABASE_URL"]).username == "saas_owner"
    # The API holds the runtime role only: neither the owner's URL nor its password.
    api = environment(services["api"])
    assert "MIGRATION_DATABASE_URL" not in api and "OWNER_DB_PASSWORD" not in str(api)
    for name, service in services.items():
        mentions = "POSTGRES_PASSWORD" in str(environment(service))
        assert mentions == (name in ("db", "db-init")), name


def test_no_secret_value_is_committed(compose):
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            value, where = str(value), f"{name}.{key}"
            for reference in REFERENCE.finditer(value):
                if SECRET_NAME.search(reference["name"]):
                    assert not reference["default"], f"{where}: a default for a secret"
            if SECRET_NAME.search(key):
                reference = REFERENCE.fullmatch(value)
                assert reference and reference["name"] == key, f"{where} must be ${{{key}:?...}}"
            if "://" in value:
                password = url_of(value).password
                assert password is None or re.fullmatch(r"VAR__[A-Z_]*PASSWORD", password), (
                    f"{where}: the password must come from a ${{..._PASSWORD}} variable"
                )


def test_env_example_has_no_secret_values():
    for line in ENV_EXAMPLE.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        if SECRET_NAME.search(key):
            assert value == "", f".env.example gives {key} a value"


def test_env_file_is_ignored_by_git():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0
    tracked = subprocess.run(
        ["git", "ls-files", ".env"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert tracked.stdout == ""


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def env_example_with_secrets() -> str:
    """.env.example with a value for every secret it leaves empty."""
    filled = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#") and SECRET_NAME.search(key) and not value:
            value = "'{\"keys\": []}'" if key == "JWT_PRIVATE_KEYS" else f"test-{key.lower()}"
        filled.append(f"{key}{sep}{value}")
    return "\n".join(filled) + "\n"


def compose_config(compose_file: Path, env_text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`docker compose config` of the file with `env_text` as its .env; skips where Compose is
    not installed."""
    command = compose_command()
    if command is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed")
    env_file = tmp_path / "env"
    env_file.write_text(env_text)
    base = [*command, "--env-file", str(env_file), "-f", str(compose_file)]
    return subprocess.run([*base, "config"], capture_output=True, text=True, check=False)


def test_docker_compose_accepts_the_file(tmp_path):
    valid = compose_config(COMPOSE, env_example_with_secrets(), tmp_path)
    assert valid.returncode == 0, valid.stderr
    rendered = yaml.safe_load(valid.stdout)
    url = rendered["services"]["api"]["environment"]["DATABASE_URL"]
    assert url == "postgresql://saas_app:test-app_db_password@db:5432/saas"
    assert set(rendered["services"]) == {"db", "valkey", "db-init", "migrate", "api", "worker"}
    assert rendered["services"]["api"]["environment"]["RATELIMIT_STORAGE_URI"] == "redis://valkey:6379/0"
    # the job worker starts once the schema (and its queue tables) is migrated
    worker = rendered["services"]["worker"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["command"] == ["flask", "--app", "backend", "worker"]
    # and a missing secret stops compose with a message naming it
    missing = compose_config(COMPOSE, ENV_EXAMPLE.read_text(), tmp_path)
    assert missing.returncode != 0
    assert "PASSWORD in .env" in missing.stderr
