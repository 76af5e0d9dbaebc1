"""shared: notify web processes when what the access cache holds changes

Revision ID: 0004_access_notifications
Revises: 0003_lifecycle
Create Date: 2026-11-27

Every web process caches the registry's answer to "may this user act in this tenant"
(backend/api/auth.py). Triggers on the four tables that answer feeds from send
`pg_notify('access_changed', ...)`, delivered at commit to every listening process, whoever
wrote the row (API, operator script, manual SQL). Identical payloads in one transaction are
delivered once (PostgreSQL folds them), so revoking a whole token family costs one message.
"""

from alembic import op

revision = "0004_access_notifications"
down_revision = "0003_lifecycle"
branch_labels = None
depends_on = None

CHANNEL = "access_changed"

# table -> (events, payload expression over the row `r`)
TRIGGERS = {
    "tenants": ("UPDATE OR DELETE", "'tenant:' || r.id"),
    "memberships": ("INSERT OR UPDATE OR DELETE", "'member:' || r.user_id || ':' || r.tenant_id"),
    "users": ("UPDATE OR DELETE", "'user:' || r.id"),
    "refresh_tokens": ("UPDATE OF revoked_at OR DELETE", "'session:' || r.family_id"),
}


def upgrade() -> None:
    for table, (events, payload) in TRIGGERS.items():
        op.execute(
            f"""
            CREATE FUNCTION shared.notify_access_changed_{table}() RETURNS trigger
            LANGUAGE plpgsql AS $fn$
            DECLARE
                r shared.{table};
            BEGIN
                IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
                PERFORM pg_notify('{CHANNEL}', {payload});
                RETURN NULL;
            END
            $fn$
            """
        )
        op.execute(
            f"CREATE TRIGGER notify_access_changed AFTER {events} ON shared.{table} "
            f"FOR EACH ROW EXECUTE FUNCTION shared.notify_access_changed_{table}()"
        )


def downgrade() -> None:
    for table in TRIGGERS:
        op.execute(f"DROP TRIGGER notify_access_changed ON shared.{table}")
        op.execute(f"DROP FUNCTION shared.notify_access_changed_{table}()")
