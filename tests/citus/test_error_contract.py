"""The error contract on Citus: a constraint violated on a worker comes back with the shard's
name (`ex_appointments_no_overlap_102009`); the API still answers the contract's 409 codes,
with nothing written, and another tenant's identical rows are no conflict."""

from __future__ import annotations

from tests.integration.domain.conftest import API, at


def _client(client, headers, name: str, email: str) -> dict:
    response = client.post(f"{API}/clients", json={"name": name, "email": email}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def test_shard_suffixed_constraints_map_to_the_same_conflicts(client, make_tenant, worker_token):
    tenant, other = make_tenant(), make_tenant()
    headers, other_headers = worker_token(tenant), worker_token(other)
    a = _client(client, headers, "A", "a@example.com")
    b = _client(client, headers, "B", "b@example.com")

    duplicate = client.post(f"{API}/clients", json={"name": "A2", "email": "A@example.com"}, headers=headers)
    assert duplicate.status_code == 409
    assert duplicate.json == {"detail": "client_email_taken"}

    first = {"client_id": a["id"], "starts_at": at(0), "ends_at": at(2)}
    assert client.post(f"{API}/appointments", json=first, headers=headers).status_code == 201
    overlap = {"client_id": b["id"], "starts_at": at(1), "ends_at": at(3)}
    response = client.post(f"{API}/appointments", json=overlap, headers=headers)
    assert response.status_code == 409
    assert response.json == {"detail": "appointment_overlap"}
    listed = client.get(f"{API}/appointments", headers=headers)
    assert [row["client_id"] for row in listed.json] == [a["id"]]  # nothing partial written

    # The same email and the same hours in another tenant (maybe on the other worker) are fine.
    c = _client(client, other_headers, "A", "a@example.com")
    same_hours = {"client_id": c["id"], "starts_at": at(0), "ends_at": at(2)}
    assert client.post(f"{API}/appointments", json=same_hours, headers=other_headers).status_code == 201
