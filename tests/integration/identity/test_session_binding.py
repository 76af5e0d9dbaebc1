"""Fail closed on the token's login session (issue 15, item 3): a correctly signed token is
accepted only while its `sid` names a live session of the same user in the same tenant."""

from __future__ import annotations

import base64
import json
import uuid

from tests.integration.identity.conftest import bearer
from tests.sessions import session_token


def sid_of(token: str) -> uuid.UUID:
    payload = token.split(".")[1]
    return uuid.UUID(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"])


def test_only_a_live_session_of_the_same_user_and_tenant_is_accepted(client, runtime, member):
    ours, theirs = member(), member()
    claims = {"user_id": ours.worker_id, "tenant_id": ours.tenant.id, "role": "worker"}
    live = sid_of(session_token(runtime, user_id=ours.worker_id, tenant_id=ours.tenant.id))
    foreign = sid_of(session_token(runtime, user_id=theirs.worker_id, tenant_id=theirs.tenant.id))
    neighbour = sid_of(session_token(runtime, user_id=ours.client_user_id, tenant_id=ours.tenant.id))
    refused = {
        "unknown sid": runtime.tokens.issue(**claims, session_id=uuid.uuid4()),
        "another tenant's user's sid": runtime.tokens.issue(**claims, session_id=foreign),
        "another user's sid in the same tenant": runtime.tokens.issue(**claims, session_id=neighbour),
    }
    for case, token in refused.items():
        response = client.get("/api/v1/me", headers=bearer(token))
        assert response.status_code == 401, case
        assert response.json == {"detail": "invalid_token"}, case
    accepted = client.get("/api/v1/me", headers=bearer(runtime.tokens.issue(**claims, session_id=live)))
    assert accepted.status_code == 200
