"""shared: password-reset and MFA-challenge tokens, session user agent, TOTP second factor

Revision ID: 0006_accounts
Revises: 0005_spare_schemas
Create Date: 2026-12-05

- one_time_tokens.kind admits 'password_reset', 'mfa_challenge' and 'email_change' (single use, short lived,
  stored as a digest like the other one-time tokens).
- user_mfa: a user's TOTP secret, sealed (Fernet, key from the settings: never in plain text),
  pending until confirmed with a code; the last accepted time step (no replay of a code).
- mfa_recovery_codes: single-use recovery codes, stored as SHA-256 digests.
- refresh_tokens.user_agent: the User-Agent header of the request that issued the token, so
  that "my sessions" can name the device. No IP address is stored (docs/security.md).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_accounts"
down_revision = "0006_job_queue"
branch_labels = None
depends_on = None

S = "shared"
OLD_KINDS = "kind IN ('email_verification','invitation')"
NEW_KINDS = "kind IN ('email_verification','invitation','password_reset','mfa_challenge','email_change')"


def upgrade() -> None:
    op.drop_constraint(op.f("ck_one_time_tokens_kind"), "one_time_tokens", schema=S, type_="check")
    op.create_check_constraint(op.f("ck_one_time_tokens_kind"), "one_time_tokens", NEW_KINDS, schema=S)
    op.add_column("refresh_tokens", sa.Column("user_agent", sa.Text()), schema=S)
    op.create_table(
        "user_mfa",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("enabled_at", sa.DateTime(timezone=True)),
        sa.Column("last_step", sa.BigInteger()),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["shared.users.id"], name=op.f("fk_user_mfa_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_mfa")),
        schema=S,
    )
    op.create_table(
        "mfa_recovery_codes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["shared.users.id"],
            name=op.f("fk_mfa_recovery_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_recovery_codes")),
        sa.UniqueConstraint("user_id", "code_hash", name=op.f("uq_mfa_recovery_codes_user_id_code_hash")),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("mfa_recovery_codes", schema=S)
    op.drop_table("user_mfa", schema=S)
    op.execute("DELETE FROM shared.one_time_tokens WHERE kind IN ('mfa_challenge', 'email_change')")
    op.drop_column("refresh_tokens", "user_agent", schema=S)
    op.execute("DELETE FROM shared.one_time_tokens WHERE kind = 'password_reset'")
    op.drop_constraint(op.f("ck_one_time_tokens_kind"), "one_time_tokens", schema=S, type_="check")
    op.create_check_constraint(op.f("ck_one_time_tokens_kind"), "one_time_tokens", OLD_KINDS, schema=S)
