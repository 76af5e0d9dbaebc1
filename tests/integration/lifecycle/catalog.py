"""Everything PostgreSQL's catalog says about one schema, with the schema's own name replaced
by a placeholder, so two tenants' schemas can be compared with `==`.

Covers relations (tables, views, sequences, indexes; kind, persistence, access method,
options, owner, privileges, row security, comments), columns (position, type, nullability,
default, identity, generated, collation, storage, privileges, comments), constraints (their
full definition, deferrability, validity), indexes, sequences (parameters and state),
triggers, functions, types (enum labels), policies, rules, extended statistics, default
privileges, the schema itself, and the rows of every table (data migrations and
`alembic_version`). Physical details that legitimately differ (OIDs, attnum gaps left by
dropped columns) are left out.
"""

from __future__ import annotations

from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import Connection

QUERIES = {
    "schema": """
        SELECT pg_get_userbyid(n.nspowner), n.nspacl::text, obj_description(n.oid, 'pg_namespace')
        FROM pg_namespace n WHERE n.nspname = :schema""",
    "relations": """
        SELECT c.relname, c.relkind, c.relpersistence, am.amname, c.reloptions::text,
               pg_get_userbyid(c.relowner), c.relacl::text, c.relrowsecurity,
               c.relforcerowsecurity, c.relreplident, obj_description(c.oid, 'pg_class')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_am am ON am.oid = c.relam
        WHERE n.nspname = :schema ORDER BY c.relname""",
    "columns": """
        SELECT c.relname,
               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum),
               a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,
               a.attgenerated, pg_get_expr(d.adbin, d.adrelid), co.collname, a.attstorage,
               a.attcompression, a.attacl::text, col_description(c.oid, a.attnum)
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        LEFT JOIN pg_collation co ON co.oid = a.attcollation
        WHERE n.nspname = :schema AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY c.relname, a.attnum""",
    "constraints": """
        SELECT coalesce(c.relname, t.typname), con.conname, con.contype,
               pg_get_constraintdef(con.oid), con.condeferrable, con.condeferred,
               con.convalidated, con.connoinherit, obj_description(con.oid, 'pg_constraint')
        FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
        LEFT JOIN pg_class c ON c.oid = con.conrelid
        LEFT JOIN pg_type t ON t.oid = con.contypid
        WHERE n.nspname = :schema ORDER BY 1, 2""",
    "indexes": """
        SELECT ic.relname, pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary,
               i.indisexclusion, i.indimmediate, i.indisclustered, i.indisvalid,
               i.indisreplident, i.indnullsnotdistinct
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        WHERE n.nspname = :schema ORDER BY ic.relname""",
    "sequences": """
        SELECT s.sequencename, s.data_type::text, s.start_value, s.min_value, s.max_value,
               s.increment_by, s.cycle, s.cache_size, s.last_value,
               (SELECT tc.relname || '.' || a.attname || ':' || d.deptype::text
                FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid
                JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                WHERE d.classid = 'pg_class'::regclass AND d.objid = sc.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
        FROM pg_sequences s
        JOIN pg_namespace n ON n.nspname = s.schemaname
        JOIN pg_class sc ON sc.relname = s.sequencename AND sc.relnamespace = n.oid
        WHERE s.schemaname = :schema ORDER BY s.sequencename""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = :schema AND NOT t.tgisinternal ORDER BY 1, 2""",
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid),
               pg_get_userbyid(p.proowner), p.proacl::text, obj_description(p.oid, 'pg_proc')
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = :schema AND p.prokind IN ('f', 'p', 'w') ORDER BY 1, 2""",
    "types": """
        SELECT t.typname, t.typtype, pg_get_userbyid(t.typowner), t.typacl::text,
               format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault,
               (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder)
                FROM pg_enum e WHERE e.enumtypid = t.oid)::text
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        LEFT JOIN pg_class c ON c.oid = t.typrelid
        WHERE n.nspname = :schema AND (c.oid IS NULL OR c.relkind = 'c')
          AND t.typname NOT LIKE '\\_%' ORDER BY 1""",
    "views": """
        SELECT c.relname, pg_get_viewdef(c.oid)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = :schema AND c.relkind IN ('v', 'm') ORDER BY 1""",
    "policies": """
        SELECT tablename, policyname, permissive, roles::text, cmd, qual, with_check
        FROM pg_policies WHERE schemaname = :schema ORDER BY 1, 2""",
    "rules": """
        SELECT tablename, rulename, definition FROM pg_rules
        WHERE schemaname = :schema ORDER BY 1, 2""",
    "statistics": """
        SELECT s.stxname, pg_get_statisticsobjdef(s.oid)
        FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
        WHERE n.nspname = :schema ORDER BY 1""",
    "default_privileges": """
        SELECT pg_get_userbyid(d.defaclrole), d.defaclobjtype, d.defaclacl::text
        FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
        WHERE n.nspname = :schema ORDER BY 1, 2""",
}


def _normalise(value: object, schema: str) -> object:
    if isinstance(value, str):
        return value.replace(f'"{schema}"', "<schema>").replace(schema, "<schema>")
    return value


def table_rows(connection: Connection, schema: str) -> dict[str, list[str]]:
    """Every row of every table of the schema, as sorted JSON text."""
    names = connection.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') ORDER BY 1"
        ),
        {"schema": schema},
    ).scalars()
    rows = {}
    for name in list(names):
        query = sql.SQL("SELECT to_jsonb(t)::text FROM {}.{} AS t ORDER BY 1").format(
            sql.Identifier(schema), sql.Identifier(name)
        )
        rows[name] = list(connection.exec_driver_sql(query.as_string(None)).scalars())
    return rows


def snapshot(connection: Connection, schema: str) -> dict[str, list[tuple]]:
    result: dict[str, list] = {}
    for name, query in QUERIES.items():
        rows = connection.execute(text(query), {"schema": schema}).all()
        result[name] = [tuple(_normalise(value, schema) for value in row) for row in rows]
    result["rows"] = sorted(table_rows(connection, schema).items())
    return result
