"""The lifecycle revision of the shared schema: models match migrations, and it downgrades."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from backend.infrastructure import migrations


def test_shared_models_match_the_migrations(owner):
    with owner.connect() as connection:
        command.check(migrations.alembic_config("shared", connection))
        connection.rollback()


def test_lifecycle_revision_downgrades_and_upgrades(owner):
    column = (
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'shared'"
        " AND table_name = 'tenants' AND column_name = 'deletion_previous_status'"
    )
    with owner.connect() as connection:
        transaction = connection.begin()
        try:
            command.downgrade(migrations.alembic_config("shared", connection), "0001")
            assert connection.execute(text(column)).scalar_one() == 0
            command.upgrade(migrations.alembic_config("shared", connection), "head")
            assert connection.execute(text(column)).scalar_one() == 1
        finally:
            transaction.rollback()  # transactional DDL: the session's database is as it was
