"""Every route of the OpenAPI document against every way in: missing and forged tokens, the
other tenant, the other role, and each blocked or read-only state of the tenant.

The route list comes from the app's document, so a route added later is walked without
touching this test; a route that is neither protected (`x-roles`) nor listed below as public
fails it. Path parameters are real objects of the tenant where a factory knows the collection
(`OBJECT_FACTORIES`), random UUIDs otherwise."""

from __future__ import annotations

import base64
import itertools
import json
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import insert, text

from backend.core.db import set_tenant_search_path
from backend.core.tokens import TokenService, generate_key, load_signing_keys
from backend.domain.identity import Role
from backend.infrastructure.sql.identity import SqlMembershipRepository, SqlUserRepository, refresh_tokens
from tests.integration.identity.conftest import add_client_record, bearer, make_member, update_tenant
from tests.integration.identity.openapi_walk import body_kwargs, concrete_path, operations
from tests.owner import owner_engine
from tests.sessions import session_token

PUBLIC_OPERATIONS = {
    "POST /api/v1/auth/signup",
    "POST /api/v1/auth/verify",
    "POST /api/v1/auth/verify/resend",
    "POST /api/v1/auth/token",
    "POST /api/v1/auth/refresh",
    "POST /api/v1/auth/invitations/accept",
    "POST /api/v1/auth/password/forgot",
    "POST /api/v1/auth/password/reset",
    "POST /api/v1/auth/token/mfa",
    "POST /api/v1/auth/email/confirm",
    "GET /.well-known/jwks.json",
    "GET /.well-known/oauth-authorization-server",
}
ACCESS_CODES = {
    "read_only",
    "worker_unverified",
    "trial_expired",
    "tenant_disabled",
    "tenant_deleted",
    "mfa_enrolment_required",
}
MARKS = {"read_only_ok", "deletion_ok", "mfa_enrolment_ok"}
STATES = [
    "active",
    "paid_expired",
    "unverified",
    "trial_expired",
    "disabled",
    "deletion_scheduled",
    "deleted",
    "provisioning",
    "mfa_missing",
]
STATE_VALUES = {
    "mfa_missing": {"mfa_required_for_workers": True},
    "disabled": {"status": "disabled"},
    "deletion_scheduled": {"status": "deletion_scheduled"},
    "deleted": {"status": "deleted"},
    "provisioning": {"status": "provisioning"},
}
_slots = itertools.count(1)


def _insert(runtime, member, statement: str, **values) -> uuid.UUID:
    """A row written straight into the member's tenant schema (owner role), by plain SQL so
    this test does not depend on another area's modules."""
    values["id"] = uuid.uuid4()
    with owner_engine().begin() as connection:
        set_tenant_search_path(connection, member.tenant.schema_name)
        connection.execute(text(statement), values)
    return values["id"]


def _appointment(runtime, member) -> uuid.UUID:
    starts = datetime.now(UTC) + timedelta(days=400, hours=2 * next(_slots))  # never overlapping
    return _insert(
        runtime,
        member,
        "INSERT INTO appointments (id, client_id, starts_at, ends_at) VALUES (:id, :client, :s, :e)",
        client=member.client_id,
        s=starts,
        e=starts + timedelta(hours=1),
    )


def _media(runtime, member) -> uuid.UUID:
    return _insert(
        runtime,
        member,
        "INSERT INTO media (id, client_id, filename, content_type, size_bytes, sha256, uploaded_by,"
        " uploaded_by_role) VALUES (:id, :client, 'matrix.txt', 'text/plain', 1, :sha, :by, 'worker')",
        client=member.client_id,
        sha="0" * 64,
        by=member.worker_id,
    )


def _session(runtime, member) -> uuid.UUID:
    """A live login of the member's client: the family id is what /me/sessions/{id} names."""
    family = uuid.uuid4()
    now = datetime.now(UTC)
    with owner_engine().begin() as connection:
        connection.execute(
            insert(refresh_tokens).values(
                id=uuid.uuid4(),
                family_id=family,
                user_id=member.client_user_id,
                tenant_id=member.tenant.id,
                token_hash=uuid.uuid4().bytes * 2,
                issued_at=now,
                expires_at=now + timedelta(days=1),
            )
        )
    return family


# Collection (the path segment before an id) -> a factory making one object in the member's
# tenant, owned by the member's client where objects have an owner: the cross-tenant and
# cross-client cases then hit real rows. An area whose collection is missing here is still
# walked, with random ids.
OBJECT_FACTORIES = {
    "clients": lambda runtime, member: add_client_record(
        runtime, member.tenant, name="Matrix", email=f"matrix-{uuid.uuid4().hex[:8]}@example.com"
    ),
    "appointments": _appointment,
    "media": _media,
    "sessions": _session,
}


def expected_for(state: str, role: str, operation) -> tuple[int, str] | None:
    """(status, detail) the access layer must answer, or None when it must let the call in."""
    marks = operation.access
    if state == "provisioning":
        return 503, "tenant_unavailable"
    if state == "disabled":
        return 403, "tenant_disabled"
    if state == "deleted":
        return 403, "tenant_deleted"
    if state == "deletion_scheduled" and not (role == "worker" and marks.get("deletion_ok")):
        return 403, "tenant_deleted"
    if state == "unverified" and role == "worker":
        return 403, "worker_unverified"
    if state == "mfa_missing" and role == "worker" and not marks.get("mfa_enrolment_ok"):
        return 403, "mfa_enrolment_required"
    if state == "trial_expired":
        if role == "client":
            return 403, "trial_expired"
        if operation.mutating and not marks.get("read_only_ok"):
            return 403, "read_only"
    return None


def classify(document: dict) -> tuple[list, list[str]]:
    """The protected operations, and what is wrong with the document's coverage: a route
    neither protected nor known as public, incomplete marks, a stale public list."""
    protected, failures = [], []
    for operation in operations(document):
        if operation.roles is None:
            if operation.key not in PUBLIC_OPERATIONS:
                failures.append(f"{operation.key}: neither protected (x-roles) nor a known public route")
            continue
        protected.append(operation)
        if set(operation.access) != MARKS or not operation.roles:
            failures.append(f"{operation.key}: x-access / x-roles incomplete")
        if {"bearerAuth": []} not in operation.spec.get("security", []):
            failures.append(f"{operation.key}: bearer security not documented")
        if not set(operation.roles) <= {"worker", "client"}:
            failures.append(f"{operation.key}: unknown role in {operation.roles}")
    listed = {o.key for o in operations(document)}
    failures += [f"{key}: listed as public but not in the document" for key in PUBLIC_OPERATIONS - listed]
    return protected, failures


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


SESSION_ENDING = {"POST /api/v1/auth/logout"}


def forged_tokens(runtime, member) -> dict[str, tuple[str, str]]:
    """Tokens for the tenant's worker that must all be refused: (token, expected detail)."""
    settings = runtime.settings
    genuine = session_token(runtime, user_id=member.worker_id, tenant_id=member.tenant.id)
    payload = json.loads(base64.urlsafe_b64decode(genuine.split(".")[1] + "=="))
    session = uuid.UUID(payload["sid"])  # a live session: only the forgery is wrong
    claims = {
        "user_id": member.worker_id,
        "tenant_id": member.tenant.id,
        "role": "worker",
        "session_id": session,
    }
    real_kid = runtime.tokens.jwks["keys"][0]["kid"]

    def service(keys, issuer=settings.jwt_issuer, audience=settings.jwt_audience):
        return TokenService(keys, issuer=issuer, audience=audience, ttl_s=900)

    real_keys = load_signing_keys(settings)
    without_sid = {key: value for key, value in payload.items() if key != "sid"}
    header = {"alg": "ES256", "typ": "at+jwt", "kid": real_kid}
    someone_elses = session_token(runtime, user_id=member.client_user_id, tenant_id=member.tenant.id)
    their_session = uuid.UUID(json.loads(base64.urlsafe_b64decode(someone_elses.split(".")[1] + "=="))["sid"])
    return {
        # Every access token belongs to a live session of its own user in its own tenant.
        "no_session": (jwt.encode(header, without_sid, real_keys.keys[0]), "invalid_token"),
        "unknown_session": (runtime.tokens.issue(**{**claims, "session_id": uuid.uuid4()}), "invalid_token"),
        "another_users_session": (
            runtime.tokens.issue(**{**claims, "session_id": their_session}),
            "invalid_token",
        ),
        "garbage": ("not-a-jwt", "invalid_token"),
        "other_key": (service(KeySet([generate_key()])).issue(**claims), "invalid_token"),
        "other_key_same_kid": (service(KeySet([generate_key(real_kid)])).issue(**claims), "invalid_token"),
        "alg_none": (
            f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': real_kid})}.{_b64(payload)}.",
            "invalid_token",
        ),
        "expired": (runtime.tokens.issue(**claims, now=time.time() - 3600), "token_expired"),
        "wrong_aud": (service(real_keys, audience="another-api").issue(**claims), "invalid_token"),
        "wrong_iss": (service(real_keys, issuer="https://evil.example").issue(**claims), "invalid_token"),
    }


@pytest.fixture(scope="module")
def members(runtime):
    made = {state: make_member(runtime, state=state) for state in STATES}
    made["other"] = make_member(runtime)
    made["neighbour"] = neighbour_client(runtime, made["active"])
    return made


def neighbour_client(runtime, member) -> dict:
    """Headers of a second client with a login in the member's workspace."""
    client_id = add_client_record(runtime, member.tenant, name="Neighbour")
    user_id = uuid.uuid4()
    with owner_engine().begin() as connection:
        SqlUserRepository(connection).add(user_id, f"n-{user_id.hex[:10]}@example.com", "Neighbour", None)
        SqlMembershipRepository(connection).add(
            user_id=user_id, tenant_id=member.tenant.id, role=Role.CLIENT, client_id=client_id
        )
    token = session_token(runtime, user_id=user_id, tenant_id=member.tenant.id)
    return bearer(token)


def test_every_route_against_every_way_in(app, runtime, members):
    client = app.test_client()
    document = client.get("/api/openapi.json").json
    failures: list[str] = []
    matrix: dict[str, dict[str, str]] = {}
    tally: Counter = Counter()
    home = members["active"]

    def send(operation, headers, member, real_objects: bool = True):
        """Call the operation; ids are real objects of `member`'s tenant, or random ones for
        the state cases (where the access layer answers before any lookup, and a let-in call
        must not meet a half-made fixture such as a media row without its file)."""

        def objects(collection):
            factory = OBJECT_FACTORIES.get(collection) if real_objects else None
            return factory(runtime, member) if factory else None

        path = concrete_path(operation, objects)
        kwargs = body_kwargs(operation, document)
        if operation.key in SESSION_ENDING and headers in (member.worker, member.client):
            # Logging out ends the session its token names: spend a new session of the same
            # person, so the member's tokens stay valid for the routes after this one.
            user_id = member.worker_id if headers == member.worker else member.client_user_id
            headers = bearer(session_token(runtime, user_id=user_id, tenant_id=member.tenant.id))
        # buffered: a streamed answer (the export) is read to the end and closed at once
        return client.open(
            path, method=operation.method.upper(), headers=headers or {}, buffered=True, **kwargs
        )

    def check(operation, case, response, want: tuple[int, str] | None) -> None:
        body = response.get_json(silent=True)
        detail = body.get("detail") if isinstance(body, dict) else None
        outcome = f"{response.status_code} {detail or ''}".strip()
        matrix.setdefault(operation.key, {})[case] = outcome
        tally[(case.split(":")[0], outcome if want else "let in")] += 1
        if response.status_code >= 500 and response.status_code != 503:
            failures.append(f"{operation.key} [{case}]: server error {outcome}")
        elif want is not None and (response.status_code, detail) != want:
            failures.append(f"{operation.key} [{case}]: got {outcome}, want {want[0]} {want[1]}")
        elif want is None and (
            response.status_code == 401
            or (response.status_code == 403 and detail in ACCESS_CODES | {"forbidden"})
            or detail == "tenant_unavailable"
        ):
            failures.append(f"{operation.key} [{case}]: refused with {outcome}, should be let in")

    protected, coverage = classify(document)
    failures += coverage
    assert protected, "no protected route found in the OpenAPI document"

    forged = forged_tokens(runtime, home)
    for operation in protected:
        roles = operation.roles
        check(operation, "no_token", send(operation, None, home), (401, "missing_token"))
        for name, (token, code) in forged.items():
            check(operation, f"token:{name}", send(operation, bearer(token), home), (401, code))
        for role in ("worker", "client"):
            if role not in roles:
                headers = home.worker if role == "worker" else home.client
                check(operation, f"role:{role}", send(operation, headers, home), (403, "forbidden"))
        if operation.has_id:
            for role in roles:
                _cross_tenant(operation, role, members, send, check, matrix, tally)
            if "client" in roles:
                # Another client of the same workspace, on objects of the home client.
                response = send(operation, members["neighbour"], home)
                check(operation, "cross_client:client", response, (404, "not_found"))
        for state in STATES:
            member = members[state]
            for role in roles:
                if state in STATE_VALUES:  # a route may have changed it (e.g. cancelling a deletion)
                    update_tenant(runtime, member.tenant.id, **STATE_VALUES[state])
                headers = member.worker if role == "worker" else member.client
                response = send(operation, headers, member, real_objects=False)
                check(operation, f"{state}:{role}", response, expected_for(state, role, operation))
    runtime.access_cache.forget()

    _report(matrix, tally)
    assert not failures, "\n".join(failures)


def _cross_tenant(operation, role, members, send, check, matrix, tally) -> None:
    """The other tenant's token on this tenant's object: 404, never 403 or 2xx. When the
    minimal body does not validate, the tenant's own call is the control: if it also stops at
    422, isolation cannot be reached through this route's body and the case is counted apart."""
    home, other = members["active"], members["other"]
    headers = other.worker if role == "worker" else other.client
    objects_of_home = home  # send() fills ids from the member it is given: here the home tenant
    response = send(operation, headers, objects_of_home)
    if response.status_code == 422:
        control = send(operation, home.worker if role == "worker" else home.client, home)
        if control.status_code == 422:
            matrix.setdefault(operation.key, {})[f"cross_tenant:{role}"] = "422 (body)"
            tally[("cross_tenant", "422 body, not reached")] += 1
            return
    check(operation, f"cross_tenant:{role}", response, (404, "not_found"))


def _report(matrix: dict[str, dict[str, str]], tally: Counter) -> None:
    print("\nAuthorization matrix: route x case -> outcome")
    for route, cases in matrix.items():
        print(f"  {route}")
        for case, outcome in cases.items():
            print(f"    {case:<32} {outcome}")
    print("\nOutcome counts (case family, outcome):")
    for (family, outcome), count in sorted(tally.items()):
        print(f"  {family:<20} {outcome:<28} {count}")
    print(f"  total requests: {sum(tally.values())}")


def test_a_new_route_that_is_not_covered_fails_the_walk():
    """The walk refuses what it cannot classify: a route added without protection."""
    document = {
        "paths": {
            "/api/v1/me": {
                "get": {
                    "x-roles": ["worker"],
                    "x-access": {"read_only_ok": False, "deletion_ok": False, "mfa_enrolment_ok": False},
                    "security": [{"bearerAuth": []}],
                }
            },
            "/api/v1/brand-new": {"post": {"responses": {}}},
            **{path: {method.lower(): {}} for method, path in (k.split(" ", 1) for k in PUBLIC_OPERATIONS)},
        }
    }
    protected, failures = classify(document)
    assert [o.key for o in protected] == ["GET /api/v1/me"]
    assert failures == ["POST /api/v1/brand-new: neither protected (x-roles) nor a known public route"]
    document["paths"]["/api/v1/me"]["get"]["x-access"] = {}
    assert "GET /api/v1/me: x-access / x-roles incomplete" in classify(document)[1]
