"""Schema names are generated, validated with a strict rule and always quoted."""

import uuid

import pytest

from backend.core.tenancy import InvalidSchemaName, quoted_schema, validate_schema_name
from backend.domain.errors import Invalid
from backend.domain.tenants import schema_name_for, validate_slug

BAD_SCHEMA_NAMES = [
    'tenant_"; DROP SCHEMA shared CASCADE; --',
    "tenant_abc.def",
    "pg_catalog",
    "pg_tenant_" + "0" * 32,
    "TENANT_" + "A" * 32,
    "tenant_" + "0" * 31,
    "tenant_" + "0" * 33,
    "tenant_" + "0" * 57,  # 64 characters
    "public",
    "shared",
    "tenant_" + "g" * 32,
    "",
    None,
    42,
]


@pytest.mark.parametrize("name", BAD_SCHEMA_NAMES)
def test_refuses_anything_but_a_generated_schema_name(name):
    with pytest.raises(InvalidSchemaName):
        validate_schema_name(name)
    with pytest.raises(InvalidSchemaName):
        quoted_schema(name)


def test_generated_names_validate_and_quote():
    name = schema_name_for(uuid.uuid4())
    assert validate_schema_name(name) == name
    assert quoted_schema(name) == f'"{name}"'


@pytest.mark.parametrize("slug", ["acme", "a1b", "my-shop-2", "x" * 40])
def test_accepts_good_slugs(slug):
    assert validate_slug(slug) == slug


@pytest.mark.parametrize("slug", ["Robert'); DROP TABLE", "tenant.x", "ab", "x" * 41, "shared", "api"])
def test_refuses_bad_slugs(slug):
    with pytest.raises(Invalid):
        validate_slug(slug)
