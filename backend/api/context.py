"""What the api layer takes from the composition root (backend/app.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app, g
from sqlalchemy.engine import Engine

from backend.core.config import Settings
from backend.core.tokens import TokenService
from backend.infrastructure.jobs import ProcrastinateJobQueue
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork, SqlTenantUnitOfWork

if TYPE_CHECKING:  # the cache's module reaches this one through api.metrics
    from backend.api.access_cache import AccessCache


@dataclass
class Runtime:
    settings: Settings
    engine: Engine  # runtime role: DML only, serves every request; the API's only engine
    runtime_role: str | None  # its name (None: one role for both URLs, development only)
    tokens: TokenService
    jobs: ProcrastinateJobQueue  # enqueues background jobs as the runtime role (infrastructure/jobs.py)
    access_cache: AccessCache  # the registry's answers to authentication, for this app's database


def runtime() -> Runtime:
    return current_app.extensions["saas"]


def registry_uow() -> SqlRegistryUnitOfWork:
    return SqlRegistryUnitOfWork(runtime().engine)


def tenant_uow() -> SqlTenantUnitOfWork:
    """A unit of work scoped to the caller's tenant (set by authentication)."""
    return SqlTenantUnitOfWork(runtime().engine, g.access.tenant_schema)
