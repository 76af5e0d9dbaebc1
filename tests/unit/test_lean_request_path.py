"""The request path builds nothing per request that can be built once (issue 18): schemas,
statements, repositories a request does not use. Each test fails when the per-request work
comes back; the answers stay what flask-smorest and marshmallow would give."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import marshmallow as ma
import pytest
from flask import Flask
from flask_smorest.pagination import PaginationMixin

from backend.api.dumping import PlainDumpSchema
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


# --- PlainDumpSchema: the same dump as marshmallow's, faster -------------------------------


class Record(PlainDumpSchema):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String(required=True)
    email = ma.fields.Email(allow_none=True)
    renamed = ma.fields.String(data_key="shown_as", attribute="hidden")
    secret = ma.fields.String(load_only=True)
    at = ma.fields.AwareDateTime(dump_only=True)
    naive = ma.fields.NaiveDateTime()
    plain = ma.fields.DateTime()


class MarshmallowRecord(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String(required=True)
    email = ma.fields.Email(allow_none=True)
    renamed = ma.fields.String(data_key="shown_as", attribute="hidden")
    secret = ma.fields.String(load_only=True)
    at = ma.fields.AwareDateTime(dump_only=True)
    naive = ma.fields.NaiveDateTime()
    plain = ma.fields.DateTime()


@dataclass
class Thing:
    id: uuid.UUID | None
    name: str | bytes | None
    email: str | None
    hidden: object
    secret: str
    at: datetime | None
    naive: datetime | None
    plain: datetime | None


THINGS = [
    Thing(
        uuid.uuid4(),
        "Ann",
        "ann@example.com",
        "x",
        "s",
        datetime(2031, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2031, 1, 2, 3, 4, 5),
        datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    ),
    Thing(None, b"bytes \xc3\xa9", None, 42, "s", None, None, None),
    Thing(uuid.uuid4(), "", None, None, "", datetime(2031, 1, 1, tzinfo=UTC), None, None),
]


def test_a_plain_dump_is_marshmallows_dump():
    fast, reference = Record(), MarshmallowRecord()
    assert fast._plain_plan is not None  # the fast path is the one compared
    for thing in THINGS:
        assert fast.dump(thing) == reference.dump(thing)
    assert Record(many=True).dump(THINGS) == MarshmallowRecord(many=True).dump(THINGS)
    assert fast.dump(THINGS, many=True) == reference.dump(THINGS, many=True)
    only = Record(only=("name", "at"), many=True)
    assert only.dump(THINGS) == MarshmallowRecord(only=("name", "at"), many=True).dump(THINGS)


def test_what_a_plain_dump_cannot_do_goes_through_marshmallow():
    as_mapping = {"id": uuid.uuid4(), "name": "Ann", "hidden": "x"}  # missing keys: skipped
    assert Record().dump(as_mapping) == MarshmallowRecord().dump(as_mapping)

    class WithHook(Record):
        @ma.post_dump
        def shout(self, data, **kwargs):
            return {**data, "name": data["name"].upper()}

    hooked = WithHook()
    assert hooked._plain_plan is None  # fails if marshmallow's hook registry changed shape
    assert hooked.dump(THINGS[0])["name"] == "ANN"

    class WithNumber(Record):
        count = ma.fields.Integer()

    assert WithNumber()._plain_plan is None


def test_the_client_record_dumps_plainly():
    from backend.api.clients.schemas import ClientRecordSchema

    # The answer's schema; the request bodies (ClientRecordCreate/Update) are only loaded.
    assert ClientRecordSchema(many=True)._plain_plan is not None
    assert ClientRecordSchema()._plain_plan is not None


def test_a_missing_query_parameter_raises_nothing_on_its_way(monkeypatch):
    """werkzeug's MultiDict.get raised and caught a BadRequestKeyError per parameter not sent."""
    from werkzeug.exceptions import BadRequestKeyError

    raised = []
    original = BadRequestKeyError.__init__

    def counting(self, *args, **kwargs):
        raised.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(BadRequestKeyError, "__init__", counting)
    parser, app = ArgumentsParser(), Flask(__name__)

    class Query(ma.Schema):
        q = ma.fields.String()
        tags = ma.fields.List(ma.fields.String())
        page = ma.fields.Integer(load_default=1)

    with app.test_request_context("/?tags=a&tags=b"):
        assert parser.parse(Query(), location="query") == {"tags": ["a", "b"], "page": 1}
    with app.test_request_context("/?q=x&page=2"):
        assert parser.parse(Query(), location="query") == {"q": "x", "page": 2}
    with app.test_request_context("/?nope=1"):  # unknown query parameters are left out
        assert parser.parse(Query(), location="query") == {"page": 1}
    assert [key for key in raised if key in (("q",), ("tags",), ("page",))] == []


def test_request_metrics_look_their_series_up_once(monkeypatch):
    from backend.api import metrics

    calls = []
    original = metrics.REQUESTS.labels
    monkeypatch.setattr(metrics, "_request_series", {})
    monkeypatch.setattr(metrics.REQUESTS, "labels", lambda *labels: calls.append(labels) or original(*labels))
    before = metrics.REQUESTS.labels("GET", "/lean-test", "200")._value.get()
    for _ in range(3):
        metrics.observe_request("GET", "/lean-test", 200, 0.001)
    metrics.observe_request("BREW", "/lean-test", 200, 0.001)
    metrics.observe_request("BREW", "/lean-test", 200, 0.001)
    assert calls == [
        ("GET", "/lean-test", "200"),
        ("GET", "/lean-test", "200"),
        ("other", "/lean-test", "200"),
    ]
    assert original("GET", "/lean-test", "200")._value.get() == before + 3


def test_an_empty_query_string_parses_as_webargs_would():
    from webargs.flaskparser import FlaskParser
    from werkzeug.exceptions import UnprocessableEntity

    class Paged(ma.Schema):
        q = ma.fields.String()
        page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1))

    class Required(ma.Schema):
        must = ma.fields.String(required=True)

    ours, theirs, app = ArgumentsParser(), FlaskParser(), Flask(__name__)
    for path in ("/", "/?", "/?q=a&page=3"):
        with app.test_request_context(path):
            assert ours.parse(Paged(), location="query") == theirs.parse(Paged(), location="query")
    with app.test_request_context("/"):
        with pytest.raises(UnprocessableEntity) as refused:
            ours.parse(Required(), location="query")
        assert refused.value.data["messages"] == {"query": {"must": ["Missing data for required field."]}}
