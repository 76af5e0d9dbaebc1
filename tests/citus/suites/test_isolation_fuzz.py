"""The isolation fuzz (tests/integration/proof/test_isolation_fuzz.py) on the cluster, with a
smaller budget than on one server: every tenant request there pays the coordinator hop and a
new worker connection (docs/scale-out.md), so the 15 examples x 12 steps of `make test` take
about 65 s here. 5 x 12 (about 60 steps, 20 list comparisons with the model after each, three
workspaces over both workers) keeps the Citus suite's share of `make test` bounded;
CITUS_ISOLATION_EXAMPLES / CITUS_ISOLATION_STEPS raise it."""

import pytest

from tests.integration.proof.test_isolation_fuzz import *  # noqa: F403
from tests.integration.proof.test_isolation_fuzz import budget


@pytest.fixture()
def isolation_budget() -> tuple[int, int]:
    return budget("CITUS_ISOLATION_EXAMPLES", 5), budget("CITUS_ISOLATION_STEPS", 12)
