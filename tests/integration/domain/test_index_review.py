"""docs/index-review.md, checked: every listed request runs through the app against a seeded
tenant, and every statement it sends to a tenant table is EXPLAINed with sequential scans
disabled. A sequential scan, a filter no index condition serves, an unused listed index, or a
reviewed route missing from the page fails the test (see the page for the rules)."""

from __future__ import annotations

import io
import random
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.engine import Engine

from backend.core.config import PROJECT_ROOT
from backend.core.db import set_tenant_search_path, tenant_scope
from backend.infrastructure.sql.appointments import appointments
from backend.infrastructure.sql.clients import clients
from backend.infrastructure.sql.media import media
from backend.infrastructure.sql.unit_of_work import SqlTenantUnitOfWork
from backend.infrastructure.storage import LocalMediaStorage
from backend.service.media import purge_deleted_media
from tests.integration.domain.conftest import at, png_bytes
from tests.owner import owner_engine

REVIEW = PROJECT_ROOT / "docs" / "index-review.md"
REVIEWED_BLUEPRINTS = {"clients", "appointments", "media"}
TENANT_TABLES = ("clients", "appointments", "media")
LOOKUP = re.compile(r"^\s*(SELECT|UPDATE|DELETE)\b", re.IGNORECASE)
ON_TENANT_TABLE = re.compile(r"\b(FROM|UPDATE|JOIN)\s+(clients|appointments|media)\b", re.IGNORECASE)
CLIENTS, APPOINTMENTS, MEDIA = 2000, 3000, 1500


@dataclass(frozen=True)
class Row:
    request: str
    role: str
    indexes: tuple[tuple[str, ...], ...]  # each group: one of these must appear in the plans
    constraints: tuple[str, ...]  # enforced on write: must exist


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _section(name: str) -> list[list[str]]:
    body = REVIEW.read_text().split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in body.splitlines() if line.startswith("|") and not line.startswith("|---")]
    return [_cells(line) for line in lines[1:]]  # without the header


def request_rows() -> list[Row]:
    rows = []
    for request, role, _, index_cell in _section("Requests"):
        indexes, constraints = [], []
        for part in index_cell.split(","):
            names = tuple(re.findall(r"`([a-z0-9_]+)`", part))
            (constraints.extend if "*(constraint)*" in part else indexes.append)(names)
        rows.append(Row(request.strip("`"), role, tuple(indexes), tuple(constraints)))
    return rows


def fk_rows() -> list[tuple[str, str]]:
    return [
        (statement.strip("`"), index.strip("`")) for _, statement, index in _section("Foreign-key actions")
    ]


def test_the_review_page_lists_requests():
    rows = request_rows()
    assert len(rows) >= 30 and len(fk_rows()) == 3
    assert all(row.indexes or row.constraints for row in rows)
    assert all(all(group) for row in rows for group in row.indexes)


# --- plan inspection -------------------------------------------------------------------


def plan_problems(
    node: dict, under_sort: bool = False, under_limit: bool = False
) -> tuple[set[str], list[str]]:
    """(index names used, problems) of a JSON plan tree.

    An index scan without an index condition is fine when it reads every row anyway (an
    unfiltered count) or when it delivers the order under a LIMIT and stops early (a top-N
    page); the page's count query, which has the same predicate and no LIMIT, then shows
    whether an index serves the predicate."""
    used, problems = set(), []
    kind = node["Node Type"]
    if "Index Name" in node:
        used.add(node["Index Name"])
    if node.get("Relation Name") in TENANT_TABLES:
        where = f"{kind} on {node['Relation Name']}"
        if kind == "Seq Scan":
            problems.append(f"{where}: sequential scan")
        if kind in ("Index Scan", "Index Only Scan") and "Index Cond" not in node:
            if "Filter" in node and not (under_limit and not under_sort):
                problems.append(f"{where} using {node['Index Name']}: filter without index condition")
            if under_sort:
                problems.append(f"{where} using {node['Index Name']}: whole index read, then sorted")
        if kind == "Bitmap Heap Scan" and "Filter" in node:
            bitmaps = [n for n in _descendants(node) if n["Node Type"] == "Bitmap Index Scan"]
            if any("Index Cond" not in n for n in bitmaps):
                problems.append(f"{where}: filter on a bitmap of a whole index")
    for child in node.get("Plans", []):
        child_used, child_problems = plan_problems(
            child, under_sort or kind in ("Sort", "Incremental Sort"), under_limit or kind == "Limit"
        )
        used |= child_used
        problems += child_problems
    return used, problems


def _descendants(node: dict) -> list[dict]:
    children = node.get("Plans", [])
    return children + [d for child in children for d in _descendants(child)]


def explain(runtime, schema: str, statement: str, parameters) -> dict:
    with runtime.engine.connect() as connection, connection.begin():
        set_tenant_search_path(connection, schema)
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        result = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters or {})
        return result.scalar()[0]["Plan"]


def scoped_read(statement: str) -> str:
    """The read of a message that also scopes (core/db.read_in_tenant_scope), else as sent."""
    parts = statement.split("; ")
    if len(parts) == 5 and parts[1] == "BEGIN" and parts[4] == "COMMIT":
        return parts[3]
    return statement


class Capture:
    """Statements sent to PostgreSQL by any engine while active."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, object]] = []

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements.append((statement, parameters))

    def __enter__(self) -> Capture:
        event.listen(Engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(Engine, "before_cursor_execute", self._record)

    def lookups(self) -> list[tuple[str, object]]:
        # A read sent with the tenant scope in one message (core/db.read_in_tenant_scope):
        # the read is the statement after the scope's.
        statements = [(scoped_read(s), p) for s, p in self.statements]
        return [(s, p) for s, p in statements if LOOKUP.match(s) and ON_TENANT_TABLE.search(s)]


# --- the seeded tenant -----------------------------------------------------------------


def seed(runtime, schema: str) -> None:
    rng = random.Random(4)
    first = ["Ann", "Bob", "Cleo", "Dev", "Eve", "Finn", "Gia", "Hal", "Ivy", "Jon", "Kai", "Lea"]
    last = ["Smith", "Lee", "Okafor", "Novak", "Silva", "Kim", "Haas", "Roy"]
    base = datetime(2031, 1, 1, tzinfo=UTC)
    client_rows = []
    for n in range(CLIENTS):
        name = f"{rng.choice(first)}{n} {rng.choice(last)}"
        client_rows.append(
            {"id": uuid.uuid4(), "name": name, "email": f"{name.split()[0].lower()}@example.com"}
        )
    statuses = ["scheduled"] * 16 + ["completed"] * 3 + ["cancelled"]
    appointment_rows = [
        {
            "id": uuid.uuid4(),
            "client_id": rng.choice(client_rows)["id"],
            "starts_at": base + timedelta(hours=n),
            "ends_at": base + timedelta(hours=n + 1),
            "status": rng.choice(statuses),
        }
        for n in range(APPOINTMENTS)
    ]
    media_rows = []
    for n in range(MEDIA):
        visit = rng.choice(appointment_rows)
        media_rows.append(
            {
                "id": uuid.uuid4(),
                "client_id": visit["client_id"],
                "appointment_id": visit["id"] if n % 3 == 0 else None,
                "filename": f"file{n}.png",
                "content_type": "image/png",
                "size_bytes": 100,
                "sha256": "0" * 64,
                "uploaded_by": uuid.uuid4(),
                "uploaded_by_role": "worker",
                "created_at": base - timedelta(minutes=n),
                "deleted_at": base if n % 5 == 0 else None,
            }
        )
    with tenant_scope(owner_engine(), schema) as connection:
        connection.execute(insert(clients), client_rows)
        connection.execute(insert(appointments), appointment_rows)
        connection.execute(insert(media), media_rows)
    with owner_engine().connect() as connection, connection.begin():
        set_tenant_search_path(connection, schema)
        for table in TENANT_TABLES:
            connection.exec_driver_sql(f"ANALYZE {table}")


@dataclass
class Target:
    client: str
    appointment: str
    media: str
    headers: dict  # the client's own token


class Driver:
    """Creates fresh objects for a row and sends the row's request."""

    def __init__(self, http, tenant, worker: dict, client_token) -> None:
        self.http, self.tenant, self.worker, self.client_token = http, tenant, worker, client_token
        self.slot = 0

    def next_slot(self) -> tuple[str, str]:
        self.slot += 2
        return at(self.slot), at(self.slot + 1)

    def target(self, role: str) -> Target:
        """A client with an upcoming appointment and a file (uploaded by `role`)."""
        client_id, headers = self.client_token(self.tenant, name="Review Target")
        starts_at, ends_at = self.next_slot()
        body = {"client_id": str(client_id), "starts_at": starts_at, "ends_at": ends_at}
        visit = self.http.post("/api/v1/appointments", json=body, headers=self.worker).json["id"]
        upload = {
            "client_id": str(client_id),
            "appointment_id": visit,
            "file": (io.BytesIO(png_bytes()), "a.png"),
        }
        uploader = self.worker if role == "worker" else headers
        item = self.http.post(
            "/api/v1/media", data=upload, headers=uploader, content_type="multipart/form-data"
        )
        return Target(str(client_id), visit, item.json["id"], headers)

    def body(self, method: str, path: str, target: Target, role: str) -> dict:
        if method == "POST" and path == "/api/v1/clients":
            return {"json": {"name": "New Person", "email": f"{uuid.uuid4().hex}@example.com"}}
        if method == "PATCH" and path.startswith("/api/v1/clients/"):
            return {"json": {"notes": "n", "email": f"{uuid.uuid4().hex}@example.com"}}
        if method == "POST" and path == "/api/v1/appointments":
            starts_at, ends_at = self.next_slot()
            return {"json": {"client_id": target.client, "starts_at": starts_at, "ends_at": ends_at}}
        if method == "PATCH" and path.startswith("/api/v1/appointments/"):
            starts_at, ends_at = self.next_slot()
            return {"json": {"starts_at": starts_at, "ends_at": ends_at}}
        if method == "POST" and path == "/api/v1/media":
            form = {"appointment_id": target.appointment, "file": (io.BytesIO(png_bytes()), "b.png")}
            form["client_id"] = target.client  # required of clients too (their own)
            return {"data": form, "content_type": "multipart/form-data"}
        return {}


def resolve(request: str, target: Target) -> tuple[str, str]:
    method, url = request.split(" ", 1)
    url = url.format(client=target.client, appointment=target.appointment, media=target.media)
    return method, url


@pytest.fixture()
def reviewed(app, client, make_tenant, worker_token, client_token, runtime):
    tenant = make_tenant()
    seed(runtime, tenant.schema_name)
    return tenant, Driver(client, tenant, worker_token(tenant), client_token)


def test_every_lookup_path_uses_its_index(reviewed, runtime):
    tenant, driver = reviewed
    failures = []
    for row in request_rows():
        target = driver.target(row.role)
        with Capture() as capture:
            if row.request == "PURGE media":
                purge_deleted_media(
                    tenant_id=tenant.id,
                    older_than=datetime(2000, 1, 1, tzinfo=UTC),
                    uow_factory=lambda: SqlTenantUnitOfWork(runtime.engine, tenant.schema_name),
                    storage=LocalMediaStorage(runtime.settings.media_dir),
                )
            else:
                method, url = resolve(row.request, target)
                headers = driver.worker if row.role == "worker" else target.headers
                path = url.split("?", 1)[0]
                response = driver.http.open(
                    url, method=method, headers=headers, **driver.body(method, path, target, row.role)
                )
                assert response.status_code < 300, (row, response.status_code, response.get_data())
        used, problems = set(), []
        for statement, parameters in capture.lookups():
            plan = explain(runtime, tenant.schema_name, statement, parameters)
            statement_used, statement_problems = plan_problems(plan)
            used |= statement_used
            problems += [f"{p} in: {' '.join(statement.split())[:160]}" for p in statement_problems]
        missing = [" or ".join(group) for group in row.indexes if not used & set(group)]
        if missing:
            problems.append(f"listed index not used: {missing} (used: {sorted(used)})")
        failures += [f"{row.request} [{row.role}]: {problem}" for problem in problems]
    assert not failures, "\n".join(failures)


def test_foreign_key_actions_use_their_index(reviewed, runtime):
    tenant, _ = reviewed
    failures = []
    for statement, index in fk_rows():
        plan = explain(runtime, tenant.schema_name, statement.replace("?", "%(id)s"), {"id": uuid.uuid4()})
        used, problems = plan_problems(plan)
        if index not in used:
            problems.append(f"{index} not used (used: {sorted(used)})")
        failures += [f"{statement}: {problem}" for problem in problems]
    assert not failures, "\n".join(failures)


def test_listed_indexes_and_constraints_exist(make_tenant, runtime):
    tenant = make_tenant()
    with owner_engine().connect() as connection:
        existing = set(
            connection.execute(
                text("SELECT indexname FROM pg_indexes WHERE schemaname = :s"), {"s": tenant.schema_name}
            ).scalars()
        )
    listed = {name for row in request_rows() for group in row.indexes for name in group}
    listed |= {name for row in request_rows() for name in row.constraints}
    listed |= {index for _, index in fk_rows()}
    assert listed - existing == set()


def test_every_reviewed_route_has_a_row(app):
    adapter = app.url_map.bind("localhost")
    placeholder = Target(*(str(uuid.uuid4()) for _ in range(3)), headers={})
    covered = set()
    for row in request_rows():
        if row.request.startswith("PURGE"):
            continue
        method, url = resolve(row.request, placeholder)
        rule, _ = adapter.match(url.split("?", 1)[0], method=method, return_rule=True)
        covered.add((method, rule.rule))
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".", 1)[0] in REVIEWED_BLUEPRINTS
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes, "no reviewed routes found"
    assert routes - covered == set()
