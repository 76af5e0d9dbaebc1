"""What the api layer takes from the composition root (backend/app.py)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g
from sqlalchemy.engine import Engine

from backend.core.config import Settings
from backend.core.tokens import TokenService
from backend.infrastructure.jobs import ProcrastinateJobQueue
from backend.infrastructure.spares import BackgroundRefill
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork, SqlTenantUnitOfWork


@dataclass
class Runtime:
    settings: Settings
    engine: Engine  # runtime role: DML only, serves every request
    owner_engine: Engine  # owner role: provisioning (signup), deletion purge
    runtime_role: str | None  # granted access to what the owner role creates
    tokens: TokenService
    jobs: ProcrastinateJobQueue  # enqueues background jobs as the runtime role (infrastructure/jobs.py)
    spares: BackgroundRefill | None = None  # None: no pool of spare schemas (SPARE_SCHEMAS=0)


def runtime() -> Runtime:
    return current_app.extensions["saas"]


def registry_uow() -> SqlRegistryUnitOfWork:
    return SqlRegistryUnitOfWork(runtime().engine)


def tenant_uow() -> SqlTenantUnitOfWork:
    """A unit of work scoped to the caller's tenant (set by authentication)."""
    return SqlTenantUnitOfWork(runtime().engine, g.access.tenant_schema)
