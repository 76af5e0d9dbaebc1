"""Units of work: one transaction each, rolled back unless `commit()` was called.

`SqlRegistryUnitOfWork` works on the shared schema (as the owner role for provisioning and
operator commands, as the runtime role for requests); `SqlTenantUnitOfWork` works inside one
tenant's scope (transaction-local search path). Both translate known constraint
violations into domain conflicts.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from backend.core.db import begin_tenant_transaction
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
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.tenants import SqlTenantRepository


class _SqlUnitOfWork:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.connection: Connection | None = None

    def __enter__(self):
        self.connection = self._connect()
        self._bind(self.connection)
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
            self.connection.close()
            self.connection = None
        if isinstance(exc, IntegrityError):
            translated = as_domain_error(exc)
            if translated is not exc:
                raise translated from exc
        return False

    def commit(self) -> None:
        try:
            self.connection.commit()
        except IntegrityError as error:  # deferred constraints surface at commit
            raise as_domain_error(error) from error

    def rollback(self) -> None:
        if self.connection is not None and self.connection.in_transaction():
            self.connection.rollback()


class SqlRegistryUnitOfWork(_SqlUnitOfWork):
    """`spares`: provisioning may claim a spare schema from the pool (SPARE_SCHEMAS > 0);
    the entry points that provision (signup, `tenants provision`) pass it from the settings."""

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
    """A request's transaction in one tenant's scope. It opens with one round trip (BEGIN
    and the scope together, core/db.begin_tenant_transaction): a short request then costs
    that, its statements, and the commit or rollback."""

    def __init__(self, engine: Engine, schema_name: str) -> None:
        super().__init__(engine)
        self.schema_name = schema_name

    def _connect(self) -> Connection:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            connection.begin()  # SQLAlchemy's marker; the server's BEGIN comes with the scope
            begin_tenant_transaction(connection, self.schema_name)
        except BaseException:  # e.g. the guard refused the session: give the connection back
            connection.close()
            raise
        return connection

    def _bind(self, connection: Connection) -> None:
        super()._bind(connection)
        self.clients = SqlClientRepository(connection)
        self.appointments = SqlAppointmentRepository(connection)
        self.media = SqlMediaRepository(connection)
        self.client_logins = SqlClientLogins(connection, self.schema_name)
