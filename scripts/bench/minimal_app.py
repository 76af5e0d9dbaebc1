"""The floor of the requests benchmark: a WSGI app doing only what `GET /api/v1/clients`
physically needs, served by the same gunicorn settings as the real app.

Per request: verify the ES256 access token (joserfc, the app's public keys and claims), take
one pooled connection, and in ONE round trip scope the transaction to the tenant (search path
and tenant role, transaction-local, like core/db.set_tenant_search_path), read the first page
(20 rows, the app's order) and the total, then `json.dumps`. Nothing else: no registry lookup,
no access mode, no revocation, no metrics, no log line. Its CPU per request is what the real
app's is measured against (performance.md: at most 2x).

    gunicorn -c backend/gunicorn_conf.py 'bench.minimal_app:app'   (PYTHONPATH=scripts)

Environment: DATABASE_URL (the runtime role), VAR_DIR (the app's jwt-keys.json), JWT_ISSUER,
JWT_AUDIENCE, GUNICORN_THREADS (pool size).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from psycopg import sql
from psycopg_pool import ConnectionPool

PAGE_SIZE = 20
COLUMNS = ("id", "name", "email", "phone", "notes", "created_at", "updated_at")

_keys = KeySet.import_key_set(json.loads((Path(os.environ["VAR_DIR"]) / "jwt-keys.json").read_text()))
_claims = jwt.JWTClaimsRegistry(
    iss={"essential": True, "value": os.environ.get("JWT_ISSUER", "http://127.0.0.1:8000")},
    aud={"essential": True, "value": os.environ.get("JWT_AUDIENCE", "saas-api")},
    exp={"essential": True},
    tenant_id={"essential": True},
)
_pool: ConnectionPool | None = None
_pool_lock = threading.Lock()


def _connections() -> ConnectionPool:
    """One pool per worker process, opened after gunicorn forked it."""
    global _pool
    with _pool_lock:
        if _pool is None:
            size = int(os.environ.get("GUNICORN_THREADS", "4"))
            _pool = ConnectionPool(
                os.environ["DATABASE_URL"],
                min_size=size,
                max_size=size,
                kwargs={"autocommit": True, "prepare_threshold": None},
                open=True,
            )
        return _pool


def _answer(start_response, status: str, body: bytes):
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if not authorization.startswith("Bearer "):
        return _answer(start_response, "401 UNAUTHORIZED", b'{"detail":"missing_token"}')
    try:
        token = jwt.decode(authorization[7:], _keys, algorithms=["ES256"])
        _claims.validate(token.claims)
        schema = f"tenant_{uuid.UUID(token.claims['tenant_id']).hex}"
    except (JoseError, ValueError, KeyError, TypeError):
        return _answer(start_response, "401 UNAUTHORIZED", b'{"detail":"invalid_token"}')
    # A simple-query string of several statements runs as one implicit transaction: the
    # transaction-local settings hold for the page and the count, and end with it. The schema
    # name is built from a verified UUID: hex digits only.
    statement = sql.SQL(
        "SELECT pg_catalog.set_config('search_path', {path}, true),"
        " pg_catalog.set_config('role', {role}, true);"
        " SELECT {columns} FROM clients ORDER BY lower(name), id LIMIT {limit};"
        " SELECT count(*) FROM clients"
    ).format(
        path=sql.Literal(f'"{schema}"'),
        role=sql.Literal(schema),
        columns=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
        limit=sql.Literal(PAGE_SIZE),
    )
    with _connections().connection() as connection, connection.cursor() as cursor:
        cursor.execute(statement)
        cursor.nextset()
        rows = cursor.fetchall()
        cursor.nextset()
        total = cursor.fetchone()[0]
    items = [
        {
            "id": str(row[0]),
            "name": row[1],
            "email": row[2],
            "phone": row[3],
            "notes": row[4],
            "created_at": row[5].isoformat(),
            "updated_at": row[6].isoformat(),
        }
        for row in rows
    ]
    pagination = json.dumps({"total": total, "total_pages": -(-total // PAGE_SIZE), "page": 1})
    body = json.dumps(items).encode()
    start_response(
        "200 OK",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Pagination", pagination),
        ],
    )
    return [body]
