"""Isolation fuzzing: three workspaces, a worker and two client users in each, doing random
valid (and some hostile) operations through the API. After every step, every actor's lists
are compared with a model of who owns what, and every refused attempt must have changed
nothing: no one ever sees or changes another workspace's or another client's data.

Bounded for `make test` (ISOLATION_EXAMPLES x ISOLATION_STEPS); `make fuzz` raises both."""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
import zipfile
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import insert, select

from backend.infrastructure.sql.identity import memberships, refresh_tokens
from tests.integration.proof.seed import png_with_text
from tests.integration.proof.world import (
    SLOTS,
    Appointment,
    Client,
    Media,
    Model,
    build_world,
    reset_rows,
    slot_times,
)
from tests.owner import owner_engine

pytestmark = pytest.mark.slow


def start_session(runtime, user_id: str, tenant_id) -> uuid.UUID:
    """A live login of the user (one refresh token of a new family), written straight in."""
    family = uuid.uuid4()
    now = datetime.now(UTC)
    with owner_engine().begin() as connection:
        connection.execute(
            insert(refresh_tokens).values(
                id=uuid.uuid4(),
                family_id=family,
                user_id=uuid.UUID(user_id),
                tenant_id=tenant_id,
                token_hash=os.urandom(32),
                issued_at=now,
                expires_at=now + timedelta(days=1),
                user_agent="isolation",
            )
        )
    return family


def session_alive(runtime, family: uuid.UUID) -> bool:
    with owner_engine().connect() as connection:
        revoked = connection.execute(
            select(refresh_tokens.c.revoked_at).where(refresh_tokens.c.family_id == family)
        ).scalar_one()
    return revoked is None


API = "/api/v1"
KINDS = ("clients", "appointments", "media")
text = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=12).map(str.strip).filter(bool)


def budget(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class IsolationMachine(RuleBasedStateMachine):
    world: list = []
    http = None
    runtime = None
    steps_run = 0  # operations tried (each rule's request)
    checks_run = 0  # lists compared with the model
    actions: Counter = Counter()  # requests of the rules, by method and status

    # -- set-up --------------------------------------------------------------------------

    @initialize()
    def reset(self):
        self.model = Model()
        for workspace in self.world:
            reset_rows(self.runtime, workspace.tenant, list(workspace.people))
            for person in workspace.people:
                self.model.clients.append(Client(person.client_id, workspace.index, "Person", linked=True))

    def call(self, method: str, path: str, headers: dict, **kwargs):
        response = getattr(self.http, method)(f"{API}{path}", headers=headers, **kwargs)
        type(self).actions[f"{method.upper()} {response.status_code}"] += 1
        return response

    def pick(self, data, items: list, label: str):
        return data.draw(st.sampled_from(items), label=label)

    # -- workers -------------------------------------------------------------------------

    @rule(tenant=st.integers(0, 2), name=text)
    def worker_adds_client(self, tenant, name):
        response = self.call("post", "/clients", self.world[tenant].worker, json={"name": name})
        assert response.status_code == 201, response.json
        self.model.clients.append(Client(response.json["id"], tenant, name))

    @rule(data=st.data(), name=text)
    def worker_renames_client(self, data, name):
        client = self.pick(data, self.model.clients, "client")
        worker = self.world[client.tenant].worker
        response = self.call("patch", f"/clients/{client.id}", worker, json={"name": name})
        assert response.status_code == 200, response.json
        client.name = name

    @precondition(lambda self: any(not c.linked for c in self.model.clients))
    @rule(data=st.data())
    def worker_deletes_client(self, data):
        client = self.pick(data, [c for c in self.model.clients if not c.linked], "client")
        worker = self.world[client.tenant].worker
        assert self.call("delete", f"/clients/{client.id}", worker).status_code == 204
        self.model.remove_client(client)

    @rule(data=st.data(), slot=st.integers(0, SLOTS - 1), notes=text)
    def worker_books(self, data, slot, notes):
        client = self.pick(data, self.model.clients, "client")
        tenant = client.tenant
        starts, ends = slot_times(slot)
        body = {"client_id": client.id, "starts_at": starts, "ends_at": ends, "shared_notes": notes}
        response = self.call("post", "/appointments", self.world[tenant].worker, json=body)
        if self.model.slot_taken(tenant, slot):
            assert response.status_code == 409 and response.json["detail"] == "appointment_overlap"
            return
        assert response.status_code == 201, response.json
        self.model.appointments.append(Appointment(response.json["id"], tenant, client.id, slot, notes))

    @precondition(lambda self: self.model.appointments)
    @rule(data=st.data(), notes=text)
    def worker_changes_appointment(self, data, notes):
        appointment = self.pick(data, self.model.appointments, "appointment")
        worker = self.world[appointment.tenant].worker
        response = self.call("patch", f"/appointments/{appointment.id}", worker, json={"shared_notes": notes})
        assert response.status_code == 200, response.json
        appointment.shared_notes = notes

    @precondition(lambda self: self.model.appointments)
    @rule(data=st.data())
    def worker_deletes_appointment(self, data):
        appointment = self.pick(data, self.model.appointments, "appointment")
        worker = self.world[appointment.tenant].worker
        response = self.call("delete", f"/appointments/{appointment.id}", worker)
        assert response.status_code == 204
        self.model.remove("appointments", appointment)

    @rule(data=st.data())
    def worker_uploads(self, data):
        client = self.pick(data, self.model.clients, "client")
        response = self.upload(self.world[client.tenant].worker, client_id=client.id)
        assert response.status_code == 201, response.json
        self.model.media.append(Media(response.json["id"], client.tenant, client.id, "worker"))

    @precondition(lambda self: self.model.media)
    @rule(data=st.data())
    def worker_deletes_media(self, data):
        item = self.pick(data, self.model.media, "media")
        assert self.call("delete", f"/media/{item.id}", self.world[item.tenant].worker).status_code == 204
        self.model.remove("media", item)

    # -- client users --------------------------------------------------------------------

    @precondition(lambda self: self.model.appointments)
    @rule(who=st.integers(0, 1), data=st.data())
    def client_cancels(self, who, data):
        """Their own: cancelled. Another client's of the same workspace: 404, unchanged."""
        appointment = self.pick(data, self.model.appointments, "appointment")
        person = self.world[appointment.tenant].people[who]
        response = self.call("post", f"/appointments/{appointment.id}/cancel", person.headers)
        if appointment.client_id != person.client_id:
            assert response.status_code == 404 and response.json == {"detail": "not_found"}
            return
        assert response.status_code == 200, response.json
        assert "notes" not in response.json and response.json["status"] == "cancelled"
        appointment.status = "cancelled"

    @rule(tenant=st.integers(0, 2), who=st.integers(0, 1))
    def client_uploads(self, tenant, who):
        person = self.world[tenant].people[who]
        response = self.upload(person.headers, client_id=str(person.client_id))
        assert response.status_code == 201, response.json
        assert response.json["client_id"] == person.client_id
        self.model.media.append(Media(response.json["id"], tenant, person.client_id, person.user_id))

    @precondition(lambda self: self.model.media)
    @rule(who=st.integers(0, 1), data=st.data())
    def client_deletes_media(self, who, data):
        """Only a file they uploaded; one the worker gave them: 403; another client's: 404."""
        item = self.pick(data, self.model.media, "media")
        person = self.world[item.tenant].people[who]
        response = self.call("delete", f"/media/{item.id}", person.headers)
        if item.client_id != person.client_id:
            assert response.status_code == 404
        elif item.uploaded_by != person.user_id:
            assert response.status_code == 403 and response.json["detail"] == "forbidden"
        else:
            assert response.status_code == 204
            self.model.remove("media", item)

    @rule(tenant=st.integers(0, 2), who=st.integers(0, 1))
    def client_downloads_their_data(self, tenant, who):
        """Their own data download holds exactly their appointments (with the shared notes)
        and their live files, as the model has them: nothing of the other client of the
        workspace, nothing of another workspace."""
        person = self.world[tenant].people[who]
        response = self.http.get(f"{API}/me/data", headers=person.headers, buffered=True)
        type(self).actions[f"DOWNLOAD {response.status_code}"] += 1
        assert response.status_code == 200, response.get_json(silent=True)
        archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
        appointments = {
            row["id"]: (row["status"], row["shared_notes"])
            for row in csv.DictReader(io.StringIO(archive.read("appointments.csv").decode(), newline=""))
        }
        own = [a for a in self.model.of("appointments", tenant) if a.client_id == person.client_id]
        assert appointments == {a.id: (a.status, a.shared_notes or "") for a in own}
        media = {row["id"] for row in csv.DictReader(io.StringIO(archive.read("media.csv").decode()))}
        expected = {m.id for m in self.model.of("media", tenant) if m.client_id == person.client_id}
        assert media == expected
        files = {name.split("/")[1] for name in archive.namelist() if name.startswith("media/")}
        assert files == expected
        assert json.loads(archive.read("profile.json"))["client_record"]["id"] == person.client_id
        type(self).checks_run += 1

    @rule(tenant=st.integers(0, 2))
    def worker_without_a_factor_cannot_require_one(self, tenant):
        """Refused (their own factor is off), and nothing changes for anyone: the invariant
        below still lets every worker list their workspace."""
        workspace = self.world[tenant]
        body = {"mfa_required_for_workers": True}
        response = self.call("patch", "/tenant/settings", workspace.worker, json=body)
        assert response.status_code == 409 and response.json["detail"] == "mfa_not_enabled"

    # -- reads by id and hostile attempts -----------------------------------------------

    def targets(self, kind: str) -> list[tuple[int, str, bool]]:
        """(workspace, id, live) of every object of `kind` ever made, in creation order."""
        live = [(item.tenant, item.id, True) for item in getattr(self.model, kind)]
        return live + [
            (tenant, object_id, False) for gone, tenant, object_id in self.model.gone if gone == kind
        ]

    def actor(self, data, tenant: int):
        role = data.draw(st.sampled_from(("worker", 0, 1)), label="actor")
        workspace = self.world[tenant]
        return role, workspace.worker if role == "worker" else workspace.people[role]

    @precondition(lambda self: self.model.clients)
    @rule(data=st.data(), kind=st.sampled_from(KINDS))
    def someone_reads_one(self, data, kind):
        """A read by id: the worker of its workspace sees it as the model has it; a client
        user sees it when it is theirs, else 404 (403 on the client book, a worker's route)."""
        items = getattr(self.model, kind)
        if not items:
            return
        item = self.pick(data, items, kind)
        role, who = self.actor(data, item.tenant)
        headers = who if role == "worker" else who.headers
        response = self.call("get", f"/{kind}/{item.id}", headers)
        if role == "worker" or (kind != "clients" and item.client_id == who.client_id):
            assert response.status_code == 200, response.json
            assert response.json["id"] == item.id
            if kind == "media":
                content = self.call("get", f"/media/{item.id}/content", headers)
                assert content.status_code == 200 and b"isolation" in content.data
            if role != "worker":
                assert "notes" not in response.json
        else:
            assert response.status_code == (403 if kind == "clients" else 404), response.json

    @rule(data=st.data(), kind=st.sampled_from(KINDS), method=st.sampled_from(("get", "patch", "delete")))
    def worker_reaches_into_another_workspace(self, data, kind, method):
        """Another workspace's object, live or deleted, or a deleted one of their own: 404
        whatever the method, and nothing changes (the invariant compares everything)."""
        targets = self.targets(kind)
        if not targets:
            return
        owner, object_id, live = self.pick(data, targets, "target")
        actor_tenant = data.draw(
            st.sampled_from([t for t in range(3) if t != owner or not live]), label="actor"
        )
        response = self.attempt(method, kind, object_id, self.world[actor_tenant].worker)
        assert response.status_code == 404 and response.json == {"detail": "not_found"}

    @rule(data=st.data(), kind=st.sampled_from(KINDS), method=st.sampled_from(("get", "patch", "delete")))
    def client_reaches_past_their_own(self, data, kind, method):
        """A client user names any object that is not theirs (another workspace's, another
        client's, a deleted one): 404; 403 only on a worker's route, whatever the id."""
        targets = self.targets(kind)
        if not targets:
            return
        owner, object_id, live = self.pick(data, targets, "target")
        person = self.world[data.draw(st.integers(0, 2), label="tenant")].people[data.draw(st.integers(0, 1))]
        if live and kind != "clients" and person.tenant == owner and self.owned_by(kind, object_id, person):
            return  # their own: the client rules cover it
        response = self.attempt(method, kind, object_id, person.headers)
        worker_route = kind == "clients" or (kind == "appointments" and method in ("patch", "delete"))
        assert response.status_code == (403 if worker_route else 404), (kind, method, response.json)

    @rule(data=st.data())
    def someone_ends_another_users_session(self, data):
        """A session (login) of one user, ended by anyone else (another workspace's worker or
        client, the same workspace's worker or other client): 404, not listed, still alive."""
        actors = [(w.index, w.worker, self.user_of(w)) for w in self.world] + [
            (p.tenant, p.headers, p.user_id) for w in self.world for p in w.people
        ]
        victim = self.pick(data, actors, "victim")
        attacker = self.pick(data, [a for a in actors if a[2] != victim[2]], "attacker")
        family = start_session(self.runtime, victim[2], self.world[victim[0]].tenant.id)
        response = self.call("delete", f"/me/sessions/{family}", attacker[1])
        assert response.status_code == 404 and response.json["detail"] == "not_found", response.json
        listed = self.call("get", "/me/sessions", attacker[1])
        assert listed.status_code == 200 and str(family) not in {i["id"] for i in listed.json["items"]}
        assert session_alive(self.runtime, family)

    def user_of(self, workspace) -> str:
        with owner_engine().connect() as connection:
            return str(
                connection.execute(
                    select(memberships.c.user_id).where(
                        memberships.c.tenant_id == workspace.tenant.id, memberships.c.role == "worker"
                    )
                ).scalar_one()
            )

    def attempt(self, method: str, kind: str, object_id: str, headers: dict):
        if method == "patch" and kind == "media":
            method = "get"  # media have no PATCH
        if method != "patch":
            return self.call(method, f"/{kind}/{object_id}", headers)
        body = {"name": "stolen"} if kind == "clients" else {"shared_notes": "stolen"}
        return self.call("patch", f"/{kind}/{object_id}", headers, json=body)

    def owned_by(self, kind: str, object_id: str, person) -> bool:
        return any(i.id == object_id and i.client_id == person.client_id for i in getattr(self.model, kind))

    # -- what everyone sees, after every step --------------------------------------------

    @invariant()
    def everyone_sees_exactly_their_own(self):
        if not hasattr(self, "model"):
            return
        type(self).steps_run += 1
        for workspace in self.world:
            index = workspace.index
            self.expect_list(
                workspace.worker,
                "/clients",
                {c.id: c.name for c in self.model.of("clients", index)},
                lambda row: row["name"],
            )
            self.expect_list(
                workspace.worker,
                "/appointments",
                {a.id: (a.client_id, a.status, a.shared_notes) for a in self.model.of("appointments", index)},
                lambda row: (row["client_id"], row["status"], row["shared_notes"]),
            )
            self.expect_list(
                workspace.worker,
                "/media",
                {m.id: m.client_id for m in self.model.of("media", index)},
                lambda row: row["client_id"],
            )
            for person in workspace.people:
                own = [a for a in self.model.of("appointments", index) if a.client_id == person.client_id]
                rows = self.expect_list(
                    person.headers,
                    "/appointments",
                    {a.id: (a.status, a.shared_notes) for a in own},
                    lambda row: (row["status"], row["shared_notes"]),
                )
                assert all("notes" not in row and "created_at" not in row for row in rows)
                media = [m for m in self.model.of("media", index) if m.client_id == person.client_id]
                self.expect_list(
                    person.headers, "/media", {m.id: m.client_id for m in media}, lambda row: row["client_id"]
                )

    def expect_list(self, headers: dict, path: str, expected: dict, project) -> list:
        response = self.http.get(f"{API}{path}?page_size=100", headers=headers)
        assert response.status_code == 200, (path, response.json)
        seen = {row["id"]: project(row) for row in response.json}
        assert seen == expected, (path, seen, expected)
        type(self).checks_run += 1
        return response.json

    def upload(self, headers: dict, **form):
        body = {"file": (io.BytesIO(png_with_text("isolation")), "photo.png"), **form}
        response = self.http.post(
            f"{API}/media", data=body, headers=headers, content_type="multipart/form-data"
        )
        type(self).actions[f"UPLOAD {response.status_code}"] += 1
        return response


@pytest.fixture()
def isolation_budget() -> tuple[int, int]:
    """(examples, steps per example): bounded for `make test`, raised by `make fuzz`; the
    Citus suite runs the same test with a smaller budget of its own (tests/citus/suites/)."""
    return budget("ISOLATION_EXAMPLES", 15), budget("ISOLATION_STEPS", 12)


def test_no_one_ever_sees_or_changes_another_tenants_or_clients_data(app, runtime, isolation_budget):
    examples, steps = isolation_budget
    IsolationMachine.world = build_world(runtime)
    IsolationMachine.http = app.test_client()
    IsolationMachine.runtime = runtime
    IsolationMachine.steps_run = IsolationMachine.checks_run = 0
    IsolationMachine.actions = Counter()
    run_state_machine_as_test(
        IsolationMachine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        ),
    )
    print(
        f"\nisolation fuzz: {IsolationMachine.steps_run} steps, "
        f"{IsolationMachine.checks_run} list comparisons with the model; operations "
        + ", ".join(f"{key}: {count}" for key, count in sorted(IsolationMachine.actions.items()))
    )
    assert IsolationMachine.checks_run > 0
