"""pg_dump's script split into single statements for a Citus coordinator (restore.py)."""

from __future__ import annotations

from backend.infrastructure.sql.restore import split_statements


def lines(text: str) -> list[bytes]:
    return [line.encode() + b"\n" for line in text.splitlines()]


def test_each_statement_ends_at_a_semicolon_closing_its_line():
    script = lines(
        "CREATE SCHEMA t;\nCREATE TABLE t.a (\n    id uuid NOT NULL\n);\n"
        "ALTER TABLE ONLY t.a\n    ADD CONSTRAINT a_pkey PRIMARY KEY (id);"
    )
    assert split_statements(script) == [
        b"CREATE SCHEMA t;\n",
        b"CREATE TABLE t.a (\n    id uuid NOT NULL\n);\n",
        b"ALTER TABLE ONLY t.a\n    ADD CONSTRAINT a_pkey PRIMARY KEY (id);\n",
    ]


def test_a_semicolon_inside_a_string_or_a_dollar_quoted_body_does_not_end_it():
    script = lines(
        "COMMENT ON TABLE t.a IS 'one;\nit''s two;';\n"
        "CREATE FUNCTION t.f() RETURNS int AS $body$\nSELECT 1;\n$body$ LANGUAGE sql;\n"
        "SELECT 1;"
    )
    assert split_statements(script) == [
        b"COMMENT ON TABLE t.a IS 'one;\nit''s two;';\n",
        b"CREATE FUNCTION t.f() RETURNS int AS $body$\nSELECT 1;\n$body$ LANGUAGE sql;\n",
        b"SELECT 1;\n",
    ]
