"""Units of work: one transaction each, rolled back unless `commit()` was called.

`SqlRegistryUnitOfWork` works on the shared schema (as the owner role for operator commands
and the worker, as the runtime role for requests, signup's claim of a workspace included);
`SqlTenantUnitOfWork` works inside one tenant's scope (transaction-local search path). Both
translate known constraint violations into domain conflicts.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from backend.core.db import TenantScope
from backend.infrastructure.sql.appointments import SqlAppointmentRepository
from backend.infrastructure.sql.audit import SqlAuditLog
from backend.infrastructure.sql.clients import SqlClientRepository
from backend.infrastructure.sql.errors import as_domain_error
from backend.infrastructure.sql.identity import (
    SqlClientDirectory,
    SqlClientLogins,
    SqlMembershipRepository,
    SqlOneTimeTokenRepository,
    SqlRefreshTokenRepository,
    SqlUserRepository,
)
from backend.infrastructure.sql.media import SqlMediaRepository
from backend.infrastructure.sql.mfa import SqlMfaRepository
from backend.infrastructure.sql.scheduled import SqlMediaTrash
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.tenants import SqlTenantRepository


class _SqlUnitOfWork:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._checked_out: Connection | None = None

    @property
    def connection(self) -> Connection | None:
        return self._checked_out

    def __enter__(self):
        self._checked_out = self._connect()
        self._bind(self._checked_out)
        return self

    def _connect(self) -> Connection:
        connection = self._engine.connect()
        connection.begin()
        return connection

    def _bind(self, connection: Connection) -> None:
        self.audit = SqlAuditLog(connection)

    def __exit__(self, exc_type, exc, tb):
        try:
            self.rollback()
        finally:
            self._checked_out.close()
            self._checked_out = None
        if isinstance(exc, IntegrityError):
            translated = as_domain_error(exc)
            if translated is not exc:
                raise translated from exc
        return False

    def commit(self) -> None:
        try:
            self._checked_out.commit()
        except IntegrityError as error:  # deferred constraints surface at commit
            raise as_domain_error(error) from error

    def rollback(self) -> None:
        if self._checked_out is not None and self._checked_out.in_transaction():
            self._checked_out.rollback()


class SqlRegistryUnitOfWork(_SqlUnitOfWork):
    """`spares`: provisioning may claim a spare schema from the pool, through the owner's
    `shared.claim_spare_schema` (so the runtime role may too): signup always (as the runtime
    role, which can only claim), `tenants provision` when SPARE_SCHEMAS > 0."""

    def __init__(
        self,
        engine: Engine,
        runtime_role: str | None = None,
        *,
        fast_provisioning: bool = True,
        spares: bool = False,
    ) -> None:
        super().__init__(engine)
        self._runtime_role = runtime_role
        self._fast_provisioning = fast_provisioning
        self._spares = spares

    def _bind(self, connection: Connection) -> None:
        super()._bind(connection)
        self.tenants = SqlTenantRepository(connection)
        self.users = SqlUserRepository(connection)
        self.memberships = SqlMembershipRepository(connection)
        self.refresh_tokens = SqlRefreshTokenRepository(connection)
        self.one_time_tokens = SqlOneTimeTokenRepository(connection)
        self.mfa = SqlMfaRepository(connection)
        self.client_directory = SqlClientDirectory(connection)
        self.schemas = SqlSchemaManager(
            connection, self._runtime_role, fast_provisioning=self._fast_provisioning, spares=self._spares
        )


class SqlTenantUnitOfWork(_SqlUnitOfWork):
    """A request's transaction in one tenant's scope, opened when a repository first needs it
    (core/db.TenantScope): BEGIN and the scope go in one round trip, so a short request costs
    that, its statements, and the commit or rollback. A list page read before anything else
    costs one round trip in all (the scope and the read together, nothing left to end)."""

    def __init__(self, engine: Engine, schema_name: str) -> None:
        super().__init__(engine)
        self.schema_name = schema_name
        self.scope: TenantScope | None = None

    @property
    def connection(self) -> Connection | None:
        """The connection in the tenant's transaction (opened by this access if not yet)."""
        return self.scope.connection if self._checked_out is not None else None

    def _connect(self) -> Connection:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        connection.begin()  # SQLAlchemy's marker; the server's BEGIN comes with the scope
        return connection

    def _bind(self, connection: Connection) -> None:
        self.scope = TenantScope(connection, self.schema_name)
        self.clients = SqlClientRepository(self.scope)

    # The other repositories open the transaction as they are handed out.
    @property
    def audit(self) -> SqlAuditLog:
        return SqlAuditLog(self.scope.connection)

    @property
    def appointments(self) -> SqlAppointmentRepository:
        return SqlAppointmentRepository(self.scope.connection)

    @property
    def media(self) -> SqlMediaRepository:
        return SqlMediaRepository(self.scope.connection)

    @property
    def client_logins(self) -> SqlClientLogins:
        return SqlClientLogins(self.scope.connection, self.schema_name)

    @property
    def media_trash(self) -> SqlMediaTrash:
        return SqlMediaTrash(self.scope.connection, self.schema_name)
