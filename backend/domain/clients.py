"""A worker's client, as stored in the tenant schema, and the rules for its fields."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from backend.domain.errors import Invalid

NAME_MAX = 200
EMAIL_MAX = 254
PHONE_MAX = 40
NOTES_MAX = 10_000
SEARCH_MAX = 100
# Digits, spaces and the usual separators; at least three digits somewhere.
PHONE_RE = re.compile(r"^\+?[0-9 ()./-]+$")


@dataclass(frozen=True)
class Client:
    id: uuid.UUID
    name: str
    email: str | None
    phone: str | None
    notes: str | None  # the worker's own notes: never shown to the client
    created_at: datetime
    updated_at: datetime


def clean_client_fields(fields: dict) -> dict:
    """Trim and check the writable fields present in `fields` (a partial update passes only
    some); raise Invalid with every problem at once. Blank optional text becomes None."""
    cleaned: dict = {}
    problems: dict[str, list[str]] = {}
    if "name" in fields:
        name = (fields["name"] or "").strip()
        if not 1 <= len(name) <= NAME_MAX:
            problems["name"] = [f"1 to {NAME_MAX} characters"]
        cleaned["name"] = name
    if "email" in fields:
        cleaned["email"] = _blank_to_none(fields["email"])
    if "phone" in fields:
        phone = _blank_to_none(fields["phone"])
        if phone is not None and (not PHONE_RE.fullmatch(phone) or sum(c.isdigit() for c in phone) < 3):
            problems["phone"] = ["digits, spaces and + ( ) . / - only, at least 3 digits"]
        cleaned["phone"] = phone
    if "notes" in fields:
        cleaned["notes"] = _blank_to_none(fields["notes"])
    if problems:
        raise Invalid(problems)
    return cleaned


def search_pattern(query: str) -> str:
    """A LIKE pattern matching values that start with `query`, its wildcards escaped.

    The caller compares it with `lower(column)` after lowering it in SQL too, so case
    folding is PostgreSQL's on both sides."""
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None
