"""The caller's own sessions on in-memory units of work (tests/unit/fakes.py): listed newest
use first with the current one marked, ended one at a time or all but this one, always scoped
to the caller's user and workspace. Another tenant's session answering 404 over HTTP is tested
in tests/integration/identity/test_my_sessions.py."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from backend.domain.errors import NotFound, Unauthenticated
from backend.domain.identity import Role
from backend.service.identity import devices, sessions
from tests.unit.fakes import FakeRegistryUnitOfWork, FakeTokenIssuer
from tests.unit.service.helpers import NOW, PASSWORD, events, owner_id, workspace

TTL = 3600


@pytest.fixture()
def uow():
    uow = FakeRegistryUnitOfWork()
    workspace(uow, "acme")
    workspace(uow, "beta")
    return uow


def log_in(uow, slug="acme", minutes=0, agent="Firefox"):
    issuer = FakeTokenIssuer()
    pair = sessions.login(
        email="owner@example.com",
        password=PASSWORD,
        tenant_slug=slug,
        now=NOW + timedelta(minutes=minutes),
        refresh_ttl_s=TTL,
        uow=uow,
        tokens=issuer,
        user_agent=agent,
    )
    return issuer.issued[-1]["session_id"], pair


def acme(uow):
    return uow.tenants.get_by_slug("acme").id


def listed(uow, current=None, now=NOW):
    return devices.list_sessions(
        user_id=owner_id(uow), tenant_id=acme(uow), current=current, now=now, uow=uow
    )


def test_sessions_are_listed_newest_use_first_with_the_current_one_marked(uow):
    old, _ = log_in(uow, agent="Old phone")
    new, pair = log_in(uow, minutes=10, agent="Laptop")
    log_in(uow, slug="beta")  # another workspace: not listed here
    sessions.refresh(
        refresh_token=pair.refresh_token,
        now=NOW + timedelta(minutes=20),
        refresh_ttl_s=TTL,
        uow=uow,
        tokens=FakeTokenIssuer(),
        user_agent="Laptop, updated",
    )
    found = listed(uow, current=old)
    assert [(s.id, s.current) for s in found] == [(new, False), (old, True)]
    assert found[0].created_at == NOW + timedelta(minutes=10) and found[0].last_used_at == NOW + timedelta(
        minutes=20
    )
    assert found[0].user_agent == "Laptop, updated"
    assert [s.id for s in listed(uow, now=NOW + timedelta(seconds=TTL))] == [new], "expired ones are gone"


def test_ending_one_session_revokes_it_and_is_audited(uow):
    ended, _ = log_in(uow)
    kept, _ = log_in(uow)
    devices.end_session(
        user_id=owner_id(uow), tenant_id=acme(uow), role=Role.WORKER, session_id=ended, now=NOW, uow=uow
    )
    assert [s.id for s in listed(uow)] == [kept]
    [fields] = events(uow, "auth.session_ended")
    assert fields["target_type"] == "session" and fields["target_id"] == str(ended)
    assert fields["metadata"] == {"reason": "one"}


def test_another_workspaces_or_an_unknown_session_is_not_found_and_stays(uow):
    elsewhere, pair = log_in(uow, slug="beta")
    for session_id in (elsewhere, uuid.uuid4()):
        with pytest.raises(NotFound):
            devices.end_session(
                user_id=owner_id(uow),
                tenant_id=acme(uow),
                role=Role.WORKER,
                session_id=session_id,
                now=NOW,
                uow=uow,
            )
    assert events(uow, "auth.session_ended") == []
    sessions.refresh(
        refresh_token=pair.refresh_token, now=NOW, refresh_ttl_s=TTL, uow=uow, tokens=FakeTokenIssuer()
    )


def test_ending_the_others_keeps_this_one_and_the_other_workspace(uow):
    this, _ = log_in(uow)
    log_in(uow)
    log_in(uow)
    _, beta_pair = log_in(uow, slug="beta")
    ended = devices.end_other_sessions(
        user_id=owner_id(uow), tenant_id=acme(uow), role=Role.WORKER, current=this, now=NOW, uow=uow
    )
    assert ended == 2 and [s.id for s in listed(uow)] == [this]
    [fields] = events(uow, "auth.session_ended")
    assert fields["metadata"] == {"reason": "others", "count": 2} and fields["target_id"] is None
    sessions.refresh(
        refresh_token=beta_pair.refresh_token, now=NOW, refresh_ttl_s=TTL, uow=uow, tokens=FakeTokenIssuer()
    )


def test_an_ended_sessions_refresh_token_no_longer_works(uow):
    session_id, pair = log_in(uow)
    devices.end_session(
        user_id=owner_id(uow), tenant_id=acme(uow), role=Role.WORKER, session_id=session_id, now=NOW, uow=uow
    )
    with pytest.raises(Unauthenticated) as refused:
        sessions.refresh(
            refresh_token=pair.refresh_token, now=NOW, refresh_ttl_s=TTL, uow=uow, tokens=FakeTokenIssuer()
        )
    assert refused.value.code == "invalid_token"


@pytest.mark.parametrize(
    ("agent", "shown"), [(None, None), ("   ", None), (" Firefox ", "Firefox"), ("x" * 300, "x" * 256)]
)
def test_user_agents_are_trimmed_and_clipped(agent, shown):
    assert devices.clip_user_agent(agent) == shown
