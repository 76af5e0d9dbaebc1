"""Run the two Alembic trees programmatically, on a connection the caller holds.

`alembic.ini` has a `[shared]` and a `[tenant]` section (`alembic -n shared|tenant ...`).
Scripts, provisioning and tests share their connection with Alembic through
`config.attributes["connection"]` (Alembic cookbook: "Sharing a Connection").

A fleet run upgrades thousands of schemas in one process, so the parsed revision files (the
`ScriptDirectory`) are kept per tree instead of being re-read for every tenant as
`alembic.command.upgrade` does; the env.py of the tree still runs for every schema.
`render_upgrade` runs a tree in Alembic's offline mode instead, into a string: the step
scripts of fleet migrations (infrastructure/step_scripts.py) are made from it.
"""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationStep
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from psycopg import sql
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from backend.core.config import PROJECT_ROOT
from backend.core.db import set_tenant_search_path
from backend.core.tenancy import schema_identifier, validate_schema_name

ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
TREES = ("shared", "tenant")

# Where each tree's env.py and versions/ live. Only benchmarks and tests point a tree
# elsewhere (a temporary copy with an extra revision), through `script_location_override`.
_script_locations: dict[str, Path] = {tree: PROJECT_ROOT / f"{tree}_migrations" for tree in TREES}
_override_lock = threading.Lock()


def script_location(tree: str) -> Path:
    if tree not in TREES:
        raise ValueError(f"unknown migration tree {tree!r}")
    return _script_locations[tree]


def use_script_location(tree: str, location: Path) -> None:
    """Point this process at another copy of a tree (a fleet worker following its parent)."""
    with _override_lock:
        script_location(tree)  # validates the tree name
        _script_locations[tree] = Path(location)
    _script_directory.cache_clear()


@contextmanager
def script_location_override(tree: str, location: Path) -> Iterator[None]:
    """Use another copy of a migration tree for the duration of the block (benchmarks, tests)."""
    previous = script_location(tree)
    use_script_location(tree, location)
    try:
        yield
    finally:
        use_script_location(tree, previous)


def alembic_config(tree: str, connection: Connection | None = None, **attributes) -> Config:
    """The tree's full configuration, read from alembic.ini (revision files, templates)."""
    config = Config(str(ALEMBIC_INI), ini_section=tree)
    config.set_main_option("script_location", str(script_location(tree)))
    if connection is not None:
        config.attributes["connection"] = connection
    config.attributes.update(attributes)
    return config


def _run_config(tree: str, connection: Connection, **attributes) -> Config:
    """What env.py reads when it runs on a caller's connection: its attributes. The parsed
    tree comes from the cache, so alembic.ini is not parsed again for every schema."""
    config = Config(ini_section=tree)
    config.attributes.update(connection=connection, **attributes)
    return config


@functools.lru_cache(maxsize=8)
def _script_directory(location: str) -> ScriptDirectory:
    tree = next(t for t in TREES if str(script_location(t)) == location)
    script = ScriptDirectory.from_config(alembic_config(tree))
    script.revision_map.heads  # noqa: B018 - parse every revision file now, once
    return script


def script_directory(tree: str) -> ScriptDirectory:
    return _script_directory(str(script_location(tree)))


def head_revision(tree: str) -> str:
    heads = script_directory(tree).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"{tree} migrations have {len(heads)} heads: {heads}")
    return heads[0]


# Alembic's `op` and `context` are process-global proxies: two migrations running at once in
# threads of one process (a signup falling back to the chain while another provisions) would
# run each other's operations. Fleet runs use processes; within a process, one at a time.
_alembic_lock = threading.RLock()


def _steps_up(script: ScriptDirectory, destination: str, current) -> list[MigrationStep]:
    """What `alembic upgrade` runs from `current` to `destination`, built from public pieces
    (`ScriptDirectory.iterate_revisions`, `MigrationStep.upgrade_from_script`): the same as
    Alembic's private `ScriptDirectory._upgrade_revs`, which `alembic.command.upgrade` uses.
    tests/unit/test_alembic_steps.py fails if the two ever differ."""
    revisions = script.iterate_revisions(destination, current, implicit_base=True)
    return [MigrationStep.upgrade_from_script(script.revision_map, rev) for rev in reversed(list(revisions))]


def _steps_down(script: ScriptDirectory, destination: str, current) -> list[MigrationStep]:
    """The downgrade twin of `_steps_up` (Alembic's `_downgrade_revs`)."""
    revisions = script.iterate_revisions(current, destination, select_for_downgrade=True)
    return [MigrationStep.downgrade_from_script(script.revision_map, rev) for rev in revisions]


def _upgrade(config: Config, tree: str, revision: str) -> None:
    """`alembic.command.upgrade` with the tree's parsed ScriptDirectory."""
    script = script_directory(tree)

    def upgrade(rev, context):
        return _steps_up(script, revision, rev)

    with _alembic_lock, EnvironmentContext(config, script, fn=upgrade, destination_rev=revision):
        script.run_env()


def _downgrade(config: Config, tree: str, revision: str) -> None:
    script = script_directory(tree)

    def downgrade(rev, context):
        return _steps_down(script, revision, rev)

    with _alembic_lock, EnvironmentContext(config, script, fn=downgrade, destination_rev=revision):
        script.run_env()


def render_upgrade(tree: str, from_revision: str | None, to_revision: str) -> str:
    """The SQL of the upgrade `from_revision` (None: base) -> `to_revision`, as
    `alembic upgrade from:to --sql` writes it; the tree's env.py configures offline mode."""
    script = script_directory(tree)
    buffer = io.StringIO()
    config = Config(ini_section=tree, output_buffer=buffer)

    def upgrade(rev, context):
        return _steps_up(script, to_revision, rev)

    with (
        _alembic_lock,
        EnvironmentContext(
            config,
            script,
            fn=upgrade,
            as_sql=True,
            starting_rev=from_revision,
            destination_rev=to_revision,
        ),
    ):
        script.run_env()
    return buffer.getvalue()


def upgrade_steps(tree: str, from_revision: str | None, to_revision: str) -> list:
    """The revision scripts (alembic.script.Script) an upgrade runs, in order."""
    revisions = script_directory(tree).iterate_revisions(to_revision, from_revision, implicit_base=True)
    return list(reversed(list(revisions)))


# Held (transaction-level) while the shared schema is upgraded: two deploys starting at once
# upgrade it one after the other, the second finding nothing to do.
SHARED_MIGRATION_LOCK = int.from_bytes(b"sharedmg", "big", signed=True)


def upgrade_shared(connection: Connection, revision: str = "head") -> None:
    connection.execute(select(func.pg_advisory_xact_lock(SHARED_MIGRATION_LOCK)))
    _upgrade(_run_config("shared", connection), "shared", revision)


def shared_revision(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table_schema": "shared"})
    return context.get_current_revision()


def upgrade_tenant(connection: Connection, schema_name: str, revision: str = "head") -> str | None:
    """Upgrade one tenant schema inside the caller's transaction; return its new revision."""
    validate_schema_name(schema_name)
    _upgrade(_run_config("tenant", connection, tenant_schema=schema_name), "tenant", revision)
    return _version_in_table(connection, schema_name)


def _version_in_table(connection: Connection, schema_name: str) -> str | None:
    # The version table exists: one plain read instead of Alembic's reflection.
    query = sql.SQL("SELECT version_num FROM {}.alembic_version").format(schema_identifier(schema_name))
    return connection.exec_driver_sql(query.as_string(None)).scalar_one_or_none()


def downgrade_tenant(connection: Connection, schema_name: str, revision: str) -> str | None:
    """Downgrade one tenant schema inside the caller's transaction; return its new revision."""
    validate_schema_name(schema_name)
    _downgrade(_run_config("tenant", connection, tenant_schema=schema_name), "tenant", revision)
    return _version_in_table(connection, schema_name)


def is_below(tree: str, revision: str, current: str | None) -> bool:
    """`revision` is a revision of the tree and an ancestor of `current` (not `current` itself):
    a target a downgrade from `current` can reach. Symbolic names (base, head, -1) are not."""
    if current is None or revision in ("base", "heads", "head"):
        return False
    script = script_directory(tree)
    try:
        found = script.get_revision(revision)
        if found is None or found.revision != revision:  # no prefixes: the operator names it
            return False
        below = {r.revision for r in script.iterate_revisions(current, "base")} - {current}
    except (CommandError, RevisionError):
        return False
    return revision in below


def tenant_revision(connection: Connection, schema_name: str) -> str | None:
    set_tenant_search_path(connection, schema_name)
    context = MigrationContext.configure(connection, opts={"version_table_schema": schema_name})
    return context.get_current_revision()
