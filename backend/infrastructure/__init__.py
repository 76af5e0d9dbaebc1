"""Adapters to the outside world: PostgreSQL, Alembic, media storage, mail, pg_dump."""
