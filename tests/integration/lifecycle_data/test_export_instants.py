"""The export writes instants with a cheaper SQL expression than `to_json` (the API's format,
docs/benchmarks.md `export`): it must give `to_json`'s text for every timestamptz value, on the
real PostgreSQL, in the time zone the export's snapshot sets (UTC)."""

from __future__ import annotations

from psycopg import sql
from sqlalchemy import text

from backend.infrastructure.exports import instant_as_api_text

# Fractions with and without trailing zeros, the smallest and largest microsecond, years of
# fewer than 4 and more than 4 digits, BC, the range's ends, the infinities, other offsets
# written in (rendered in UTC), leap day / second-59 boundaries, and NULL.
EDGE_VALUES = [
    "2026-12-05 10:00:00.123456+00",
    "2026-12-05 10:00:00+00",
    "2026-12-05 10:00:00.1+00",
    "2026-12-05 10:00:00.12+00",
    "2026-12-05 10:00:00.100000+00",
    "2026-12-05 10:00:00.000001+00",
    "2026-12-05 10:00:00.999999+00",
    "2026-12-05 10:00:00.0000005+00",
    "2024-02-29 23:59:59.999999+00",
    "2031-03-01 09:00:00+05:30",
    "2031-03-01 09:00:00-09:45",
    "1969-12-31 23:59:59.5+00",
    "1900-01-01 00:00:00+00",
    "0999-01-01 00:00:00+00",
    "0001-01-01 00:00:00+00",
    "0001-12-31 23:59:59.999999+00 BC",
    "4714-11-24 00:00:00+00 BC",
    "9999-12-31 23:59:59.999999+00",
    "10000-01-01 00:00:00+00",
    "294276-12-31 23:59:59.999999+00",
    "infinity",
    "-infinity",
    None,
]


def export_expression() -> str:
    return instant_as_api_text(sql.Identifier("v")).as_string(None)


def differences(connection, values_sql: str, parameters: dict, expression: str | None = None) -> list[tuple]:
    """(value, to_json's text, the expression's text) wherever the two differ; the expression is
    the export's unless given."""
    expression = expression or export_expression()
    rows = connection.execute(
        text(
            f"SELECT v::text, to_json(v) #>> '{{}}', {expression} FROM ({values_sql}) AS s"
            f" WHERE (to_json(v) #>> '{{}}') IS DISTINCT FROM {expression}"
        ),
        parameters,
    )
    return [tuple(row) for row in rows]


def in_export_time_zone(connection) -> None:
    # As the export's snapshot does (exports.py); a different session zone first, so a
    # leftover zone cannot make the comparison pass.
    connection.execute(text("SET LOCAL TimeZone = 'America/St_Johns'"))
    connection.execute(text("SELECT set_config('TimeZone', 'UTC', true)"))


def test_instants_are_written_exactly_as_to_json_writes_them_for_edge_values(owner):
    with owner.begin() as connection:
        in_export_time_zone(connection)
        one = sql.SQL("CAST({} AS timestamptz)").format(sql.Literal("2026-12-05 10:00:00.1+00"))
        written = connection.execute(text(f"SELECT {instant_as_api_text(one).as_string(None)}")).scalar_one()
        assert written == "2026-12-05T10:00:00.1+00:00"  # the API's format, not merely equal
        values = "SELECT CAST(x AS timestamptz) AS v FROM unnest(CAST(:values AS text[])) AS x"
        assert differences(connection, values, {"values": EDGE_VALUES}) == []


def test_instants_are_written_exactly_as_to_json_writes_them_over_a_range(owner):
    """200,001 instants ~20 days and an odd number of microseconds apart, from 2 BC to past
    10000: every length of fraction and of year, both eras."""
    with owner.begin() as connection:
        in_export_time_zone(connection)
        values = (
            "SELECT timestamptz '0002-01-01 00:00:00+00 BC' + n * interval '20 days 3 hours 7.000013 seconds'"
            " + (n % 1000003) * interval '1 microsecond' AS v FROM generate_series(0, :n) AS n"
        )
        assert differences(connection, values, {"n": 200_000}) == []


def test_the_comparison_catches_a_different_text(owner):
    """The check itself can fail: PostgreSQL's own text form (or a to_char pattern with a fixed
    fraction) differs from to_json's."""
    values = "SELECT CAST(x AS timestamptz) AS v FROM unnest(CAST(:values AS text[])) AS x"
    with owner.begin() as connection:
        in_export_time_zone(connection)
        assert differences(connection, values, {"values": EDGE_VALUES}, "v::text") != []
        fixed = """to_char(v, 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""
        assert differences(connection, values, {"values": EDGE_VALUES}, fixed) != []
