"""The head script is pg_dump's output without its session settings, with the template's
name as a placeholder, and refuses what it cannot reproduce for another schema."""

from __future__ import annotations

import pytest

from backend.infrastructure.ddl_cache import PLACEHOLDER, HeadScriptError, is_template, to_script

TEMPLATE = "tenant_0123456789ab0123456789abcdef0123"

DUMP = f"""--
-- PostgreSQL database dump
--

\\restrict AbCdEf123

SET statement_timeout = 0;
SET lock_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;

CREATE SCHEMA {TEMPLATE};

CREATE FUNCTION {TEMPLATE}.touch() RETURNS trigger
    LANGUAGE plpgsql
    AS $_$
BEGIN
-- kept: inside the body
SET work_mem = '4MB';
RETURN NEW;
END
$_$;

CREATE TABLE {TEMPLATE}.clients (
    id uuid NOT NULL
);

SET default_tablespace = '';
GRANT USAGE ON SCHEMA {TEMPLATE} TO saas_app;

\\unrestrict AbCdEf123
"""


def test_session_lines_go_function_bodies_stay_and_the_name_becomes_the_placeholder():
    script = to_script(DUMP, TEMPLATE)
    lines = script.splitlines()
    assert TEMPLATE not in script
    assert f"CREATE SCHEMA {PLACEHOLDER};" in lines
    assert f"GRANT USAGE ON SCHEMA {PLACEHOLDER} TO saas_app;" in lines
    for gone in ("SET statement_timeout = 0;", "SET lock_timeout = 0;", "SET default_tablespace = '';"):
        assert gone not in lines
    assert not any(line.startswith(("\\", "-- PostgreSQL")) for line in lines)
    assert "SELECT pg_catalog.set_config('search_path', '', false);" not in lines
    # Transaction-local settings only, and the default search path back at the end.
    assert lines[:2] == [
        "SET LOCAL check_function_bodies = false;",
        "SELECT pg_catalog.set_config('search_path', '', true);",
    ]
    assert lines[-1] == "SET LOCAL search_path TO DEFAULT;"
    assert "-- kept: inside the body" in lines and "SET work_mem = '4MB';" in lines


def test_a_dump_naming_another_tenant_schema_is_refused():
    other = "tenant_" + "f" * 32
    with pytest.raises(HeadScriptError):
        to_script(DUMP + f"CREATE VIEW {TEMPLATE}.v AS SELECT * FROM {other}.clients;\n", TEMPLATE)


def test_a_dump_without_the_schema_is_refused():
    with pytest.raises(HeadScriptError):
        to_script(DUMP.replace(f"CREATE SCHEMA {TEMPLATE};", ""), TEMPLATE)


def test_template_names_can_never_be_a_tenant_uuid4():
    assert is_template(TEMPLATE)
    assert not is_template("tenant_0123456789ab4123456789abcdef0123")
