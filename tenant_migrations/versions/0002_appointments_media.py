"""tenant: client search indexes, appointments (no overlap), media

Revision ID: t0002
Revises: t0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "t0002"
down_revision = "t0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No schema argument: the transaction's search path is the tenant's schema.
    op.create_index("ix_clients_lower_name_id", "clients", [sa.text("lower(name)"), "id"])
    op.create_index("ix_clients_lower_name_pattern", "clients", [sa.text("lower(name) text_pattern_ops")])
    op.create_index("ix_clients_lower_email_pattern", "clients", [sa.text("lower(email) text_pattern_ops")])

    op.create_table(
        "appointments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text(), server_default="scheduled", nullable=False),
        sa.Column("notes", sa.Text()),
        sa.Column("shared_notes", sa.Text()),
        sa.Column("cancelled_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "status IN ('scheduled', 'completed', 'cancelled')", name=op.f("ck_appointments_status")
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_appointments_period")),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name="fk_appointments_client_id_clients", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_appointments"),
        postgresql.ExcludeConstraint(
            (sa.text("tstzrange(starts_at, ends_at)"), "&&"),
            name="ex_appointments_no_overlap",
            using="gist",
            where=sa.text("status <> 'cancelled'"),
        ),
    )
    op.create_index("ix_appointments_starts_at_id", "appointments", ["starts_at", "id"])
    op.create_index(
        "ix_appointments_client_id_starts_at_id", "appointments", ["client_id", "starts_at", "id"]
    )
    op.create_index("ix_appointments_status_starts_at_id", "appointments", ["status", "starts_at", "id"])

    op.create_table(
        "media",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Uuid()),
        sa.Column("appointment_id", sa.Uuid()),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("uploaded_by", sa.Uuid(), nullable=False),
        sa.Column("uploaded_by_role", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("client_id IS NOT NULL OR deleted_at IS NOT NULL", name=op.f("ck_media_linked")),
        sa.CheckConstraint("size_bytes >= 0", name=op.f("ck_media_size")),
        sa.CheckConstraint(
            "uploaded_by_role IN ('worker', 'client')", name=op.f("ck_media_uploaded_by_role")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name="fk_media_client_id_clients", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["appointment_id"],
            ["appointments.id"],
            name="fk_media_appointment_id_appointments",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_media"),
    )
    op.create_index(
        "ix_media_created_at_id",
        "media",
        ["created_at", "id"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index("ix_media_client_id_created_at_id", "media", ["client_id", "created_at", "id"])
    op.create_index("ix_media_appointment_id", "media", ["appointment_id"])
    op.create_index(
        "ix_media_deleted_at",
        "media",
        ["deleted_at"],
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("media")
    op.drop_table("appointments")
    op.drop_index("ix_clients_lower_email_pattern", table_name="clients")
    op.drop_index("ix_clients_lower_name_pattern", table_name="clients")
    op.drop_index("ix_clients_lower_name_id", table_name="clients")
