"""backend/api/pagination.py replaces flask-smorest's private pagination-parameters factory:
flask-smorest offers no public hook for the parameter schema of `paginate()` (its
`PAGINATION_ARGUMENTS_PARSER` parses but does not document). These tests fail as soon as that
internal changes shape, before the bound silently disappears from parsing or the document."""

from __future__ import annotations

import inspect

import marshmallow as ma
from flask_smorest import pagination as smorest_pagination

from backend.api import pagination


def test_paginate_looks_the_factory_up_by_name_at_call_time():
    source = inspect.getsource(smorest_pagination.PaginationMixin.paginate)
    assert "_pagination_parameters_schema_factory(" in source
    assert smorest_pagination._pagination_parameters_schema_factory is pagination.bounded_parameters_schema


def test_the_original_factory_still_takes_the_three_defaults_and_makes_page_and_page_size():
    signature = inspect.signature(pagination._factory)
    assert list(signature.parameters) == ["def_page", "def_page_size", "def_max_page_size"]
    schema = pagination._factory(1, 10, 100)()
    assert set(schema.fields) == {"page", "page_size"}


def test_the_bounded_schema_refuses_a_page_past_the_bound():
    schema = pagination.bounded_parameters_schema(1, 10, 100)()
    assert schema.load({"page": pagination.MAX_PAGE, "page_size": 100}).page == pagination.MAX_PAGE
    try:
        schema.load({"page": pagination.MAX_PAGE + 1})
    except ma.ValidationError as error:
        assert "page" in error.messages
    else:
        raise AssertionError("page past MAX_PAGE accepted")


def test_the_pagination_header_component_is_still_registered_by_the_overridden_method():
    # backend/api/extension.Api._register_pagination_header documents X-Pagination as a JSON
    # object; flask-smorest has no public hook for that component.
    import flask_smorest
    from flask_smorest.spec import APISpecMixin

    assert "self._register_pagination_header()" in inspect.getsource(APISpecMixin)
    assert issubclass(flask_smorest.Api, APISpecMixin)
