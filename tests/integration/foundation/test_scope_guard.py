"""The pool guard inside the transaction: the statement that opens a tenant transaction refuses
a session that brought its own search path or role. Behind PgBouncer in transaction mode this
is the check that runs on the server connection the tenant's statements use (the checkout
guard's query may run on another one); here the session is dirtied after checkout, which the
checkout guard cannot see either."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from backend.core.db import (
    DirtyConnectionError,
    begin_tenant_transaction,
    create_db_engine,
    read_in_tenant_scope,
    set_tenant_search_path,
)
from tests.owner import owner_engine


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


def test_a_read_in_the_scope_is_one_implicit_transaction_of_its_tenant(settings, runtime, make_tenant):
    """read_in_tenant_scope: the scope and the read in one message, nothing left open; the
    read sees its own tenant's rows only, and a dirty session is refused all the same."""
    tenant, other = make_tenant(), make_tenant()
    for owner, name in ((tenant, "mine"), (other, "theirs")):
        with owner_engine().begin() as connection:
            set_tenant_search_path(connection, owner.schema_name)
            connection.execute(
                text("INSERT INTO clients (id, name) VALUES (gen_random_uuid(), :n)"), {"n": name}
            )
    engine = create_db_engine(
        settings.database_url, settings.model_copy(update=dict(pool_size=1, pool_max_overflow=0))
    )
    try:
        with autocommit(engine) as connection:
            rows = read_in_tenant_scope(
                connection, tenant.schema_name, "SELECT name, current_user FROM clients"
            )
            assert rows == [("mine", tenant.schema_name)]
            assert not connection.connection.dbapi_connection.info.transaction_status  # IDLE: ended
            assert connection.exec_driver_sql("SELECT current_setting('search_path')").scalar_one() == (
                "pg_catalog"
            )
            connection.execute(text(f'SET search_path TO "{other.schema_name}"'))  # session level
            with pytest.raises(DirtyConnectionError):
                read_in_tenant_scope(connection, tenant.schema_name, "SELECT name FROM clients")
            assert connection.invalidated
    finally:
        engine.dispose()
