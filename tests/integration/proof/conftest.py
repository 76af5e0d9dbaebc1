"""Fixtures of the proof suite: workspaces provisioned once per module and filled with
marked data through the API."""

from __future__ import annotations

import pytest

from tests.conftest import worker_headers
from tests.integration.proof.seed import provision, seed_workspace


@pytest.fixture(scope="module")
def seeded(app, runtime):
    """Factory: a new workspace, provisioned and filled with marked data."""
    http = app.test_client()

    def make(label: str, **kwargs):
        tenant = provision(runtime, label)
        return seed_workspace(http, runtime, tenant, worker_headers(runtime, tenant), tag=label, **kwargs)

    return make
