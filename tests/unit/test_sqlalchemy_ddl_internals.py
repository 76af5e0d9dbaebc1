"""step_scripts.OfflineBind forwards SQLAlchemy's private `_run_ddl_visitor` (what
`Table.create(bind)` and an Enum's type events call on a bind): SQLAlchemy has no public
protocol for such a bind. This test fails as soon as that internal changes shape, so the
pin in setup.cfg is revisited instead of step scripts silently losing enums."""

from __future__ import annotations

import inspect

import sqlalchemy as sa
from sqlalchemy import create_mock_engine

from backend.infrastructure.step_scripts import OfflineBind


def test_table_create_reaches_the_bind_through_run_ddl_visitor():
    emitted: list[str] = []
    engine = create_mock_engine(
        "postgresql+psycopg://", lambda sql, *a, **k: emitted.append(str(sql.compile(dialect=engine.dialect)))
    )
    table = sa.Table(
        "labels",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tone", sa.Enum("warm", "cold", name="tone")),
    )
    table.create(OfflineBind(engine))
    assert any(statement.startswith("CREATE TYPE tone") for statement in emitted)
    assert any("CREATE TABLE labels" in statement for statement in emitted)


def test_the_mock_connection_still_has_the_method_with_its_shape():
    parameters = list(
        inspect.signature(type(create_mock_engine("postgresql://", print))._run_ddl_visitor).parameters
    )
    assert parameters[:3] == ["self", "visitorcallable", "element"]
