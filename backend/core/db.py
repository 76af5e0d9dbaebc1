"""Engines, the pool guard and the tenant scope.

Decisions (see docs/architecture.md):
- The search path is set per transaction with `set_config('search_path', ..., true)`;
  a session-level `SET` on a pooled connection is how peers served one tenant's rows to
  another. Every connection starts with `search_path=pg_catalog` (no `public`, no tenant):
  an unqualified name outside a tenant scope fails instead of reading the wrong table.
- The pool guard checks that search path at every checkout and refuses (invalidates) a
  connection that carries anything else.
- Liveness: a connection that sat idle in the pool longer than PING_AFTER_IDLE_S is pinged
  at checkout (a dead one is replaced, so the service recovers by itself after PostgreSQL
  restarts); one returned moments ago is not. SQLAlchemy's `pool_pre_ping` pings at every
  checkout: a whole round trip per request, about a fifth of a request's time in the
  requests benchmark's profile. The bypass window is HikariCP's `aliveBypassWindowMs` idea.
- The same statement assumes the tenant's own role (`set_config('role', ..., true)`): the
  database itself refuses a query that reaches another tenant's schema
  (docs/security-database.md).
- `prepare_threshold=None`: psycopg never prepares server-side statements. The same SQL
  text runs against many schemas, possibly at different migration versions; a prepared
  plan whose result type changes fails with "cached plan must not change result type".
  It also keeps the app compatible with PgBouncer in transaction mode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from psycopg import sql
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError

from backend.core.config import Settings
from backend.core.tenancy import quoted_schema, validate_schema_name

log = logging.getLogger(__name__)

DEFAULT_SEARCH_PATH = "pg_catalog"
PING_AFTER_IDLE_S = 0.5


def sqlalchemy_url(url: str) -> str:
    """Accept libpq-style URLs (postgresql://) and pin the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(
    url: str,
    settings: Settings,
    *,
    application_name: str = "saas-api",
    pool_size: int | None = None,
    pre_ping: bool = True,
    statement_timeout_ms: int | None = None,
) -> Engine:
    """`statement_timeout_ms` (the API's runtime engine: DB_STATEMENT_TIMEOUT_MS) is set for the
    session of every new connection, before its first use, overriding the role's own default;
    None keeps the role's (the owner's migrations and purges have none). No `options` startup
    parameter (PgBouncer refuses it): `search_path = pg_catalog` is the roles' and the
    database's default (embedded_postgres.bootstrap, scripts/db_bootstrap.py, `tenants
    migrate`)."""
    engine = create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size or settings.pool_size,
        max_overflow=settings.pool_max_overflow,
        pool_timeout=settings.pool_timeout_s,
        pool_recycle=settings.pool_recycle_s,
        # Bound values (emails, hashes) stay out of exception messages, hence out of logs.
        hide_parameters=True,
        connect_args={"prepare_threshold": None, "application_name": application_name},
    )
    install_session_defaults(engine, statement_timeout_ms, citus=settings.citus)
    install_pool_guard(engine, ping_after_idle_s=PING_AFTER_IDLE_S if pre_ping else None)
    return engine


def install_session_defaults(
    engine: Engine, statement_timeout_ms: int | None, *, citus: bool = False
) -> None:
    """At every new connection: the statement timeout asked for, and `search_path =
    pg_catalog` where the role and database carry no such default (a database bootstrapped
    by a release that sent it as a startup parameter), with a warning saying how to fix the
    server: directly connected, such a database keeps working. Behind PgBouncer the search
    path must be the server's default (docs/operations.md, PgBouncer); the timeout is the same
    for every connection of the engine's role, so on a pooled server connection it holds too."""

    @event.listens_for(engine, "connect")
    def _session_defaults(dbapi_connection, connection_record):
        settings = []
        if statement_timeout_ms is not None:
            settings.append(("statement_timeout", f"{int(statement_timeout_ms)}ms"))
        if citus:
            # On the connection, not in provisioning: every CREATE SCHEMA on every path (chain,
            # step script, spare, restore) makes a distributed schema placed whole on one
            # worker. The shared schema's migration switches it off (docs/scale-out.md).
            settings.append(("citus.enable_schema_based_sharding", "on"))
        current = _search_path_of(dbapi_connection)
        if current != DEFAULT_SEARCH_PATH:
            log.warning(
                "the role's default search_path is %r, not %r: set for this session; run "
                "scripts/db_bootstrap.py or `tenants migrate` to set it in the database",
                current,
                DEFAULT_SEARCH_PATH,
            )
            settings.append(("search_path", DEFAULT_SEARCH_PATH))
        if not settings:
            return
        cursor = dbapi_connection.cursor()
        try:
            for name, value in settings:
                cursor.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
        finally:
            cursor.close()
            dbapi_connection.commit()


def distributes_schemas(connection: Connection) -> bool:
    """True when this connection's new schemas become Citus distributed schemas (above).
    Read once per database connection (a session default, constant for its life): kept in
    the pooled connection's info, so a single server pays one query per connection."""
    info = connection.connection.info
    if "distributes_schemas" not in info:
        value = connection.execute(text("SELECT current_setting('citus.enable_schema_based_sharding', true)"))
        info["distributes_schemas"] = value.scalar() == "on"
    return info["distributes_schemas"]


def _search_path_of(dbapi_connection) -> str:
    # PostgreSQL 18 reports search_path to the client: no round trip needed.
    reported = dbapi_connection.info.parameter_status("search_path")
    if reported is not None:
        return reported
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT current_setting('search_path')")
        (value,) = cursor.fetchone()
        return value
    finally:
        cursor.close()
        dbapi_connection.rollback()


def install_pool_guard(engine: Engine, *, ping_after_idle_s: float | None = PING_AFTER_IDLE_S) -> None:
    @event.listens_for(engine, "checkin")
    def _note_return(dbapi_connection, connection_record):
        connection_record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _refuse_dead_or_dirty_connection(dbapi_connection, connection_record, connection_proxy):
        returned_at = connection_record.info.get("returned_at")
        if ping_after_idle_s is not None and returned_at is not None:
            if time.monotonic() - returned_at > ping_after_idle_s:
                try:
                    engine.dialect.do_ping(dbapi_connection)  # autocommit: one round trip
                except Exception as error:  # whatever the driver raises: replace the connection
                    reason = f"idle connection failed its ping: {type(error).__name__}"
                    raise DisconnectionError(reason) from error
        current = _search_path_of(dbapi_connection)
        if current != DEFAULT_SEARCH_PATH:
            log.error(
                "pool guard: connection with search_path=%r refused; if every connection is, "
                "the role's default is missing: run scripts/db_bootstrap.py (or ALTER ROLE "
                "<role> SET search_path = pg_catalog)",
                current,
            )
            # DisconnectionError makes the pool discard this connection and check out another.
            raise DisconnectionError(f"search_path is {current!r}, not the default")


@contextmanager
def tenant_scope(engine: Engine, schema_name: str) -> Iterator[Connection]:
    """A transaction whose search path is the tenant's schema, and only for its duration."""
    with engine.begin() as connection:
        set_tenant_search_path(connection, schema_name)
        yield connection


def tenant_role_name(schema_name: str) -> str:
    """The NOLOGIN role that alone may use a tenant's schema: named like the schema."""
    return validate_schema_name(schema_name)


# One statement, no extra round trip: the transaction-local search path, and the tenant's
# role unless the session user may CREATE in the schema, i.e. is the owner role running
# migrations, provisioning or purge, which works as itself. The runtime role may create
# nothing anywhere, so it always switches; and were the switch skipped (no such schema) it
# would still fail closed, having no privilege of its own on tenant schemas. Function calls
# only (no catalog subquery to plan), and both settings end with the transaction.
_TENANT_SCOPE = sql.SQL(
    "SELECT pg_catalog.set_config('search_path', {path}, true),"
    " CASE WHEN pg_catalog.has_schema_privilege("
    "          session_user, pg_catalog.to_regnamespace({schema}), 'CREATE') IS NOT FALSE"
    " THEN NULL ELSE pg_catalog.set_config('role', {role}, true) END"
)


def set_tenant_search_path(connection: Connection, schema_name: str) -> None:
    """Scope the current transaction to the tenant: its search path and its role."""
    connection.exec_driver_sql(tenant_scope_sql(schema_name))


class DirtyConnectionError(OperationalError):
    """A transaction began on a server session that carries a session-level search path or
    role: refused (503 `database_unavailable`, retried by the client), connection discarded."""

    def __init__(self, reason: str) -> None:
        super().__init__("tenant scope", None, RuntimeError(reason), connection_invalidated=True)


def begin_tenant_transaction(connection: Connection, schema_name: str) -> None:
    """Open the transaction and scope it to the tenant in one round trip, on a connection in
    AUTOCOMMIT mode: `<scope>; BEGIN` is one simple-query message (PostgreSQL includes the
    statements before a BEGIN in the transaction block it opens), where psycopg would
    otherwise send its BEGIN alone first. Its commit and rollback end the transaction as
    usual (psycopg sends them whenever a transaction is open, autocommit or not).

    The scope statement also reads the search path and role the session brought, before it
    sets the tenant's (PostgreSQL evaluates the select list left to right): the pool guard
    inside the transaction. Behind PgBouncer in transaction mode the checkout guard's query
    (PostgreSQL < 18) may run on another server connection than this transaction; this check
    runs on the very server connection the tenant's statements use, at no extra round trip."""
    row = connection.exec_driver_sql(tenant_scope_sql(schema_name) + "; BEGIN").one()
    _refuse_a_dirty_session(connection, inherited_path=row[0], own_role=row[1])


def _refuse_a_dirty_session(connection: Connection, *, inherited_path: str, own_role: bool) -> None:
    if inherited_path != DEFAULT_SEARCH_PATH or not own_role:
        reason = f"session brought search_path={inherited_path!r}, own role={own_role}"
        log.error("pool guard: transaction refused: %s", reason)
        connection.invalidate()  # our end closes; a pooler drops a server left mid-transaction
        raise DirtyConnectionError(reason)


def read_in_tenant_scope(connection: Connection, schema_name: str, statement: str) -> list[tuple]:
    """One read in the tenant's scope in one round trip, leaving nothing to end: on a connection
    in AUTOCOMMIT mode with no transaction open, `statement` (no parameters) goes in one
    simple-query message with what begin_tenant_transaction sends and the COMMIT:

        <what the session brought>; BEGIN; <guard + scope>; <statement>; COMMIT

    On a clean session the read runs in the tenant's transaction-local search path and role,
    which end with the COMMIT: no round trip for BEGIN or ROLLBACK. The minimal app of the
    requests benchmark reads the same way.

    The guard refuses a session that brought its own search path or role (a leak from another
    client of a pooler) with an error inside the transaction block, before the scope is set:
    PostgreSQL skips the rest of the message and leaves the block failed, the connection is
    invalidated, and a pooler drops a server left mid-transaction, as after a refused
    begin_tenant_transaction. The first statement only reads what the session brought (the
    same check, made in Python): its row keeps the DBAPI cursor open, since psycopg receives
    every result of the message at once (read with `nextset`, as SQLAlchemy documents for
    several result sets)."""
    try:
        result = connection.exec_driver_sql(
            f"{_SESSION_STATE}; BEGIN; {guarded_tenant_scope_sql(schema_name)}; {statement}; COMMIT"
        )
    except DBAPIError as error:
        if DIRTY_SESSION not in str(error.orig):
            raise
        log.error("pool guard: read refused: %s", DIRTY_SESSION)
        connection.invalidate()
        raise DirtyConnectionError(DIRTY_SESSION) from None
    try:
        cursor = result.cursor
        inherited_path, own_role = cursor.fetchone()
        _refuse_a_dirty_session(connection, inherited_path=inherited_path, own_role=own_role)
        cursor.nextset()  # BEGIN
        cursor.nextset()  # the scope
        cursor.nextset()
        return cursor.fetchall()
    finally:
        result.close()


class TenantScope:
    """A checked-out AUTOCOMMIT connection and the tenant it serves, scoped when first needed:
    `connection` opens the tenant's transaction (begin_tenant_transaction, one round trip) for
    whatever follows; `read(statement)` before that reads in the scope without opening one
    (read_in_tenant_scope). A request that only reads a page then costs one round trip. Such
    a read is its own transaction: a use case that reads and then writes on what it read opens
    the transaction first (any use of `connection`), so that both share one snapshot."""

    def __init__(self, connection: Connection, schema_name: str) -> None:
        self._connection = connection
        self.schema_name = schema_name
        self.opened = False

    @property
    def connection(self) -> Connection:
        if not self.opened:
            begin_tenant_transaction(self._connection, self.schema_name)
            self.opened = True
        return self._connection

    def read(self, statement: str) -> list[tuple]:
        if self.opened:
            return [tuple(row) for row in self._connection.exec_driver_sql(statement)]
        return read_in_tenant_scope(self._connection, self.schema_name, statement)


# The checked scope: what the session brought, then the tenant's transaction-local settings.
_CHECKED_TENANT_SCOPE = sql.SQL(
    "SELECT pg_catalog.current_setting('search_path'), current_user = session_user, "
    + _TENANT_SCOPE.as_string(None).removeprefix("SELECT ")
)


_SESSION_STATE = "SELECT pg_catalog.current_setting('search_path'), current_user = session_user"
DIRTY_SESSION = "pool guard: the session brought its own search path or role"
# The guard fails the statement when the session is dirty: a text that is no integer, cast at
# run time (current_setting and current_user are not constants), before the scope's settings
# (PostgreSQL evaluates the select list left to right). NULL on a clean session.
_GUARDED_TENANT_SCOPE = sql.SQL(
    "SELECT CAST(CASE WHEN pg_catalog.current_setting('search_path') <> {default}"
    " OR current_user <> session_user THEN {dirty} END AS integer), "
    + _TENANT_SCOPE.as_string(None).removeprefix("SELECT ")
)


@lru_cache(maxsize=16384)
def guarded_tenant_scope_sql(schema_name: str) -> str:
    """The scope statement of read_in_tenant_scope, its values as literals (tenant_scope_sql)."""
    return _GUARDED_TENANT_SCOPE.format(
        default=sql.Literal(DEFAULT_SEARCH_PATH),
        dirty=sql.Literal(DIRTY_SESSION),
        path=sql.Literal(quoted_schema(schema_name)),
        schema=sql.Literal(schema_name),
        role=sql.Literal(tenant_role_name(schema_name)),
    ).as_string(None)


@lru_cache(maxsize=16384)
def tenant_scope_sql(schema_name: str) -> str:
    """The checked scope statement with its values as literals (a simple-query message has no
    parameters): the names are validated tenant names, quoted by psycopg. Composed once per
    tenant and process (a few hundred bytes each)."""
    return _CHECKED_TENANT_SCOPE.format(
        path=sql.Literal(quoted_schema(schema_name)),
        schema=sql.Literal(schema_name),
        role=sql.Literal(tenant_role_name(schema_name)),
    ).as_string(None)
