"""Fixtures of the proof suite: workspaces provisioned once per module and filled with
marked data through the API."""

from __future__ import annotations

import pytest

from tests.integration.proof.seed import owner_headers, provision, seed_workspace


@pytest.fixture(scope="module")
def seeded(app, runtime):
    """Factory: a new workspace, provisioned and filled with marked data."""
    http = app.test_client()

    def make(label: str, **kwargs):
        tenant = provision(runtime, label)
        return seed_workspace(http, runtime, tenant, owner_headers(runtime, tenant), tag=label, **kwargs)

    return make
