"""Every route of the domain blueprints requires a bearer token (checked before any body
parsing, so an anonymous caller learns nothing about validation or ids)."""

from __future__ import annotations

import uuid

DOMAIN_BLUEPRINTS = {"clients", "appointments", "media"}


def domain_routes(app) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".", 1)[0] not in DOMAIN_BLUEPRINTS:
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<uuid:{name}>", str(uuid.uuid4()))
        routes += [(method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return routes


def test_every_domain_route_requires_a_token(app, client):
    routes = domain_routes(app)
    assert len(routes) == 16
    for method, path in routes:
        response = client.open(path, method=method, json={"unexpected": True})
        assert response.status_code == 401, (method, path)
        assert response.json == {"detail": "missing_token"}
