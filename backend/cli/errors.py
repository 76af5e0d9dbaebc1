"""One-line errors for every operator command (docs/runbooks/ promise them).

`OperatorGroup.invoke` runs each `tenants` subcommand and turns what escapes it into a
`click.ClickException`: click prints `Error: <one line>` on stderr and exits 1. Known failures
(database unreachable, configuration, domain rules, pg_dump/pg_restore, archives, files) say
what failed; anything else says its type and first line, plus how to see the traceback
(LOG_LEVEL=DEBUG re-raises it untouched).
"""

from __future__ import annotations

import os

import click
import psycopg
from sqlalchemy.exc import DBAPIError

from backend.core.config import ConfigError
from backend.domain.errors import DomainError
from backend.infrastructure.archives import ArchiveError
from backend.infrastructure.pg_tools import PgToolError
from backend.infrastructure.sql.placement import PlacementError

MAX_LINE = 500
DEBUG_HINT = "rerun with LOG_LEVEL=DEBUG for the traceback"


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines() or [""])[0][:MAX_LINE] or type(error).__name__


def domain_line(error: DomainError) -> str:
    details = getattr(error, "errors", None) or error.message or ""
    return f"{error.code}: {details}" if details else error.code


def database_line(error: Exception) -> str:
    """The driver's own first line, without SQLAlchemy's `(psycopg.OperationalError)` prefix or
    the SQL text. No SQLSTATE means the server never answered: it is unreachable."""
    driver = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    sqlstate = getattr(driver, "sqlstate", None)
    if sqlstate is None and isinstance(driver, psycopg.OperationalError):
        return f"database unreachable: {first_line(driver)}"
    code = f" ({sqlstate})" if sqlstate else ""
    return f"database error{code}: {first_line(driver)}"


def one_line(error: Exception) -> str | None:
    """The operator's one line for a known failure; None for an unexpected one."""
    if isinstance(error, DomainError):
        return domain_line(error)
    if isinstance(error, (DBAPIError, psycopg.Error)):  # SQLAlchemy's wrapper or the driver's own
        return database_line(error)
    if isinstance(error, ConfigError):
        return f"configuration: {first_line(error)}"
    if isinstance(error, (PgToolError, ArchiveError, PlacementError, OSError)):
        return first_line(error)
    return None


class OperatorGroup(click.Group):
    """A click group whose subcommands fail with one line, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            if os.environ.get("LOG_LEVEL", "").upper() == "DEBUG":
                raise
            line = one_line(error)
            if line is None:
                line = f"unexpected {type(error).__name__}: {first_line(error)} ({DEBUG_HINT})"
            raise click.ClickException(line) from error
