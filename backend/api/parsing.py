"""The request-arguments parser every blueprint uses (webargs, as flask-smorest wires it).

Two refusals the schemas cannot express, both found by the API fuzzer (tests/integration/proof):

- A JSON body is required wherever one is documented (flask-smorest documents every JSON
  body as required); webargs would read a missing body as `{}`, so a PATCH without a body
  answered 200.
- PostgreSQL `text` cannot hold a NUL character: a string carrying one would reach
  the database and fail there with a 500. It is refused up front as a 422 on the field,
  whatever the location (query string, JSON body, form)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import marshmallow as ma
from webargs.flaskparser import FlaskParser

NUL = "\x00"
NUL_MESSAGE = "NUL characters are not allowed."
BODY_REQUIRED = "A JSON body is required."


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, Mapping):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    return False


def _pairs(location_data: object) -> Iterator[tuple[str, object]]:
    """Every (name, value) of the location, each value of a repeated query key included."""
    raw = getattr(location_data, "data", location_data)  # webargs' MultiDictProxy wraps it
    if hasattr(raw, "getlist"):
        yield from raw.items(multi=True)
    elif isinstance(raw, Mapping):
        yield from raw.items()


class ArgumentsParser(FlaskParser):
    def pre_load(self, location_data, *, schema, req, location):
        if location == "json" and not req.get_data(cache=True):
            raise ma.ValidationError({"body": [BODY_REQUIRED]})
        refused = {str(name): [NUL_MESSAGE] for name, value in _pairs(location_data) if _holds_nul(value)}
        if refused:
            raise ma.ValidationError(refused)
        return location_data
