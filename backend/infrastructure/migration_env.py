"""What both Alembic env.py files share: where the connection comes from."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from alembic.config import Config
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from backend.core.db import install_session_defaults, sqlalchemy_url


@contextmanager
def migration_connection(config: Config) -> Iterator[Connection]:
    """The caller's connection when it shared one, else a new one as the owner role."""
    shared = config.attributes.get("connection")
    if shared is not None:
        yield shared
        return
    url = os.environ.get("MIGRATION_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("MIGRATION_DATABASE_URL (or DATABASE_URL) is not set")
    engine = create_engine(
        sqlalchemy_url(url),
        poolclass=pool.NullPool,
        connect_args={"prepare_threshold": None},
    )
    # No `options` startup parameter (PgBouncer refuses it): the role's default, or the session's.
    install_session_defaults(engine, None)
    try:
        with engine.connect() as connection:
            yield connection
            connection.commit()
    finally:
        engine.dispose()
