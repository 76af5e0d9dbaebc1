"""Tenant schema names: generated, never taken from user input, validated and quoted.

A schema name is `tenant_` followed by 32 lowercase hex digits (a UUID without dashes).
Anything else is refused before it comes near SQL, and every use quotes it as an
identifier (`psycopg.sql.Identifier`), so neither a slug nor a crafted name can reach DDL.
"""

from __future__ import annotations

import re

from psycopg import sql

_SCHEMA_RE = re.compile(r"^tenant_[0-9a-f]{32}$")


class InvalidSchemaName(ValueError):
    """A string that is not a schema name this application generated."""


def validate_schema_name(name: object) -> str:
    if not isinstance(name, str) or not _SCHEMA_RE.fullmatch(name):
        raise InvalidSchemaName(f"not a tenant schema name: {name!r}")
    return name


def quoted_schema(name: str) -> str:
    """The schema as a quoted identifier, e.g. for `set_config('search_path', ...)`."""
    return sql.Identifier(validate_schema_name(name)).as_string(None)


def schema_identifier(name: str) -> sql.Identifier:
    """The schema as a psycopg identifier, for composing DDL."""
    return sql.Identifier(validate_schema_name(name))
