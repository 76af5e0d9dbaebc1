"""shared: scheduled work, so that periodic runs open only the tenants with something due

Revision ID: 0010_scheduled_work
Revises: 0009_workspace_claim
Create Date: 2026-12-05

- scheduled_work: one row per tenant whose trash holds soft-deleted media, with the deletion
  time of the oldest item (backend/infrastructure/sql/scheduled.py); the retention run reads
  its index and opens only those tenants.
- Partial indexes for the other due work: deletions past their grace period
  (tenants.deletion_due_at where status is deletion_scheduled) and unverified signups
  (users.created_at where verified_at is null).

Every tenant that has a schema gets a row dated 1970 on the way up: whatever its trash held
before this revision is found by the first retention run, which opens each such tenant once
and leaves a row only where soft-deleted media remain.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_scheduled_work"
down_revision = "0009_workspace_claim"
branch_labels = None
depends_on = None

S = "shared"


def upgrade() -> None:
    op.create_table(
        "scheduled_work",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("media_trash_since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["shared.tenants.id"],
            name=op.f("fk_scheduled_work_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_scheduled_work")),
        schema=S,
    )
    op.create_index(
        op.f("ix_scheduled_work_media_trash_since"), "scheduled_work", ["media_trash_since"], schema=S
    )
    op.create_index(
        "ix_tenants_deletion_due_at",
        "tenants",
        ["deletion_due_at"],
        schema=S,
        postgresql_where=sa.text("status = 'deletion_scheduled'"),
    )
    op.create_index(
        "ix_users_created_at_unverified",
        "users",
        ["created_at"],
        schema=S,
        postgresql_where=sa.text("verified_at IS NULL"),
    )
    op.execute(
        "INSERT INTO shared.scheduled_work (tenant_id, media_trash_since)"
        " SELECT id, timestamptz '1970-01-01 00:00+00' FROM shared.tenants"
        " WHERE status IN ('active', 'disabled', 'deletion_scheduled')"
    )


def downgrade() -> None:
    op.drop_index("ix_users_created_at_unverified", table_name="users", schema=S)
    op.drop_index("ix_tenants_deletion_due_at", table_name="tenants", schema=S)
    op.drop_index(op.f("ix_scheduled_work_media_trash_since"), table_name="scheduled_work", schema=S)
    op.drop_table("scheduled_work", schema=S)
