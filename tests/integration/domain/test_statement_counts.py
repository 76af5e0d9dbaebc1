"""The request path is lean (issue 8): the SQL statements each main route sends on the runtime
engine are counted, and so are the round trips to PostgreSQL (libpq's protocol trace), so a
regression (an extra query per request, a lost cache) fails here.

Warm access cache: one simple-query message that checks and sets the scope and opens the
transaction (search path and tenant role) and the route's own queries, then the closing
ROLLBACK. The client list reads its page in one message that also opens, scopes and commits
the transaction (core/db.read_in_tenant_scope): one statement, one round trip in all.
Cold cache (backend/api/auth.py): one registry lookup more, in autocommit (no BEGIN/ROLLBACK).
A connection that sat idle in the pool for over 0.5 s is pinged at checkout (core/db.py): one
more, counted apart."""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager

import pytest
from psycopg import pq
from sqlalchemy import event

from backend.core.db import PING_AFTER_IDLE_S

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


@contextmanager
def round_trips(engine):
    """Count what the client sends that waits for an answer: a simple-protocol Query (BEGIN,
    ROLLBACK, a statement without parameters) or an extended-protocol Sync (one per
    statement), on every connection of the pool, the pre-ping at checkout included."""
    trace = tempfile.TemporaryFile(mode="w+")
    counts: dict[str, int] = {}
    traced = []

    def start(dbapi_connection) -> None:
        dbapi_connection.pgconn.trace(trace.fileno())
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        traced.append(dbapi_connection)

    def on_connect(dbapi_connection, record):
        start(dbapi_connection)

    # The idle connections (a checkout pings before the checkout event fires) and new ones.
    for record in list(engine.pool._pool.queue):
        if record.dbapi_connection is not None:
            start(record.dbapi_connection)
    event.listen(engine, "connect", on_connect)
    try:
        yield counts
    finally:
        event.remove(engine, "connect", on_connect)
        for dbapi_connection in traced:
            if not dbapi_connection.closed:
                dbapi_connection.pgconn.untrace()
        trace.seek(0)
        messages = [line.split("\t") for line in trace.read().splitlines()]
        sent = [m for m in messages if len(m) > 2 and m[0] == "F" and m[2] in ("Query", "Sync")]
        pings = [m for m in sent if m[2] == "Query" and m[3:] == [' ";"']]  # psycopg's ping: ';'
        counts.update(round_trips=len(sent) - len(pings), pings=len(pings))
        trace.close()


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
    # (path, statements with a warm access cache, round trips besides them)
    ("/clients", 1, 0),  # BEGIN + set_config + page with its total + COMMIT, one message
    ("/clients/{client}", 2, 1),  # BEGIN + set_config, row; ROLLBACK
    ("/appointments", 2, 1),
    ("/appointments/{appointment}", 2, 1),
    ("/media", 2, 1),
    ("/media/{media}", 2, 1),
]


@pytest.mark.parametrize(("route", "expected", "closing"), ROUTES)
def test_statements_per_request_of_the_main_routes(client, runtime, filled, route, expected, closing):
    mine, other, ids = filled
    path = API + route.format(**ids)
    assert client.get(path, headers=mine.worker).status_code == 200  # warms the access cache
    with counted(runtime.engine) as warm:
        response = client.get(path, headers=mine.worker)
    assert response.status_code == 200
    assert len(warm) == expected, warm
    assert "set_config" in warm[0] and "BEGIN" in warm[0]  # one message opens and scopes
    assert warm[0].endswith("; COMMIT") == (not closing)  # ... and ends it, for the list

    runtime.access_cache.forget()
    with counted(runtime.engine) as cold:
        assert client.get(path, headers=mine.worker).status_code == 200
    assert len(cold) == expected + 1, cold  # the registry lookup

    with round_trips(runtime.engine) as warm_trips:
        assert client.get(path, headers=mine.worker).status_code == 200
    assert warm_trips["round_trips"] == expected + closing  # + ROLLBACK
    assert warm_trips["pings"] <= 1
    runtime.access_cache.forget()
    with round_trips(runtime.engine) as cold_trips:
        assert client.get(path, headers=mine.worker).status_code == 200
    assert cold_trips["round_trips"] == expected + closing + 1  # + the lookup
    assert cold_trips["pings"] <= 2

    time.sleep(PING_AFTER_IDLE_S + 0.1)  # now the pooled connection has been idle for long
    with round_trips(runtime.engine) as after_idle:
        assert client.get(path, headers=mine.worker).status_code == 200
    assert after_idle == {"round_trips": expected + closing, "pings": 1}

    if "{" in route:  # the other tenant's worker cannot read it, and pays no more for trying
        with counted(runtime.engine) as foreign:
            assert client.get(path, headers=other.worker).status_code == 404
        assert len(foreign) <= expected + 1
