"""The owner role, for the processes that hold it: the worker and the one-shot operator commands.

The API never does (docs/architecture.md, "Processes and roles"): the app gunicorn serves is
built by `backend.create_api()`, which keeps neither the owner URL nor an owner engine; the
app the `flask --app backend ...` commands get (`backend.create_app()`) carries an
`OwnerAccess` besides the Runtime, and its engine is made on first use, so a command that
does not need the owner role never connects as it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import click
from flask import Flask, current_app
from sqlalchemy.engine import Engine

from backend.core.config import Settings
from backend.core.db import create_db_engine

EXTENSION = "saas.owner"


@dataclass
class OwnerAccess:
    url: str
    runtime_role: str | None  # granted access to what the owner role creates (None: one role)
    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = create_db_engine(
                    self.url, self.settings, application_name="saas-owner", pool_size=2
                )
            return self._engine

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


def owner_access(app: Flask | None = None) -> OwnerAccess:
    """The owner side of this process; a clear refusal in the API's serving app."""
    app = app or current_app
    access = app.extensions.get(EXTENSION)
    if access is None:
        raise click.ClickException("this process holds no owner URL (the API's serving app)")
    return access


def owner_engine(app: Flask | None = None) -> Engine:
    return owner_access(app).engine
