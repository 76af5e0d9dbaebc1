"""The tenant tree as SQL: each step (from_revision -> to_revision) of the tenant tree is
rendered once per process with Alembic's offline mode, then applied to every schema at
`from_revision` in one round trip. The step from base to head is how a tenant schema is
created (sql/schemas.py `SqlSchemaManager.create`: signups, spares); the step from a tenant's
version to head is how fleet runs migrate it. One builder, generated from the chain, and the
chain itself as the reference and fallback (docs/architecture.md, "Building tenant schemas").

Running the chain costs every tenant Alembic's environment, env.py, the version table's
reflection and a round trip per operation (11-14 ms of the command's CPU per tenant); the
tenant tables carry no schema and the search path decides where they go, so the SQL of a
step is the same for every tenant but for the version table, `<schema>.alembic_version`,
rendered as a placeholder and replaced by the validated, quoted schema name per tenant.

Around Alembic's SQL the script sets the tenant's search path and first checks that the
schema really is at `from_revision` (the registry says so; a schema changed behind its back
fails the check, and the caller then runs the chain, which reads the schema's own version).

Some steps cannot be rendered: a revision that asks the database something (`op.get_bind()`
for anything but DDL constructs) or that says `online_only = True` at module level. Such a
step is logged once and runs by the chain for every tenant (`step_script` returns None).

tests/integration/lifecycle/test_step_scripts.py compares the catalog of schemas migrated by
a script and by the chain for every step of the tree and for a revision full of other kinds
of objects, so a revision whose offline SQL differs from its online effect fails there.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

from psycopg import sql
from sqlalchemy.sql.ddl import ExecutableDDLElement

from backend.core.tenancy import quoted_schema
from backend.infrastructure import migrations

log = logging.getLogger(__name__)

PLACEHOLDER = "{{tenant_schema}}"
# The version table's schema as Alembic renders it: a plain identifier no real schema has.
VERSION_SCHEMA_TOKEN = "__tenant_schema__"
# Offline rendering: the migration dialect with named parameters, so that a `%` in a
# revision's SQL is not doubled (the script is sent without parameters, `%` and all).
OFFLINE_URL = "postgresql+psycopg://"
GUARD_MESSAGE = "step script: the schema is not at the revision the registry says"
_ANY_SCHEMA_RE = re.compile(r"tenant_[0-9a-f]{32}")
_GUARD_TAG = "$step_guard$"


class OnlineOnly(Exception):
    """The step cannot be rendered as SQL; the migration chain runs it."""


@dataclass(frozen=True)
class StepScript:
    from_revision: str | None
    to_revision: str
    sql: str  # PLACEHOLDER where the schema name goes

    def for_schema(self, schema_name: str) -> str:
        """The script for one tenant (the name is validated and quoted)."""
        return self.sql.replace(PLACEHOLDER, quoted_schema(schema_name))


_cache: dict[tuple[str, str | None, str], StepScript | OnlineOnly] = {}
_cache_lock = threading.Lock()


def step_script(from_revision: str | None, to_revision: str) -> StepScript | None:
    """The cached script of the tenant tree's step, rendered on first use; None when the
    step must run by the chain (logged once per process and step)."""
    key = (str(migrations.script_location("tenant")), from_revision, to_revision)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None:
            try:
                cached = render(from_revision, to_revision)
            except OnlineOnly as reason:
                log.info("tenant step %s -> %s runs by the migration chain: %s", *key[1:], reason)
                cached = reason
            except Exception as error:  # noqa: BLE001 - the chain is always a correct fallback
                log.warning(
                    "tenant step %s -> %s cannot be rendered as SQL, it runs by the migration "
                    "chain: %s: %s", *key[1:], type(error).__name__, error,
                )  # fmt: skip
                cached = OnlineOnly(f"{type(error).__name__}: {error}")
            _cache[key] = cached
    return cached if isinstance(cached, StepScript) else None


def render(from_revision: str | None, to_revision: str) -> StepScript:
    for revision in migrations.upgrade_steps("tenant", from_revision, to_revision):
        if getattr(revision.module, "online_only", False):
            raise OnlineOnly(f"revision {revision.revision} is marked online_only")
    alembic_sql = migrations.render_upgrade("tenant", from_revision, to_revision)
    return StepScript(from_revision, to_revision, compose(alembic_sql, from_revision))


def compose(alembic_sql: str, from_revision: str | None) -> str:
    """Alembic's SQL between the tenant's search path and its reset, after the version check."""
    if alembic_sql.count(VERSION_SCHEMA_TOKEN) != alembic_sql.count(
        f"{VERSION_SCHEMA_TOKEN}.alembic_version"
    ):
        raise OnlineOnly("the rendered SQL uses the version table's schema for something else")
    if other := _ANY_SCHEMA_RE.search(alembic_sql):
        raise OnlineOnly(f"the rendered SQL names a tenant schema: {other.group()}")
    if PLACEHOLDER in alembic_sql or _GUARD_TAG in alembic_sql:
        raise OnlineOnly("the rendered SQL contains the script's own markers")
    body = alembic_sql.replace(VERSION_SCHEMA_TOKEN, PLACEHOLDER)
    return "\n".join(
        [
            f"SET LOCAL search_path TO {PLACEHOLDER};",
            _version_check(from_revision),
            body.strip(),
            # The registry statements that follow in the transaction name their schema anyway.
            "SET LOCAL search_path TO DEFAULT;",
            "",
        ]
    )


def _version_check(from_revision: str | None) -> str:
    """A DO block that fails (GUARD_MESSAGE) unless the schema's version is `from_revision`,
    or, from base, unless the schema has no version table yet."""
    version_table = f"{PLACEHOLDER}.alembic_version"
    if from_revision is None:
        expected = "no version table"
        actual = sql.SQL(
            "CASE WHEN pg_catalog.to_regclass({}) IS NULL THEN {} ELSE 'a version table' END"
        ).format(sql.Literal(version_table), sql.Literal(expected))
    else:
        expected = from_revision
        # The placeholder is inserted as it is (an SQL piece is not formatted).
        actual = (
            sql.SQL(
                "(SELECT coalesce(pg_catalog.string_agg(version_num, ',' ORDER BY version_num), 'no version')"
                " FROM "
            )
            + sql.SQL(version_table)
            + sql.SQL(")")
        )
    block = sql.SQL(
        "DO {tag}DECLARE actual text := {actual}; BEGIN IF actual IS DISTINCT FROM {expected} THEN "
        "RAISE EXCEPTION USING MESSAGE = {message},"
        " DETAIL = 'found ' || actual || ', expected ' || {expected}; "
        "END IF; END{tag};"
    ).format(
        tag=sql.SQL(_GUARD_TAG),
        actual=actual,
        expected=sql.Literal(expected),
        message=sql.Literal(GUARD_MESSAGE),
    )
    return block.as_string(None)


def configure_offline(context, **options) -> None:
    """For the tenant env.py in offline mode: schema-independent SQL for the step scripts
    (`alembic -n tenant upgrade FROM:TO --sql` prints the same). No transaction statements:
    the script runs inside each tenant's transaction."""
    context.configure(
        url=OFFLINE_URL,
        dialect_opts={"paramstyle": "named"},
        literal_binds=True,
        transactional_ddl=False,
        version_table_schema=VERSION_SCHEMA_TOKEN,
        **options,
    )
    migration_context = context.get_context()
    guard = OfflineBind(migration_context.connection)
    migration_context.connection = guard
    migration_context.impl.connection = guard


class OfflineBind:
    """What `op.get_bind()` (and the context's `bind`) return while a step is rendered:
    the dialect, and DDL constructs, which are rendered like Alembic's own operations.
    Anything that would read or change data needs the database: rendering stops with
    OnlineOnly and the step runs by the chain (a revision might act on what it reads)."""

    def __init__(self, mock) -> None:
        self._mock = mock

    @property
    def dialect(self):
        return self._mock.dialect

    @property
    def name(self) -> str:
        return self._mock.name

    @property
    def engine(self) -> OfflineBind:
        return self

    def connect(self, **kwargs) -> OfflineBind:
        return self

    def execution_options(self, **kwargs) -> OfflineBind:
        return self

    def schema_for_object(self, obj):
        return self._mock.schema_for_object(obj)

    def _run_ddl_visitor(self, visitorcallable, element, **kwargs):  # Table.create(bind), enums
        return self._mock._run_ddl_visitor(visitorcallable, element, **kwargs)

    def execute(self, statement, *args, **kwargs):
        if isinstance(statement, ExecutableDDLElement):
            return self._mock.execute(statement, *args, **kwargs)
        raise OnlineOnly(f"a revision executes {type(statement).__name__} on the bind")

    def __getattr__(self, name: str):
        raise OnlineOnly(f"a revision uses the bind's {name!r}")
