"""The request path builds nothing per request that can be built once (issue 18): schemas,
statements, repositories a request does not use. Each test fails when the per-request work
comes back; the answers stay what flask-smorest and marshmallow would give."""

from __future__ import annotations

import itertools

import marshmallow as ma
from flask import Flask
from flask_smorest.pagination import PaginationMixin

from backend.api.extension import Blueprint
from backend.api.parsing import ArgumentsParser
from backend.infrastructure.sql.identity import SqlClientLogins


class CountedSchema(ma.Schema):
    built = 0
    page = ma.fields.Integer(load_default=1)

    def __init__(self, *args, **kwargs) -> None:
        type(self).built += 1
        super().__init__(*args, **kwargs)


def test_a_schema_class_is_built_once_however_many_requests_it_parses():
    parser = ArgumentsParser()
    app = Flask(__name__)
    for page in (1, 2, 3):
        with app.test_request_context(f"/?page={page}"):
            assert parser.parse(CountedSchema, location="query") == {"page": page}
    assert CountedSchema.built == 1


def test_pagination_metadata_is_flask_smorests():
    for page, page_size, count in itertools.product((1, 2, 3, 7), (1, 10, 20), (0, 1, 19, 20, 21, 41)):
        ours = Blueprint._make_pagination_metadata(page, page_size, count)
        assert ours == PaginationMixin._make_pagination_metadata(page, page_size, count)


def test_the_client_logins_repository_builds_its_tenant_lookup_only_when_used():
    logins = SqlClientLogins(connection=None, schema_name="tenant_" + "0" * 32)
    assert "_tenant" not in vars(logins)
    assert logins._tenant is not None  # built on first use
