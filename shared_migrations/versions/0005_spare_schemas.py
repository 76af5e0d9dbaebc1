"""shared: the pool of spare tenant schemas

Revision ID: 0005_spare_schemas
Revises: 0004_access_notifications
Create Date: 2026-11-27

Complete tenant schemas at the tenant head, built ahead of time and claimed by the
provisioning transaction (backend/infrastructure/spares.py, docs/architecture.md). One row
per spare, written in the transaction that builds the schema.

The downgrade drops the spares themselves (schema and tenant role) with the table: without
their rows nothing would know them, and they would be schemas without a tenant.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_spare_schemas"
down_revision = "0004_access_notifications"
branch_labels = None
depends_on = None

S = "shared"


def upgrade() -> None:
    op.create_table(
        "spare_schemas",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("schema_name", sa.Text(), nullable=False),
        sa.Column("revision", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "schema_name = 'tenant_' || replace(id::text, '-', '')",
            name=op.f("ck_spare_schemas_schema_name"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spare_schemas")),
        sa.UniqueConstraint("schema_name", name=op.f("uq_spare_schemas_schema_name")),
        schema=S,
    )


def downgrade() -> None:
    # The CHECK constraint guarantees every name is tenant_<32 hex>; %I quotes it anyway.
    op.execute(
        """
        DO $drop$
        DECLARE
            spare record;
        BEGIN
            FOR spare IN SELECT schema_name FROM shared.spare_schemas LOOP
                EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', spare.schema_name);
                IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = spare.schema_name) THEN
                    EXECUTE format('DROP ROLE %I', spare.schema_name);
                END IF;
            END LOOP;
        END
        $drop$
        """
    )
    op.drop_table("spare_schemas", schema=S)
