def test_health(client):
    assert client.get("/health").json == {"status": "ok"}


def test_ready(client):
    response = client.get("/health/ready")
    assert response.status_code == 200, response.json


def test_list_clients(client, make_tenant, worker_token):
    tenant = make_tenant()
    response = client.get("/api/v1/clients", headers=worker_token(tenant))
    assert response.status_code == 200, response.json
    assert response.json == []


def test_client_role_is_refused_on_worker_route(client, make_tenant, client_token):
    tenant = make_tenant()
    _, headers = client_token(tenant)
    response = client.get("/api/v1/clients", headers=headers)
    assert response.status_code == 403
    assert response.json == {"detail": "forbidden"}
