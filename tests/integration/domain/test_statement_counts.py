"""The request path is lean (issue 8): the SQL statements each main route sends on the runtime
engine are counted, so a regression (an extra query per request, a lost cache) fails here.

Warm access cache: one `set_config` (search path and tenant role) and the route's own queries.
Cold cache (the 2 s registry cache of backend/api/auth.py): one registry lookup more."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from backend.api import auth

from .conftest import API


@contextmanager
def counted(engine):
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.fixture()
def filled(workspace):
    """A tenant with a client, an appointment and a media file; another tenant beside it."""
    other = workspace()
    other.create_client(name="Other's client")
    mine = workspace()
    client = mine.create_client(name="Mine")
    appointment = mine.book(client["id"], 1, 2)
    media = mine.upload(client_id=client["id"])
    return mine, other, {"client": client["id"], "appointment": appointment["id"], "media": media["id"]}


ROUTES = [
    # (path, statements with a warm access cache) — set_config + the route's queries
    ("/clients", 3),  # set_config, count, page
    ("/clients/{client}", 2),  # set_config, row
    ("/appointments", 3),
    ("/appointments/{appointment}", 2),
    ("/media", 3),
    ("/media/{media}", 2),
]


@pytest.mark.parametrize(("route", "expected"), ROUTES)
def test_statements_per_request_of_the_main_routes(client, runtime, filled, route, expected):
    mine, other, ids = filled
    path = API + route.format(**ids)
    assert client.get(path, headers=mine.worker).status_code == 200  # warms the access cache
    with counted(runtime.engine) as warm:
        response = client.get(path, headers=mine.worker)
    assert response.status_code == 200
    assert len(warm) == expected, warm
    assert "set_config" in warm[0]

    auth.forget_access()
    with counted(runtime.engine) as cold:
        assert client.get(path, headers=mine.worker).status_code == 200
    assert len(cold) == expected + 1, cold  # the registry lookup

    if "{" in route:  # the other tenant's worker cannot read it, and pays no more for trying
        with counted(runtime.engine) as foreign:
            assert client.get(path, headers=other.worker).status_code == 404
        assert len(foreign) <= expected + 1
