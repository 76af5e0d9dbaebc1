"""List pagination, the flask-smorest way (`?page=&page_size=`, metadata in `X-Pagination`),
with a documented upper bound on `page`.

flask-smorest bounds `page_size` but not `page`: `page=10**25` made an OFFSET PostgreSQL
cannot hold and the request failed with a 500 (found by the API fuzzer,
tests/integration/proof). Its parameter schema comes from one module-level factory, which
`paginate()` looks up at call time; wrapping it here adds the bound to the parsing and to the
OpenAPI document at once, for every paginated route."""

from __future__ import annotations

import marshmallow as ma
from flask_smorest import pagination

MAX_PAGE = 10_000_000  # with the largest page size, an offset of 10^9 rows: far past any tenant
_factory = pagination._pagination_parameters_schema_factory


def bounded_parameters_schema(def_page: int, def_page_size: int, def_max_page_size: int) -> type[ma.Schema]:
    base = _factory(def_page, def_page_size, def_max_page_size)

    class PaginationParametersSchema(base):
        page = ma.fields.Integer(load_default=def_page, validate=ma.validate.Range(min=1, max=MAX_PAGE))

    return PaginationParametersSchema


def install() -> None:
    if not hasattr(pagination, "_pagination_parameters_schema_factory"):
        raise RuntimeError("flask-smorest changed its pagination internals: review backend/api/pagination.py")
    pagination._pagination_parameters_schema_factory = bounded_parameters_schema
