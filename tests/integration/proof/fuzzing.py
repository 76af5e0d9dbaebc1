"""Schemathesis against the app's own OpenAPI document, over HTTP on loopback.

Schemathesis' engine (what `schemathesis run` drives) runs the coverage, fuzzing and stateful
phases: the stateful phase chains operations through the links it infers from the document
(POST /clients -> GET|PATCH|DELETE /clients/{id}, ...), so requests reach real rows. The app
is served by werkzeug in a thread: the engine's in-process WSGI transport does not accept the
transport options the engine passes it (schemathesis 4.32).

Checks: every standard one, `positive_data_acceptance` included (the document states the request
rules, docs/api-integration.md; what JSON Schema cannot state is below), and ours.
`ensure_resource_availability` was left out once (it reported the 404 of an appointment whose
client a chain had deleted, docs/domain.md); with schemathesis 4.32 and the documented links it
passes and is on.

Strictness beyond the defaults:
- every operation's `default` response is dropped from the document handed to the fuzzer, so
  each status code an operation answers must be documented by that operation;
- `no_foreign_marker` (below) searches every response, headers and body (zip members
  included), for marker strings the caller must not see.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import threading
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import schemathesis
from schemathesis.engine import events, from_schema
from werkzeug.serving import WSGIRequestHandler, make_server

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "use_after_free",
    "positive_data_acceptance",
    "unsupported_method",
    "no_foreign_marker",
    "missing_required_header",
    "ensure_resource_availability",
)
# Rules JSON Schema cannot state, which positive cases must follow (the descriptions say them):
# an appointment ends after it starts, a range's `to` is after its `from`. A PATCH moving one
# bound is checked against the stored other one, which the generator cannot know: it sends both.
PERIODS = {"createAppointment": ("starts_at", "ends_at"), "updateAppointment": ("starts_at", "ends_at")}
RANGES = {"listAppointments": ("from", "to")}
# Refusals of well-formed requests that depend on stored data or on bytes no JSON Schema can
# describe (positive_data_acceptance takes them as answers to valid data, nothing else):
# - scheduleDeletion 422: `confirm_slug` must be the caller's own slug, and the right one would
#   schedule the deletion of the workspace under test;
# - inviteClient 422: the client record has no email address to invite (a body-less request);
# - uploadMedia 415: the bytes must really be one of the allowed types (recognised from the
#   bytes; the document names the types in the part's `encoding`).
DATA_DEPENDENT = {"scheduleDeletion": "422", "inviteClient": "422", "uploadMedia": "415"}
POSITIVE_STATUSES = ["2xx", "3xx", "401", "403", "404", "409", "429"]
# Signup claims a workspace the worker built ahead (docs/architecture.md, spare schemas); once
# the few the fuzz test has built are claimed, it answers its documented 503
# `tenant_unavailable` with Retry-After: an answer, not a server fault.
UNAVAILABLE_WHEN_EMPTY = {"signup": "503"}
DEFAULT_EXAMPLES = 15  # per operation and phase in `make test`; `make fuzz` sets FUZZ_EXAMPLES
DEFAULT_STEPS = 8


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        return None
    return instant if instant.tzinfo is not None else None


def _ordered(values: object, names: tuple[str, str], *, both: bool) -> bool:
    """False when both bounds are instants in the wrong order (or, with `both`, when only one
    of them is sent); anything else is left to the generator."""
    if not isinstance(values, dict):
        return True
    first, second = (_instant(values.get(name)) for name in names)
    if both and (names[0] in values) != (names[1] in values):
        return False
    return first is None or second is None or first < second


def follow_cross_field_rules(schema) -> None:
    """Schema-local Schemathesis hooks (its documented `filter_body` / `filter_query`)."""

    @schema.hook
    def filter_body(ctx, body):
        names = PERIODS.get(ctx.operation.definition.raw.get("operationId"))
        return names is None or _ordered(body, names, both=True)

    @schema.hook
    def filter_query(ctx, query):
        names = RANGES.get(ctx.operation.definition.raw.get("operationId"))
        return names is None or _ordered(query, names, both=False)


def examples() -> int:
    return int(os.environ.get("FUZZ_EXAMPLES", DEFAULT_EXAMPLES))


@dataclass
class Actor:
    """Who calls, and what they must never receive."""

    label: str
    headers: dict
    forbidden: frozenset[str]
    own: frozenset[str]  # markers this caller may see: proof that the search finds them
    # A new session's headers of the same person: logging out ends the session its token names,
    # so the engine logs out with a disposable one and keeps `headers` valid for the rest.
    renew: Callable[[], dict] | None = None
    seen_own: set[str] = field(default_factory=set)
    leaks: list[str] = field(default_factory=list)


# Operations that can end the session the token names (a listed session id is the caller's own).
SESSION_ENDING = "/auth/logout"
# Ending a session by id: the engine learns the caller's own session id from GET /me/sessions
# and ends it from any token of the person, which no renewal survives. Left out of the engine's
# run; test_my_sessions.py, the authorization matrix and the isolation fuzzer cover it.
SELF_ENDING = {"method": "DELETE", "path_regex": r"/me/sessions/\{session_id\}$"}
# The check is registered once for the process; it finds its caller by the bearer token sent.
_ACTORS: dict[str, Actor] = {}
_ACTORS_LOCK = threading.Lock()


def _texts(response) -> Iterator[str]:
    yield " ".join(f"{name}: {', '.join(values)}" for name, values in response.headers.items())
    content = response.content or b""
    if content[:4] == b"PK\x03\x04":  # an export: look inside every member
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            for name in archive.namelist():
                yield name
                yield archive.read(name).decode("utf-8", "replace")
    yield content.decode("utf-8", "replace")


@schemathesis.check
def no_foreign_marker(ctx, response, case) -> bool | None:
    """Fails when a response carries a marker of another tenant (or, for a client, of another
    client or of the worker's private notes)."""
    token = response.request.headers.get("Authorization") or ""
    with _ACTORS_LOCK:
        actor = _ACTORS.get(token)
    if actor is None:
        return None  # unauthenticated probes: nobody's data may show up, checked below anyway
    for text in _texts(response):
        actor.seen_own.update(marker for marker in actor.own if marker in text)
        leaked = sorted(marker for marker in actor.forbidden if marker in text)
        if leaked:
            actor.leaks.append(f"{case.operation.label} -> {response.status_code}: {leaked[:3]}")
            raise AssertionError(f"{actor.label} received foreign data: {leaked[:3]}")
    return None


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # the app's access log says it all
        pass


@contextlib.contextmanager
def served(app) -> Iterator[str]:
    """The app on an ephemeral loopback port, for as long as the block runs."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def strict_document(app) -> dict:
    document = copy.deepcopy(app.test_client().get("/api/openapi.json").get_json())
    for item in document["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("default", None)
    return document


@dataclass
class FuzzReport:
    operations: set[str] = field(default_factory=set)
    cases: int = 0
    by_phase: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def _steps(recorder) -> str:
    """The scenario's requests in order, to reproduce a failure by hand."""
    lines = []
    for interaction in recorder.interactions.values():
        request, response = interaction.request, interaction.response
        status = response.status_code if response is not None else "-"
        lines.append(f"  {request.method} {request.uri} -> {status}")
    return "\n".join(lines)


def _record(report: FuzzReport, event: events.ScenarioFinished) -> None:
    recorder = event.recorder
    for case_id, interaction in recorder.interactions.items():
        operation = recorder.cases[case_id].value.operation.label
        report.operations.add(operation)
        report.cases += 1
        report.by_phase[event.phase.name.lower()] += 1
        if interaction.response is not None:
            report.statuses[interaction.response.status_code] += 1
    for checks in recorder.checks.values():
        for check in checks:
            if check.failure_info is not None:
                failure = check.failure_info.failure
                report.failures.append(
                    f"[{check.name}] {failure.title}: {failure.message}\n{check.failure_info.code_sample}"
                    f"\nscenario:\n{_steps(recorder)}"
                )


def fuzz(
    document: dict, base_url: str, actor: Actor, *, include: dict | None = None, seed: int | None = None
) -> FuzzReport:
    """Run the engine as `actor` over the operations `include` selects (schemathesis'
    `schema.include(**include)`; all by default)."""
    settings = {
        "base-url": base_url,
        "cache": {"enabled": False},  # nothing learnt carries over between runs or lands in the tree
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "operations": [
            *(
                {
                    "include-operation-id": operation_id,
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": [*POSITIVE_STATUSES, status]},
                    },
                }
                for operation_id, status in DATA_DEPENDENT.items()
            ),
            *(
                {
                    "include-operation-id": operation_id,
                    "checks": {
                        "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", status]},
                        "positive_data_acceptance": {"expected-statuses": [*POSITIVE_STATUSES, status]},
                    },
                }
                for operation_id, status in UNAVAILABLE_WHEN_EMPTY.items()
            ),
        ],
        "generation": {"max-examples": examples(), "database": "none"},
        "phases": {
            "examples": {"enabled": False},  # the document carries no examples
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            # Chains carry valid data. A negative case whose broken value a link then replaces
            # with a real id is valid again, and negative_data_rejection reports it anyway
            # (schemathesis 4.32 also marks some linked cases negative with a "positive test
            # case" description). Negative data is the coverage and fuzzing phases' job.
            "stateful": {
                "enabled": True,
                "max-steps": DEFAULT_STEPS,
                "generation": {"mode": "positive"},
                "checks": {"negative_data_rejection": {"enabled": False}},
            },
        },
    }
    if seed is not None:
        settings["seed"] = seed
    config = schemathesis.Config.from_dict(settings)
    schema = schemathesis.openapi.from_dict(copy.deepcopy(document), config=config)
    if include is not None:
        schema = schema.include(**include)
    schema = schema.exclude(**SELF_ENDING)
    follow_cross_field_rules(schema)
    token = actor.headers["Authorization"]

    @schema.auth()
    class Bearer:
        def get(self, case, context):
            return token

        def set(self, case, data, context):  # per case (what get() returns is cached)
            if actor.renew is not None and case.operation.path.endswith(SESSION_ENDING):
                data = actor.renew()["Authorization"]
                with _ACTORS_LOCK:
                    _ACTORS[data] = actor
            case.headers = case.headers or {}
            case.headers["Authorization"] = data

    with _ACTORS_LOCK:
        _ACTORS[token] = actor
    report = FuzzReport()
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                _record(report, event)
            elif isinstance(event, events.NonFatalError | events.FatalError):
                report.failures.append(f"engine error: {event!r}")
    finally:
        with _ACTORS_LOCK:
            _ACTORS.pop(token, None)
    return report
