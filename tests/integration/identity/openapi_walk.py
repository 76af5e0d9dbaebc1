"""Walk the app's OpenAPI document: every operation, a request for it with path parameters
and a minimal body derived from the document itself, so routes added later are covered."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
MUTATING = {"post", "put", "patch", "delete"}
PARAM_RE = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict

    @property
    def key(self) -> str:
        return f"{self.method.upper()} {self.path}"

    @property
    def roles(self) -> list[str] | None:
        return self.spec.get("x-roles")

    @property
    def access(self) -> dict:
        return self.spec.get("x-access") or {}

    @property
    def mutating(self) -> bool:
        return self.method in MUTATING

    @property
    def has_id(self) -> bool:
        return bool(PARAM_RE.search(self.path))


def operations(document: dict) -> Iterator[Operation]:
    for path, item in sorted(document["paths"].items()):
        for method in HTTP_METHODS:
            if method in item:
                yield Operation(method, path, item[method])


def _resolve(schema: dict, document: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def sample(schema: dict, document: dict):
    """The smallest value the schema accepts: required properties only."""
    schema = _resolve(schema, document)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        properties = schema.get("properties", {})
        return {
            name: sample(properties.get(name, {}), document)
            for name in schema.get("required", [])
            if not properties.get(name, {}).get("readOnly")
        }
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return True
    return {
        "email": "someone@example.com",
        "uuid": str(uuid.uuid4()),
        "date-time": datetime.now(UTC).isoformat(),
        "date": datetime.now(UTC).date().isoformat(),
        "binary": b"file",
    }.get(schema.get("format"), "x")


def body_kwargs(operation: Operation, document: dict) -> dict:
    """Test-client keyword arguments carrying a minimal body of the declared content type."""
    content = operation.spec.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        return {"json": sample(content["application/json"].get("schema", {}), document)}
    if "multipart/form-data" in content:
        fields = sample(content["multipart/form-data"].get("schema", {}), document)
        data = {
            name: (io.BytesIO(value), "file.txt", "text/plain") if isinstance(value, bytes) else value
            for name, value in fields.items()
        }
        return {"data": data, "content_type": "multipart/form-data"}
    return {}


def concrete_path(operation: Operation, objects: Callable[[str], uuid.UUID | None]) -> str:
    """Fill each path parameter: a real object of the tenant when the collection before it
    has a factory (`objects(collection)`), a random UUID otherwise."""

    def fill(match: re.Match) -> str:
        before = operation.path[: match.start()].rstrip("/").rsplit("/", 1)[-1]
        return str(objects(before) or uuid.uuid4())

    return PARAM_RE.sub(fill, operation.path)
