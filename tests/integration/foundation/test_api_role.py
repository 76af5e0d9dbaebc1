"""In production the API connects as the runtime role only (issue 14 item 2): a superuser, a
CREATEROLE role, a schema owner or one URL for both roles is refused with one line."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from backend.app import refuse_privileged_api_role
from backend.core.config import ConfigError
from backend.core.db import sqlalchemy_url


def _engine(url: str):
    return create_engine(sqlalchemy_url(url))


def test_the_runtime_role_passes_and_holds_no_power(database, runtime):
    engine = _engine(database["runtime"])
    try:
        refuse_privileged_api_role(engine, runtime.runtime_role)
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls"
                    " FROM pg_roles WHERE rolname = current_user"
                )
            ).one()
        assert tuple(row) == (False, False, False, False)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("which", "reason"),
    [("owner", r"which (has CREATEROLE|owns \d+ schema)"), ("superuser", "a superuser")],
)
def test_a_privileged_role_is_refused_in_one_line(database, runtime, which, reason):
    if which not in database:
        pytest.skip(f"no {which} URL for this database (external DATABASE_URL)")
    engine = _engine(database[which])
    try:
        with pytest.raises(ConfigError, match=reason) as refused:
            refuse_privileged_api_role(engine, runtime.runtime_role)
    finally:
        engine.dispose()
    assert "\n" not in str(refused.value) and "runtime role" in str(refused.value)


def test_one_url_for_both_roles_is_development_only(database):
    engine = _engine(database["runtime"])
    try:
        with pytest.raises(ConfigError, match="development-only"):
            refuse_privileged_api_role(engine, None)
    finally:
        engine.dispose()


def test_the_production_api_given_the_runtime_url_alone_starts_and_a_privileged_one_is_refused(
    settings, database
):
    """Compose gives `api` DATABASE_URL only: the serving app names its role from it and starts
    (no "one URL" refusal); the owner's URL as DATABASE_URL is refused for its own powers."""
    from backend import create_api

    app = create_api(settings.model_copy(update=dict(env="production", migration_database_url=None)))
    rt = app.extensions["saas"]
    try:
        assert rt.runtime_role == make_url(sqlalchemy_url(database["runtime"])).username
        assert rt.settings.migration_database_url is None
    finally:
        rt.engine.dispose()
    owner_as_api = settings.model_copy(
        update=dict(env="production", database_url=database["owner"], migration_database_url=None)
    )
    with pytest.raises(ConfigError, match=r"which (has CREATEROLE|owns \d+ schema)"):
        create_api(owner_as_api)
