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
