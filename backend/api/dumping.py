"""A schema whose `dump` skips marshmallow's per-field machinery for plain fields.

marshmallow dumps each value through `Field.serialize` (attribute lookup through its accessor,
default handling, then the field's conversion): about a tenth of the CPU of a list request in
the requests benchmark's profile. For a schema whose dumped fields are all of the plain kinds
below, `dump` reads each attribute and converts it directly, with the same result (tests/unit/
test_lean_request_path.py compares both on every kind and on None). Anything else (another
field kind, a dotted attribute, a dump hook, a mapping instead of an object, a missing
attribute) goes through marshmallow itself. Loading and the OpenAPI document are untouched:
the fields are the schema's own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import marshmallow as ma

_MISSING = object()


def _text(value: Any) -> Any:
    return value if type(value) is str or value is None else ma.utils.ensure_text_type(value)


def _string_of(value: Any) -> Any:
    return None if value is None else str(value)


def _iso_datetime(value: Any) -> Any:
    return None if value is None else dt.datetime.isoformat(value)


def _converter(field: ma.fields.Field) -> Callable[[Any], Any] | None:
    """The direct conversion for a plain field, or None (marshmallow dumps the schema)."""
    kind = type(field)
    if kind in (ma.fields.String, ma.fields.Email):
        return _text
    if kind is ma.fields.UUID:
        return _string_of
    if kind in (ma.fields.DateTime, ma.fields.AwareDateTime, ma.fields.NaiveDateTime):
        # AwareDateTime and NaiveDateTime check awareness when loading only.
        if (field.format or field.DEFAULT_FORMAT) in ("iso", "iso8601"):
            return _iso_datetime
    return None


def _has_dump_hooks(schema: ma.Schema) -> bool:
    hooks = getattr(schema, "_hooks", None) or {}
    return any(hooks.get(name) for name in ("pre_dump", "post_dump"))


class PlainDumpSchema(ma.Schema):
    """`dump` of plain fields without marshmallow's per-field machinery (module docstring)."""

    _plain_plan: list[tuple[str, str, Callable[[Any], Any]]] | None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        plan = []
        for name, field in self.dump_fields.items():
            convert = _converter(field)
            attribute = field.attribute or name
            if convert is None or "." in attribute:
                plan = None
                break
            plan.append((field.data_key if field.data_key is not None else name, attribute, convert))
        self._plain_plan = None if plan is None or _has_dump_hooks(self) else plan

    def dump(self, obj: Any, *, many: bool | None = None):
        many = self.many if many is None else bool(many)
        if self._plain_plan is None:
            return super().dump(obj, many=many)
        objects = obj if many else (obj,)
        dumped = []
        for one in objects:
            row = self._plain_row(one)
            if row is None:
                return super().dump(obj, many=many)
            dumped.append(row)
        return dumped if many else dumped[0]

    def _plain_row(self, obj: Any) -> dict | None:
        if isinstance(obj, Mapping):
            return None
        row = {}
        for key, attribute, convert in self._plain_plan:
            value = getattr(obj, attribute, _MISSING)
            if value is _MISSING:
                return None
            row[key] = convert(value)
        return row
