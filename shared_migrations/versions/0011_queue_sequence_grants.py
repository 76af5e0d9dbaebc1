"""shared: the queue's sequences, usable by the API only where a defer needs them

Revision ID: 0011_queue_sequence_grants
Revises: 0010_scheduled_work
Create Date: 2026-12-05

Until this revision `grant_shared` gave the runtime role USAGE on every sequence of the schema
`jobs`. A defer (the API's only write to the queue) inserts into `procrastinate_jobs`, and
procrastinate's insert triggers, which run as the inserting role (none of its functions is
SECURITY DEFINER), add a row to `procrastinate_events`: `procrastinate_jobs_id_seq` and
`procrastinate_events_id_seq` are the two it draws from. `procrastinate_periodic_defers_id_seq`
and `procrastinate_workers_id_seq` belong to the worker, which connects as the owner.

`grant_shared` now grants USAGE on those two sequences by name (a fresh install has nothing
else); this revision takes every privilege on the queue's other sequences away from every role
but their owner, on an install that had them. It names no role: the migration does not know
the runtime role's name, and nobody but the owner has any business with those sequences.

Downgrade changes nothing: the previous release's `grant_shared` grants the rest again at its
next `tenants migrate`.
"""

from alembic import op

revision = "0011_queue_sequence_grants"
down_revision = "0010_scheduled_work"
branch_labels = None
depends_on = None

REVOKE_UNNEEDED = """
DO $revoke$
DECLARE
    item record;
BEGIN
    FOR item IN
        SELECT DISTINCT c.oid::pg_catalog.regclass AS sequence, a.grantee
        FROM pg_catalog.pg_class c
        CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
        WHERE c.relnamespace = 'jobs'::pg_catalog.regnamespace AND c.relkind = 'S'
          AND c.relname NOT IN ('procrastinate_jobs_id_seq', 'procrastinate_events_id_seq')
          AND a.grantee <> c.relowner
    LOOP
        IF item.grantee = 0 THEN
            EXECUTE pg_catalog.format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC', item.sequence);
        ELSE
            -- regrole's text is the role's name, quoted where it needs quotes.
            EXECUTE pg_catalog.format(
                'REVOKE ALL ON SEQUENCE %s FROM %s', item.sequence, item.grantee::pg_catalog.regrole
            );
        END IF;
    END LOOP;
END
$revoke$
"""


def upgrade() -> None:
    # no_parameters: the driver must not read the `%` of format() as placeholders.
    op.get_bind().exec_driver_sql(REVOKE_UNNEEDED, execution_options={"no_parameters": True})


def downgrade() -> None:
    pass
