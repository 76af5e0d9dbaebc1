"""Helpers to assert what PostgreSQL itself refuses."""

from __future__ import annotations

import psycopg.errors
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError


def refused(connection: Connection, statement: str, **params) -> None:
    """Run `statement` in a savepoint and assert PostgreSQL refused it for lack of privilege
    (SQLSTATE 42501); the surrounding transaction stays usable."""
    savepoint = connection.begin_nested()
    with pytest.raises(DBAPIError) as info:
        connection.execute(text(statement), params)
    savepoint.rollback()
    assert isinstance(info.value.orig, psycopg.errors.InsufficientPrivilege), info.value.orig


def scalar(connection: Connection, statement: str, **params):
    return connection.execute(text(statement), params).scalar()


def column(connection: Connection, statement: str, **params) -> list:
    return list(connection.execute(text(statement), params).scalars())
