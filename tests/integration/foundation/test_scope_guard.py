"""The pool guard inside the transaction: the statement that opens a tenant transaction refuses
a session that brought its own search path or role. Behind PgBouncer in transaction mode this
is the check that runs on the server connection the tenant's statements use (the checkout
guard's query may run on another one); here the session is dirtied after checkout, which the
checkout guard cannot see either."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from backend.core.db import DirtyConnectionError, begin_tenant_transaction, create_db_engine


def autocommit(engine):
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


@pytest.mark.parametrize(
    "leak",
    ['SET search_path TO "{schema}"', 'SET ROLE "{schema}"'],
    ids=["search_path", "role"],
)
def test_a_tenant_transaction_on_a_dirty_session_is_refused(settings, runtime, make_tenant, leak):
    tenant, other = make_tenant(), make_tenant()
    engine = create_db_engine(
        settings.database_url, settings.model_copy(update=dict(pool_size=1, pool_max_overflow=0))
    )
    try:
        with autocommit(engine) as connection:
            begin_tenant_transaction(connection, tenant.schema_name)  # a clean session: accepted
            assert connection.exec_driver_sql("SELECT current_setting('search_path')").scalar_one() == (
                f'"{tenant.schema_name}"'
            )
            connection.exec_driver_sql("ROLLBACK")
            connection.execute(text(leak.format(schema=other.schema_name)))  # session level
            with pytest.raises(DirtyConnectionError):
                begin_tenant_transaction(connection, tenant.schema_name)
            assert connection.invalidated
        with autocommit(engine) as connection:  # the pool replaced it: a clean session again
            begin_tenant_transaction(connection, tenant.schema_name)
            connection.exec_driver_sql("ROLLBACK")
    finally:
        engine.dispose()
