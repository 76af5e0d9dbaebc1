"""shared: a workspace can require a second factor of its workers

Revision ID: 0008_workspace_mfa_policy
Revises: 0007_accounts
Create Date: 2026-12-05

- tenants.mfa_required_for_workers: the owner's setting (PATCH /tenant/settings). While it is
  on, a worker without a confirmed TOTP factor is held at the enrolment routes
  (403 `mfa_enrolment_required` elsewhere; docs/security.md, "Second factor").
- user_mfa notifies `access_changed` ('user:<id>') when a factor is turned on or removed: every
  web process's access cache holds whether the caller has a factor, and must drop it at once
  (the tenants table already notifies when the setting changes). `last_step`, written at every
  second-factor login, does not notify.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_workspace_mfa_policy"
down_revision = "0007_accounts"
branch_labels = None
depends_on = None

S = "shared"


def upgrade() -> None:
    op.add_column(
        "tenants",
        sa.Column("mfa_required_for_workers", sa.Boolean(), server_default=sa.false(), nullable=False),
        schema=S,
    )
    op.execute(
        """
        CREATE FUNCTION shared.notify_access_changed_user_mfa() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        DECLARE
            r shared.user_mfa;
        BEGIN
            IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
            PERFORM pg_notify('access_changed', 'user:' || r.user_id);
            RETURN NULL;
        END
        $fn$
        """
    )
    op.execute(
        "CREATE TRIGGER notify_access_changed AFTER UPDATE OF enabled_at OR DELETE ON shared.user_mfa "
        "FOR EACH ROW EXECUTE FUNCTION shared.notify_access_changed_user_mfa()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER notify_access_changed ON shared.user_mfa")
    op.execute("DROP FUNCTION shared.notify_access_changed_user_mfa()")
    op.drop_column("tenants", "mfa_required_for_workers", schema=S)
