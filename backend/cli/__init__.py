"""Operator commands (`flask --app backend tenants ...`, `scripts/tenants.py ...`).

Each module attaches its commands to the one `tenants` group; importing this package
registers them all.
"""

from backend.cli import (
    identity,  # noqa: F401  (registers verify-worker)
    lifecycle,  # noqa: F401  (delete, purge, export, restore)
    placement,  # noqa: F401  (move, rebalance)
)
from backend.cli.spares import spares
from backend.cli.tenants import tenants_cli

tenants_cli.add_command(spares)

__all__ = ["tenants_cli"]
