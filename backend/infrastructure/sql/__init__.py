"""SQL adapters: table definitions and repositories, one module per business area.

Importing this package registers every table on its metadata (Alembic's env.py relies on it).
"""

from backend.infrastructure.sql import (  # noqa: F401
    appointments,
    audit,
    clients,
    identity,
    media,
    scheduled,
    spares,
    tenants,
)
from backend.infrastructure.sql.metadata import shared_metadata, tenant_metadata

__all__ = ["shared_metadata", "tenant_metadata"]
