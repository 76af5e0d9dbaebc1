"""API fuzzing: schemathesis (coverage, fuzzing and stateful phases, the standard checks plus
`no_foreign_marker`) as a worker and as a client of populated workspaces, while another
workspace holds marked data that must never appear in any response.

`make test` runs a bounded number of examples; `make fuzz` runs many more
(FUZZ_EXAMPLES, FUZZ_SEED)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import worker_headers
from tests.integration.proof.fuzzing import Actor, FuzzReport, fuzz, served, strict_document
from tests.integration.proof.seed import session_headers

pytestmark = pytest.mark.slow

# Tenant-scoped operations: everything but the public identity routes and the key set.
TENANT_SCOPED = r"^/api/v1/(clients|appointments|media|me|export|audit-events|tenant|auth/logout)"


def seed() -> int | None:
    return int(os.environ["FUZZ_SEED"]) if os.environ.get("FUZZ_SEED") else None


def summary(actor: Actor, report: FuzzReport) -> str:
    phases = ", ".join(f"{name} {count}" for name, count in sorted(report.by_phase.items()))
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(report.statuses.items()))
    return (
        f"\nfuzz as {actor.label}: {len(report.operations)} operations, {report.cases} requests "
        f"({phases}); statuses {statuses}; own markers seen {len(actor.seen_own)}/{len(actor.own)}"
    )


def assert_clean(actor: Actor, report: FuzzReport) -> None:
    print(summary(actor, report))
    assert not report.failures, "\n\n".join(report.failures[:10])
    assert not actor.leaks
    # The marker search is live: the caller's own data was found in responses.
    assert actor.seen_own, f"{actor.label} never received its own data: the marker search proves nothing"


@pytest.fixture(scope="module")
def stranger(seeded):
    """Another workspace, full of marked data nobody else may ever see."""
    return seeded("stranger")


def test_fuzz_as_worker_never_fails_nor_leaks(app, runtime, seeded, stranger, ready_workspaces):
    home = seeded("workerhome")
    ready_workspaces(5)  # signups succeed (then answer their documented 503 once none is left)
    actor = Actor(
        "worker",
        home.worker,
        forbidden=frozenset(stranger.markers),
        own=frozenset(home.markers),
        renew=lambda: worker_headers(runtime, home.tenant),
    )
    with served(app) as base_url:
        report = fuzz(strict_document(app), base_url, actor, seed=seed())
    assert_clean(actor, report)
    assert len(report.operations) >= 25  # every operation of the document was exercised


def test_fuzz_as_client_never_fails_nor_leaks(app, runtime, seeded, stranger):
    home = seeded("clienthome")
    person, other = home.people
    forbidden = stranger.markers | (home.markers - person.visible - person.record)
    assert other.visible <= forbidden and home.private <= forbidden
    assert home.client_records - person.record <= forbidden and other.record <= forbidden
    actor = Actor(
        "client",
        person.headers,
        forbidden=frozenset(forbidden),
        own=frozenset(person.visible | person.record),
        renew=lambda: session_headers(runtime, home.tenant, person.user_id),
    )
    with served(app) as base_url:
        scoped = {"path_regex": TENANT_SCOPED}
        report = fuzz(strict_document(app), base_url, actor, include=scoped, seed=seed())
    assert_clean(actor, report)
    assert len(report.operations) >= 15
