"""Creating a tenant schema: the one builder (the tenant tree's SQL from base to head, rendered
by Alembic's offline mode, step_scripts.py) builds exactly what the migration chain builds,
for today's tree and for a tree with kinds of objects it does not have yet; a tree that
cannot be rendered is created by the chain."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text

from backend.core.tenancy import InvalidSchemaName
from backend.domain.errors import Conflict
from backend.infrastructure import migrations, step_scripts
from backend.infrastructure.sql.identity import SqlMembershipRepository, users
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.tenants import tenants
from tests.conftest import unique_slug
from tests.integration.lifecycle.catalog import snapshot
from tests.integration.lifecycle.conftest import add_revision
from tests.owner import owner_engine


def new_schema() -> str:
    return f"tenant_{uuid.uuid4().hex}"


def build_both(runtime) -> tuple[dict, dict]:
    """One schema by the chain, one by the fast path; their catalog snapshots."""
    chain, fast = new_schema(), new_schema()
    with owner_engine().connect() as connection:
        with connection.begin():
            manager = SqlSchemaManager(connection, runtime.runtime_role, fast_provisioning=False)
            assert manager.create(chain) == migrations.head_revision("tenant")
        with connection.begin():
            manager = SqlSchemaManager(connection, runtime.runtime_role)
            assert step_scripts.step_script(None, migrations.head_revision("tenant")) is not None
            assert manager.create(fast) == migrations.head_revision("tenant")
        try:
            with connection.begin():
                return snapshot(connection, chain), snapshot(connection, fast)
        finally:
            with connection.begin():
                for schema in (chain, fast):
                    SqlSchemaManager(connection, None).drop(schema)


def test_fast_path_builds_the_same_schema_as_the_chain(runtime):
    by_chain, by_script = build_both(runtime)
    assert by_script == by_chain
    # Not vacuous: the snapshot sees the tables, their privileges and the version row.
    relations = {row[0] for row in by_chain["relations"]}
    assert {"alembic_version", "clients"} <= relations
    # Privileges go to the tenant's own role, named like its schema (defense in depth).
    assert any("<schema>=arwd" in (row[6] or "") for row in by_chain["relations"])
    assert dict(by_chain["rows"])["alembic_version"] == [
        f'{{"version_num": "{migrations.head_revision("tenant")}"}}'
    ]


KITCHEN_SINK = """
op.execute("CREATE TYPE mood AS ENUM ('calm', 'busy')")
op.create_table(
    "probe",
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("code", sa.Text, nullable=False, server_default="x"),
    sa.Column("client_id", sa.Uuid, sa.ForeignKey("clients.id", ondelete="CASCADE")),
    sa.Column("during", sa.dialects.postgresql.TSTZRANGE, nullable=False),
    sa.Column("price", sa.Numeric(10, 2), sa.CheckConstraint("price >= 0", name="ck_probe_price")),
    sa.Column("note", sa.Text, sa.Computed("upper(code)")),
)
op.execute("ALTER TABLE probe ADD COLUMN mood mood DEFAULT 'calm'")
op.execute("ALTER TABLE probe ADD CONSTRAINT ex_probe_during EXCLUDE USING gist (during WITH &&)")
op.create_index("ix_probe_code", "probe", ["code"], postgresql_where=sa.text("code <> ''"))
op.execute("CREATE SEQUENCE invoice_numbers START 1000 INCREMENT 10")
op.execute("ALTER TABLE clients ADD COLUMN legacy text")
op.execute("ALTER TABLE clients DROP COLUMN legacy")
# The body's lines start at column 0 (pg_dump keeps them verbatim) and two of them look
# like the session lines the script generator strips outside dollar quotes.
op.execute(
    "CREATE FUNCTION touch_probe() RETURNS trigger LANGUAGE plpgsql AS $body$\\n"
    "BEGIN\\n"
    "-- a comment line\\n"
    "SET work_mem = '4MB';\\n"
    "NEW.code := lower(NEW.code);\\n"
    "RETURN NEW;\\n"
    "END\\n"
    "$body$"
)
op.execute("CREATE TRIGGER probe_touch BEFORE UPDATE ON probe FOR EACH ROW EXECUTE FUNCTION touch_probe()")
op.execute("CREATE VIEW probe_codes AS SELECT id, code FROM probe WHERE code <> ''")
op.execute("COMMENT ON TABLE probe IS 'what a tenant revision may contain'")
op.execute("COMMENT ON COLUMN probe.code IS 'short code, 50% of the time lower case'")
op.execute("INSERT INTO probe (code, during) VALUES ('seed', '[2026-01-01 09:00+00,2026-01-01 10:00+00)')")
op.execute("SELECT setval('invoice_numbers', 1070)")
"""


def test_equivalence_holds_for_objects_the_tree_does_not_have_yet(runtime, tenant_tree):
    """Enums, identity, generated columns, exclusion constraints, partial indexes,
    sequences, dropped columns, functions with dollar-quoted bodies, triggers, views,
    comments and seed rows all come through the script as the chain makes them."""
    add_revision(tenant_tree, "x_kitchen_sink", KITCHEN_SINK, "pass")
    with migrations.script_location_override("tenant", tenant_tree):
        by_chain, by_script = build_both(runtime)
    assert by_script == by_chain
    assert {"probe", "probe_codes", "invoice_numbers"} <= {row[0] for row in by_chain["relations"]}
    assert len(dict(by_chain["rows"])["probe"]) == 1
    assert any(row[0] == "touch_probe" for row in by_chain["functions"])


def test_only_a_valid_schema_name_is_created(runtime):
    with owner_engine().connect() as connection:
        manager = SqlSchemaManager(connection, runtime.runtime_role)
        for name in ('tenant_x"; DROP SCHEMA shared CASCADE; --', "shared", "tenant_ABC"):
            with pytest.raises(InvalidSchemaName):
                manager.create(name)
        connection.rollback()


def test_a_tree_that_cannot_be_rendered_is_created_by_the_chain(make_tenant, runtime, tenant_tree, retire):
    add_revision(tenant_tree, "x_online", "op.execute('COMMENT ON TABLE clients IS NULL')", "pass")
    path = tenant_tree / "versions" / "x_online.py"
    path.write_text(path.read_text() + "\nonline_only = True\n")
    with migrations.script_location_override("tenant", tenant_tree):
        assert step_scripts.step_script(None, "x_online") is None
        tenant = make_tenant()
        retire([tenant])
    assert tenant.schema_version == "x_online"
    with owner_engine().connect() as connection:
        assert migrations.tenant_revision(connection, tenant.schema_name) == "x_online"


def tenant_schema_count(runtime) -> int:
    with owner_engine().connect() as connection:
        return connection.execute(
            text("SELECT count(*) FROM pg_namespace WHERE nspname ~ '^tenant_'")
        ).scalar_one()


class InjectedFailure(RuntimeError):
    pass


def fail_after(monkeypatch, cls, name: str) -> None:
    original = getattr(cls, name)

    def failing(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise InjectedFailure(name)

    monkeypatch.setattr(cls, name, failing)


@pytest.mark.parametrize(
    ("cls", "step"),
    [(SqlSchemaManager, "create"), (SqlMembershipRepository, "add")],
    ids=["after-schema", "after-membership"],
)
def test_provisioning_retried_after_a_failure_succeeds_and_leaves_nothing_half_made(
    make_tenant, runtime, monkeypatch, cls, step
):
    slug, email = unique_slug(), f"owner-{uuid.uuid4().hex[:10]}@example.com"
    schemas_before = tenant_schema_count(runtime)
    with monkeypatch.context() as patch:
        fail_after(patch, cls, step)
        with pytest.raises(InjectedFailure):
            make_tenant(slug, owner_email=email)

    with owner_engine().connect() as connection:
        assert connection.execute(select(func.count()).where(tenants.c.slug == slug)).scalar_one() == 0
        assert (
            connection.execute(select(func.count()).where(func.lower(users.c.email) == email)).scalar_one()
            == 0
        )
    assert tenant_schema_count(runtime) == schemas_before

    tenant = make_tenant(slug, owner_email=email)
    assert tenant.schema_version == migrations.head_revision("tenant")
    assert tenant_schema_count(runtime) == schemas_before + 1
    with pytest.raises(Conflict) as taken:  # the registry's constraint; the new schema rolls back
        make_tenant(slug)
    assert taken.value.code == "slug_taken"
    assert tenant_schema_count(runtime) == schemas_before + 1
