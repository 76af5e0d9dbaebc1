"""Temporary copies of a migration tree with extra revisions (benchmarks, tests).

The repository's own tree is never written to: a benchmark or a test copies it, adds its
revision to the copy and points the process at the copy with
`backend.infrastructure.migrations.script_location_override`.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from alembic.script import ScriptDirectory

from backend.infrastructure import migrations

REVISION_TEMPLATE = '''"""{message}

Revision ID: {revision}
Revises: {down_revision}
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = {revision!r}
down_revision = {down_revision!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''


def copy_tree(destination: Path, tree: str = "tenant") -> Path:
    """Copy the repository's tree (env.py, template, versions) to `destination`."""
    source = migrations.PROJECT_ROOT / f"{tree}_migrations"
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def add_revision(
    tree: Path, revision: str, upgrade: str, downgrade: str = "pass", message: str = "benchmark"
) -> str:
    """Append a revision on top of the copy's head; `upgrade`/`downgrade` are function bodies."""
    down_revision = ScriptDirectory(str(tree)).get_current_head()
    (tree / "versions" / f"{revision}.py").write_text(
        REVISION_TEMPLATE.format(
            message=message,
            revision=revision,
            down_revision=down_revision,
            upgrade=textwrap.indent(textwrap.dedent(upgrade).strip(), "    "),
            downgrade=textwrap.indent(textwrap.dedent(downgrade).strip(), "    "),
        )
    )
    return revision
