"""The patterns the OpenAPI document states (backend/api/rules.py) accept exactly what the
domain's rules accept, so generated and fuzzed requests that follow the document pass."""

from __future__ import annotations

import re

import marshmallow as ma
import pytest

from backend.api import rules
from backend.domain.clients import clean_client_fields
from backend.domain.errors import Invalid
from backend.domain.tenants import validate_slug, validate_workspace_name

SLUGS = ["acme", "a-b", "ab", "a--b", "-ab", "ab-", "api", "pg-x", "x" * 40, "x" * 41, "Acme", "a_b", ""]
PHONES = ["", "   ", "+49 30 1234", "12", "123", "(030) 12/34.5-6", "+1+2 3", "12a3", " 123 ", "\t123"]
PHONES += ["\x1c12 3\x85", "\ufeff123"]
# \x1c-\x1f and \x85 are space to Python (the domain strips them), not to ECMA 262's \s; \ufeff
# the other way round (found by the API fuzzer: a workspace named "\x1e").
NAMES = ["", " ", "\t\n", "A", " A ", "Ada Lovelace", "\u00a0", "\x1e", "\x85\x1c", "\ufeff", "\u3000x"]
EMAILS = ["a@b.co", "0@0.a", "a.b@x-y.com", "a..b@x.com", "a@b", "a@-b.com", "x" * 65 + "@b.co", "a b@c.de"]


def domain_accepts(check, value) -> bool:
    try:
        check(value)
    except (Invalid, ma.ValidationError):
        return False
    return True


@pytest.mark.parametrize("name", ["NON_BLANK", "PHONE", "SLUG", "OPTIONAL_SLUG", "EMAIL"])
def test_patterns_mean_the_same_in_python_and_ecma_262(name):
    """`\\s`, `\\d`, `\\w` and `\\b` differ between Python's `re` and ECMA 262 (what JSON Schema
    readers, generators and fuzzers use): a document pattern spells its classes out."""
    assert not re.search(r"(?<!\\)\\[sSdDwWbB]", getattr(rules, name)), name


def test_the_space_class_is_what_the_domain_strips():
    space = re.compile(f"[{rules.SPACE}]")
    assert all(bool(space.fullmatch(chr(c))) == chr(c).isspace() for c in range(0x110000))


@pytest.mark.parametrize("slug", SLUGS)
def test_the_slug_pattern_is_the_slug_rule(slug):
    assert bool(re.search(rules.SLUG, slug)) == domain_accepts(validate_slug, slug)


@pytest.mark.parametrize("phone", PHONES)
def test_the_phone_pattern_is_the_phone_rule(phone):
    documented = bool(re.search(rules.PHONE, phone))
    assert documented == domain_accepts(lambda value: clean_client_fields({"phone": value}), phone)


@pytest.mark.parametrize("name", NAMES)
def test_the_non_blank_pattern_is_the_name_rule(name):
    assert bool(re.search(rules.NON_BLANK, name)) == domain_accepts(validate_workspace_name, name)
    assert bool(re.search(rules.NON_BLANK, name)) == domain_accepts(
        lambda value: clean_client_fields({"name": value}), name
    )


@pytest.mark.parametrize("email", EMAILS)
def test_the_email_field_accepts_what_its_pattern_accepts(email):
    field = rules.Email()
    assert bool(re.search(rules.EMAIL, email)) == domain_accepts(field.deserialize, email)
