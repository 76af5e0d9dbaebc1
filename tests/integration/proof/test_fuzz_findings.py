"""What the API fuzzer found, pinned: each of these answered a 500 or broke the OpenAPI
document's promises before it was fixed."""

from __future__ import annotations

import json

import pytest

from backend.api.pagination import MAX_PAGE
from tests.integration.proof.fuzzing import Actor, no_foreign_marker

API = "/api/v1"


@pytest.fixture()
def worker(make_tenant, worker_token):
    return worker_token(make_tenant())


def _document(client) -> dict:
    return client.get("/api/openapi.json").get_json()


@pytest.mark.parametrize(
    "path",
    [f"{API}/clients?q=a%00b", f"{API}/appointments?status=scheduled%00", f"{API}/media?client_id=%00"],
)
def test_a_nul_character_in_the_query_is_a_422_not_a_500(client, worker, path):
    response = client.get(path, headers=worker)
    assert response.status_code == 422
    assert response.json["detail"] == "validation_error"


def test_a_nul_character_in_a_json_body_is_a_422_on_that_field(client, worker):
    response = client.post(f"{API}/clients", json={"name": "a\x00b"}, headers=worker)
    assert response.status_code == 422
    assert response.json["errors"] == {"name": ["NUL characters and lone surrogates are not allowed."]}
    nested = client.post(f"{API}/clients", json={"name": "ok", "notes": ["\x00"]}, headers=worker)
    assert nested.status_code == 422
    assert client.get(f"{API}/clients", headers=worker).json == []  # nothing was written


@pytest.mark.parametrize("collection", ["clients", "appointments"])
def test_a_patch_without_a_body_is_refused_like_the_document_says(client, worker, collection):
    created = client.post(f"{API}/clients", json={"name": "Ann"}, headers=worker).json
    target = created["id"]
    if collection == "appointments":
        target = client.post(
            f"{API}/appointments",
            json={
                "client_id": created["id"],
                "starts_at": "2031-01-06T09:00:00+00:00",
                "ends_at": "2031-01-06T10:00:00+00:00",
            },
            headers=worker,
        ).json["id"]
    response = client.patch(f"{API}/{collection}/{target}", headers=worker)
    assert response.status_code == 422
    assert response.json["errors"] == {"body": ["A JSON body is required."]}
    assert client.patch(f"{API}/{collection}/{target}", json={}, headers=worker).status_code == 200


def test_page_is_bounded_in_the_parsing_and_in_the_document(client, worker):
    assert client.get(f"{API}/clients?page={10**25}", headers=worker).status_code == 422
    assert client.get(f"{API}/clients?page={MAX_PAGE + 1}", headers=worker).status_code == 422
    last = client.get(f"{API}/clients?page={MAX_PAGE}&page_size=100", headers=worker)
    assert last.status_code == 200 and last.json == []
    parameters = _document(client)["paths"][f"{API}/clients"]["get"]["parameters"]
    page = next(p for p in parameters if p["name"] == "page")
    assert page["schema"]["maximum"] == MAX_PAGE


def test_the_pagination_header_is_documented_as_the_json_it_is(client, worker):
    client.post(f"{API}/clients", json={"name": "Ann"}, headers=worker)
    sent = json.loads(client.get(f"{API}/clients", headers=worker).headers["X-Pagination"])
    assert sent["total"] == 1
    header = _document(client)["components"]["headers"]["PAGINATION"]
    assert "schema" not in header
    assert header["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PaginationMetadata"
    }


def test_every_answer_an_operation_can_give_is_documented_with_its_body(client):
    for path, item in _document(client)["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            responses = operation["responses"]
            for status, response in responses.items():
                if status.startswith(("4", "5")) and "$ref" not in response:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
            if "requestBody" in operation:
                assert "400" in responses, (method, path)
            if operation.get("security"):
                assert {"401", "403", "503"} <= set(responses), (method, path)
                assert "Retry-After" in responses["503"]["headers"]


class _Response:
    def __init__(self, content: bytes, token: str):
        self.content = content
        self.headers = {"content-type": ["application/json"]}
        self.status_code = 200
        self.request = type("Sent", (), {"headers": {"Authorization": token}})()


def test_the_marker_check_fails_on_a_foreign_marker_and_sees_its_own(monkeypatch):
    """The fuzzer's leak check can fail: a response carrying a forbidden marker is reported."""
    from tests.integration.proof import fuzzing

    actor = Actor(
        "worker", {"Authorization": "t"}, forbidden=frozenset({"mkforeign1"}), own=frozenset({"mkmine"})
    )
    monkeypatch.setitem(fuzzing._ACTORS, "t", actor)
    case = type("Case", (), {"operation": type("Op", (), {"label": "GET /x"})()})()
    assert no_foreign_marker(None, _Response(b'{"name": "mkmine"}', "t"), case) is None
    assert actor.seen_own == {"mkmine"}
    with pytest.raises(AssertionError, match="mkforeign1"):
        no_foreign_marker(None, _Response(b'[{"notes": "x mkforeign1 y"}]', "t"), case)
    assert actor.leaks


def test_an_access_cache_entry_expiring_during_the_lookup_is_a_miss_not_a_500():
    """The old lookup asked `key in cache`, then `cache[key]`, each reading the clock: an entry
    expiring in between raised KeyError (a 500 in `make fuzz`). A clock that ticks on every
    read makes that moment happen on every lookup."""
    import itertools
    import time
    import uuid

    from cachetools import TTLCache

    from backend.api.access_cache import AccessCache

    class Listening:
        healthy = True

        def start(self) -> None:
            pass

    ticks = itertools.count()
    cache = AccessCache(listener_factory=lambda c: Listening())
    cache._entries = TTLCache(maxsize=10, ttl=1.5, timer=lambda: next(ticks))
    key = (uuid.uuid4(), uuid.uuid4(), None)
    record = object()
    cache._entries[key] = (record, time.monotonic())  # stored at tick 0, expires at 1.5
    assert cache.get(key, lambda: "reloaded") is record  # read at tick 1: still fresh
    assert cache.get(key, lambda: "reloaded") == "reloaded"  # expired: a miss, not a KeyError
