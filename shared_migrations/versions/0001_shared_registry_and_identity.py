"""shared registry, identity and audit tables

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

S = "shared"


def _ts(name: str, **kw) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), **kw)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("schema_name", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("plan", sa.Text(), server_default="trial", nullable=False),
        _ts("trial_ends_at"),
        _ts("created_at", server_default=sa.func.now(), nullable=False),
        _ts("disabled_at"),
        _ts("deletion_due_at"),
        _ts("deleted_at"),
        sa.Column("schema_version", sa.Text()),
        sa.Column("last_migration_error", sa.Text()),
        sa.CheckConstraint(
            "status IN ('provisioning','active','disabled','deletion_scheduled','deleted')",
            name=op.f("ck_tenants_status"),
        ),
        sa.CheckConstraint("plan IN ('trial','paid')", name=op.f("ck_tenants_plan")),
        sa.CheckConstraint("schema_name ~ '^tenant_[0-9a-f]{32}$'", name=op.f("ck_tenants_schema_name")),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("slug", name="uq_tenants_slug"),
        sa.UniqueConstraint("schema_name", name="uq_tenants_schema_name"),
        schema=S,
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("password_hash", sa.Text()),
        _ts("verified_at"),
        _ts("created_at", server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        schema=S,
    )
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True, schema=S)
    op.create_table(
        "memberships",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Uuid()),
        _ts("created_at", server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("role IN ('worker','client')", name=op.f("ck_memberships_role")),
        sa.CheckConstraint(
            "(role = 'client') = (client_id IS NOT NULL)", name=op.f("ck_memberships_client_link")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["shared.users.id"], name="fk_memberships_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["shared.tenants.id"],
            name="fk_memberships_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_memberships"),
        sa.UniqueConstraint("user_id", "tenant_id", name="uq_memberships_user_id_tenant_id"),
        schema=S,
    )
    op.create_index("ix_memberships_tenant_id", "memberships", ["tenant_id"], schema=S)
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("family_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        _ts("issued_at", server_default=sa.func.now(), nullable=False),
        _ts("expires_at", nullable=False),
        _ts("used_at"),
        _ts("revoked_at"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["shared.users.id"], name="fk_refresh_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["shared.tenants.id"],
            name="fk_refresh_tokens_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
        schema=S,
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"], schema=S)
    op.create_index(
        "ix_refresh_tokens_user_id_tenant_id", "refresh_tokens", ["user_id", "tenant_id"], schema=S
    )
    op.create_index("ix_refresh_tokens_tenant_id", "refresh_tokens", ["tenant_id"], schema=S)
    op.create_table(
        "one_time_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("user_id", sa.Uuid()),
        sa.Column("tenant_id", sa.Uuid()),
        sa.Column("client_id", sa.Uuid()),
        sa.Column("email", sa.Text()),
        _ts("created_at", server_default=sa.func.now(), nullable=False),
        _ts("expires_at", nullable=False),
        _ts("used_at"),
        sa.CheckConstraint(
            "kind IN ('email_verification','invitation')", name=op.f("ck_one_time_tokens_kind")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["shared.users.id"], name="fk_one_time_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["shared.tenants.id"],
            name="fk_one_time_tokens_tenant_id_tenants",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_one_time_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_one_time_tokens_token_hash"),
        schema=S,
    )
    op.create_index("ix_one_time_tokens_user_id", "one_time_tokens", ["user_id"], schema=S)
    op.create_index("ix_one_time_tokens_tenant_id", "one_time_tokens", ["tenant_id"], schema=S)
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        _ts("occurred_at", server_default=sa.func.now(), nullable=False),
        sa.Column("tenant_id", sa.Uuid()),
        sa.Column("actor_user_id", sa.Uuid()),
        sa.Column("actor_role", sa.Text()),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("target_type", sa.Text()),
        sa.Column("target_id", sa.Text()),
        sa.Column("request_id", sa.Text()),
        sa.Column("outcome", sa.Text(), server_default="success", nullable=False),
        sa.Column("metadata", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        schema=S,
    )
    op.create_index(
        "ix_audit_events_tenant_id_occurred_at", "audit_events", ["tenant_id", "occurred_at"], schema=S
    )
    op.create_index("ix_audit_events_occurred_at", "audit_events", ["occurred_at"], schema=S)


def downgrade() -> None:
    for table in ("audit_events", "one_time_tokens", "refresh_tokens", "memberships", "users", "tenants"):
        op.drop_table(table, schema=S)
