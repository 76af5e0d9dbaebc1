"""The composition root: settings -> engine -> token service -> Flask app + CLI."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.engine import Engine, make_url

from backend.api import access_cache, init_api
from backend.api.context import Runtime
from backend.cli import tenants_cli
from backend.cli.owner import EXTENSION as OWNER_EXTENSION
from backend.cli.owner import OwnerAccess
from backend.cli.worker import worker as worker_cli
from backend.core.config import ConfigError, Settings
from backend.core.db import create_db_engine, sqlalchemy_url
from backend.core.logging import configure_logging
from backend.core.tokens import TokenService, load_signing_keys
from backend.infrastructure import embedded_postgres
from backend.infrastructure.jobs import ProcrastinateJobQueue
from backend.infrastructure.sql.privileges import api_role_refusal


def with_database(settings: Settings) -> Settings:
    """Development without DATABASE_URL: start (or join) the embedded PostgreSQL under var/."""
    if settings.database_url:
        return settings
    if not settings.is_development:
        raise ConfigError(f"DATABASE_URL is required when APP_ENV={settings.env}")
    database = embedded_postgres.start(settings.var_dir / "pgdata", cleanup=None)
    return settings.model_copy(
        update=dict(database_url=database.runtime_url, migration_database_url=database.owner_url)
    )


def refuse_privileged_api_role(engine: Engine, role: str | None) -> None:
    """Production serves requests as the runtime role only: one URL for both roles, a superuser,
    a CREATEROLE role or a schema owner is refused with one line naming the problem."""
    if role is None:
        raise ConfigError(
            "DATABASE_URL and MIGRATION_DATABASE_URL name the same role: one URL is development-only"
        )
    with engine.connect() as connection:
        refusal = api_role_refusal(connection)
    if refusal:
        raise ConfigError(f"{refusal}: the API must connect as the runtime role (docs/architecture.md)")


def _user(url: str) -> str | None:
    return make_url(sqlalchemy_url(url)).username


def runtime_role(settings: Settings) -> str | None:
    """The runtime role to grant to, or None when API and owner are the same role."""
    runtime_user = _user(settings.database_url)
    return runtime_user if runtime_user != _user(settings.owner_database_url) else None


def build_app(settings: Settings | None = None, *, serving: bool = False) -> Flask:
    """The Flask app. `serving` (gunicorn: `backend.create_api()`): the API's process, which
    keeps the runtime role only: no owner URL in its settings, no owner engine, no owner
    access at all. Otherwise (`flask --app backend ...`: the worker, the operator commands,
    tests) an `OwnerAccess` is kept beside the Runtime for the commands to use; it connects
    on first use only."""
    settings = settings or Settings.from_env()
    configure_logging()
    app = Flask("backend")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_content_length
    app.cli.add_command(tenants_cli)
    app.cli.add_command(worker_cli)
    settings = with_database(settings)
    role = runtime_role(settings)
    if serving:
        if not settings.migration_database_url:
            role = _user(settings.database_url)  # given the runtime URL alone, as the API should be
        # From here on the API's process has no owner URL: not in its settings, nowhere else.
        settings = settings.model_copy(update=dict(migration_database_url=None))
    else:
        app.extensions[OWNER_EXTENSION] = OwnerAccess(settings.owner_database_url, role, settings)
    engine = create_db_engine(
        settings.database_url, settings, statement_timeout_ms=settings.statement_timeout_ms
    )
    if serving and settings.env == "production":
        refuse_privileged_api_role(engine, role)
    app.extensions["saas"] = Runtime(
        settings=settings,
        engine=engine,
        runtime_role=role,
        jobs=ProcrastinateJobQueue(settings.database_url),
        access_cache=access_cache.listening_on(settings.listener_database_url),
        tokens=TokenService(
            load_signing_keys(settings),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            oauth_client_id=settings.oauth_client_id,
            ttl_s=settings.access_token_ttl_s,
        ),
    )
    init_api(app)
    return app
