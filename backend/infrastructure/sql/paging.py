"""A page of rows and the number of rows the query matches, in one round trip."""

from __future__ import annotations

from sqlalchemy import Row, Select, func, select
from sqlalchemy.engine import Connection


def page_with_total(
    connection: Connection, query: Select, *, offset: int, limit: int
) -> tuple[list[Row], int]:
    """The total rides on every row of the page as a window count over the matching rows
    (computed before LIMIT), so a list costs one statement instead of a count and a page.
    Only a page past the end, which has no row to carry it, asks for the count alone."""
    rows = connection.execute(
        query.add_columns(func.count().over().label("total_count")).offset(offset).limit(limit)
    ).all()
    if rows:
        return rows, rows[0].total_count
    total = connection.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    return [], total
