"""The request-arguments parser every blueprint uses (webargs, as flask-smorest wires it).

Two refusals the schemas cannot express, both found by the API fuzzer (tests/integration/proof):

- A JSON body is required wherever one is documented (flask-smorest documents every JSON
  body as required); webargs would read a missing body as `{}`, so a PATCH without a body
  answered 200.
- PostgreSQL `text` cannot hold a NUL character, and nothing can encode a lone UTF-16
  surrogate (`"\ud800"`, valid JSON escape, no character): a string carrying one would fail
  deep inside (the driver, a digest) with a 500. Both are refused up front as a 422 on the
  field, whatever the location (query string, JSON body, form).
- JSON nested thousands of levels deep exhausts Python's recursion in the decoder: it is a
  malformed body (400 `bad_request`), like any other that does not decode."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import marshmallow as ma
from flask.json.provider import DefaultJSONProvider
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.exceptions import BadRequest

NUL = "\x00"
UNSTORABLE_MESSAGE = "NUL characters and lone surrogates are not allowed."
# Documented on every request string (JSON Schema / ECMA 262); lone surrogates have no pattern.
NUL_FREE_PATTERN = r"^[^\x00]*$"
BODY_REQUIRED = "A JSON body is required."
MULTIPART_LOCATIONS = frozenset({"multipart", "form", "files"})
QUERY_LOCATIONS = frozenset({"query", "querystring"})


def unstorable_text(text: str) -> bool:
    """A NUL, or a lone surrogate (which no encoding can carry)."""
    if NUL in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _holds_unstorable(value: object) -> bool:
    """Walks the value without recursion: a decoded body may be nested very deep."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if unstorable_text(item):
                return True
        elif isinstance(item, Mapping):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


def _pairs(location_data: object) -> Iterator[tuple[str, object]]:
    """Every (name, value) of the location, each value of a repeated query key included."""
    raw = getattr(location_data, "data", location_data)  # webargs' MultiDictProxy wraps it
    if hasattr(raw, "getlist"):
        yield from raw.items(multi=True)
    elif isinstance(raw, Mapping):
        yield from raw.items()


class QueryArgs(Mapping):
    """The query string as webargs reads it, without werkzeug's `MultiDict.get` raising and
    catching a BadRequestKeyError (an HTTP exception object) for every parameter not sent."""

    __slots__ = ("_args",)

    def __init__(self, args) -> None:
        self._args = args

    def get(self, key, default=None):
        return self._args.get(key, default) if key in self._args else default

    def getlist(self, key) -> list:
        return self._args.getlist(key)

    def items(self, multi: bool = False):
        return self._args.items(multi=multi)

    def __getitem__(self, key):
        return self._args[key]

    def __contains__(self, key) -> bool:
        return key in self._args

    def __iter__(self):
        return iter(self._args)

    def __len__(self) -> int:
        return len(self._args)


class ArgumentsParser(FlaskParser):
    def load_querystring(self, req, schema):
        return MultiDictProxy(QueryArgs(req.args), schema, known_multi_fields=tuple(self.KNOWN_MULTI_FIELDS))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._schemas: dict[type, ma.Schema] = {}

    def parse(self, argmap, req=None, **kwargs):
        # flask-smorest's `paginate()` hands its parameter schema over as a class, and webargs
        # builds a schema from a class (deep-copying its declared fields) for every request:
        # one instance per class instead (a schema keeps no state between loads).
        if isinstance(argmap, type) and issubclass(argmap, ma.Schema):
            argmap = self._schemas.get(argmap) or self._schemas.setdefault(argmap, argmap())
        if (
            kwargs.get("location") in QUERY_LOCATIONS
            and kwargs.get("validate") is None
            and isinstance(argmap, ma.Schema)
            and not (req or self.get_default_request()).query_string
        ):
            # No query string (most list requests): nothing to read, check or refuse but the
            # schema's own defaults and required fields; webargs' proxies and hooks are skipped.
            try:
                return argmap.load({})
            except ma.ValidationError:
                pass  # webargs refuses it (422) the usual way
        return super().parse(argmap, req, **kwargs)

    def load_json(self, req, schema):
        try:
            return super().load_json(req, schema)
        except RecursionError:
            raise BadRequest("JSON nested too deeply") from None

    def pre_load(self, location_data, *, schema, req, location):
        # A body of the wrong type is a malformed request (400), not a body missing fields.
        if location in MULTIPART_LOCATIONS and req.mimetype != "multipart/form-data":
            raise BadRequest("expected multipart/form-data")
        if location == "json" and req.get_data(cache=True) and not req.is_json:
            raise BadRequest("expected application/json")
        if location == "json" and not req.get_data(cache=True):
            raise ma.ValidationError({"body": [BODY_REQUIRED]})
        refused = {
            str(key): [UNSTORABLE_MESSAGE]
            for key, value in _pairs(location_data)
            if _holds_unstorable(key) or _holds_unstorable(value)
        }
        if refused:
            raise ma.ValidationError(refused)
        return location_data


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON (`request.get_json`, read by the limiter's account keys): a body nested
    too deep to decode is malformed JSON (ValueError, which `get_json` turns into a 400 or,
    with `silent=True`, into None), never a RecursionError."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


class JsonBoolean(ma.fields.Boolean):
    """A JSON `true` or `false`, nothing else: marshmallow's Boolean also takes 0, 1, "yes",
    "on"..., which the document (type: boolean) says are invalid (found by the API fuzzer)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
