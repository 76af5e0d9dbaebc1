"""shared: the job queue (procrastinate) in its own schema `jobs`

Revision ID: 0006_job_queue
Revises: 0005_spare_schemas
Create Date: 2026-12-05

The worker process (`flask --app backend worker`, backend/infrastructure/jobs.py) runs
background tasks from procrastinate's tables. They live in the shared database, in the
schema `jobs` and not in `shared`, so the registry's grants and the queue's are kept apart;
the shared tree owns their migrations (one `alembic upgrade head` for the whole shared
database, one owner; docs/jobs.md). procrastinate ships its schema as SQL: this revision
applies the file of the pinned version. A later procrastinate release that changes the
schema gets its own revision applying the release's migration script.
"""

from alembic import op
from procrastinate.schema import SchemaManager

revision = "0006_job_queue"
down_revision = "0005_spare_schemas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    connection.exec_driver_sql("CREATE SCHEMA jobs")
    # The script names nothing by schema: it lands in the first schema of the search path.
    connection.exec_driver_sql("SET LOCAL search_path TO jobs, pg_catalog")
    # Straight to psycopg without parameters: the script's comments hold '%' characters.
    connection.connection.driver_connection.execute(SchemaManager.get_schema())
    connection.exec_driver_sql("RESET search_path")
    # Its functions and triggers name tables and types without a schema too: pin their search
    # path, so they work (and resolve to `jobs`, nothing else) whoever calls them.
    connection.connection.driver_connection.execute(
        """
        DO $pin$
        DECLARE
            fn regprocedure;
        BEGIN
            FOR fn IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
                      WHERE p.pronamespace = 'jobs'::regnamespace LOOP
                EXECUTE pg_catalog.format('ALTER FUNCTION %s SET search_path = jobs, pg_catalog', fn);
            END LOOP;
        END
        $pin$
        """
    )


def downgrade() -> None:
    op.execute("DROP SCHEMA jobs CASCADE")
