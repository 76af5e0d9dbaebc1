"""Run the two Alembic trees programmatically, on a connection the caller holds.

`alembic.ini` has a `[shared]` and a `[tenant]` section (`alembic -n shared|tenant ...`).
Scripts, provisioning and tests share their connection with Alembic through
`config.attributes["connection"]` (Alembic cookbook: "Sharing a Connection").
"""

from __future__ import annotations

import functools

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from backend.core.config import PROJECT_ROOT
from backend.core.db import set_tenant_search_path
from backend.core.tenancy import validate_schema_name

ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"


def alembic_config(tree: str, connection: Connection | None = None, **attributes) -> Config:
    if tree not in ("shared", "tenant"):
        raise ValueError(f"unknown migration tree {tree!r}")
    config = Config(str(ALEMBIC_INI), ini_section=tree)
    config.set_main_option("script_location", str(PROJECT_ROOT / f"{tree}_migrations"))
    if connection is not None:
        config.attributes["connection"] = connection
    config.attributes.update(attributes)
    return config


@functools.cache
def head_revision(tree: str) -> str:
    heads = ScriptDirectory.from_config(alembic_config(tree)).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"{tree} migrations have {len(heads)} heads: {heads}")
    return heads[0]


def upgrade_shared(connection: Connection, revision: str = "head") -> None:
    command.upgrade(alembic_config("shared", connection), revision)


def shared_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table_schema": "shared"})
    return context.get_current_revision()


def upgrade_tenant(connection: Connection, schema_name: str, revision: str = "head") -> str | None:
    """Upgrade one tenant schema inside the caller's transaction; return its new revision."""
    validate_schema_name(schema_name)
    command.upgrade(alembic_config("tenant", connection, tenant_schema=schema_name), revision)
    return tenant_revision(connection, schema_name)


def downgrade_tenant(connection: Connection, schema_name: str, revision: str) -> None:
    validate_schema_name(schema_name)
    command.downgrade(alembic_config("tenant", connection, tenant_schema=schema_name), revision)


def tenant_revision(connection: Connection, schema_name: str) -> str | None:
    set_tenant_search_path(connection, schema_name)
    context = MigrationContext.configure(connection, opts={"version_table_schema": schema_name})
    return context.get_current_revision()
