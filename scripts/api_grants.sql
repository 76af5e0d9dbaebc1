-- The API's database role and everything granted to it directly (docs/security-database.md,
-- "The API's role and grants"). Run as any role of the database:
--
--   psql "$MIGRATION_DATABASE_URL" -v role=saas_app -f scripts/api_grants.sql
--
-- One row per object: role attributes and settings, the database, schemas, tables (or their
-- columns), sequences and functions it holds a privilege on, and its role memberships (the
-- tenant roles summed up: one per tenant). PUBLIC's defaults (EXECUTE on the functions that
-- keep it, CONNECT/TEMPORARY revoked on the database by the bootstrap) are shown where they
-- apply to the role.
WITH api AS (SELECT oid, rolname FROM pg_catalog.pg_roles WHERE rolname = :'role'),
granted AS (
  SELECT 'role' AS kind, a.rolname::text AS object,  -- text: the union's type (name would cut at 63)
         concat_ws(', ',
           CASE WHEN r.rolsuper THEN 'SUPERUSER' ELSE 'NOSUPERUSER' END,
           CASE WHEN r.rolcreaterole THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END,
           CASE WHEN r.rolcreatedb THEN 'CREATEDB' ELSE 'NOCREATEDB' END,
           CASE WHEN r.rolinherit THEN 'INHERIT' ELSE 'NOINHERIT' END,
           CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' ELSE 'NOBYPASSRLS' END,
           CASE WHEN r.rolcanlogin THEN 'LOGIN' ELSE 'NOLOGIN' END,
           (SELECT string_agg(setting, ', ' ORDER BY setting)
              FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) AS setting
             WHERE s.setrole = a.oid AND s.setdatabase = 0)) AS privileges
    FROM api a JOIN pg_catalog.pg_roles r ON r.oid = a.oid
  UNION ALL
  SELECT 'database', d.datname,
         concat_ws(', ',
           CASE WHEN has_database_privilege(a.oid, d.oid, 'CONNECT') THEN 'CONNECT' END,
           CASE WHEN has_database_privilege(a.oid, d.oid, 'CREATE') THEN 'CREATE' END,
           CASE WHEN has_database_privilege(a.oid, d.oid, 'TEMPORARY') THEN 'TEMPORARY' END)
    FROM api a, pg_catalog.pg_database d WHERE d.datname = current_database()
  UNION ALL
  SELECT 'schema', n.nspname, string_agg(x.privilege_type, ', ' ORDER BY x.privilege_type)
    FROM api a, pg_catalog.pg_namespace n, aclexplode(n.nspacl) x
   WHERE x.grantee = a.oid GROUP BY n.nspname
  UNION ALL
  SELECT CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'table' END,
         c.oid::regclass::text, string_agg(x.privilege_type, ', ' ORDER BY x.privilege_type)
    FROM api a, pg_catalog.pg_class c, aclexplode(c.relacl) x
   WHERE x.grantee = a.oid GROUP BY c.relkind, c.oid
  UNION ALL
  SELECT 'columns', c.oid::regclass::text || ' (' || string_agg(DISTINCT att.attname, ', ') || ')',
         string_agg(DISTINCT x.privilege_type, ', ')
    FROM api a, pg_catalog.pg_attribute att JOIN pg_catalog.pg_class c ON c.oid = att.attrelid,
         aclexplode(att.attacl) x
   WHERE x.grantee = a.oid GROUP BY c.oid
  UNION ALL
  SELECT 'function', p.oid::regprocedure::text,
         'EXECUTE' || CASE WHEN p.prosecdef THEN ' (SECURITY DEFINER, owner '
                                || pg_get_userbyid(p.proowner) || ', '
                                || array_to_string(p.proconfig, ' ') || ')' ELSE '' END
    FROM api a, pg_catalog.pg_proc p, aclexplode(p.proacl) x
   WHERE x.grantee = a.oid AND x.privilege_type = 'EXECUTE'
  UNION ALL
  SELECT 'function', 'SECURITY DEFINER functions it may execute',
         coalesce(string_agg(p.oid::regprocedure::text, ', '), 'none')
    FROM api a, pg_catalog.pg_proc p
   WHERE p.prosecdef AND has_function_privilege(a.oid, p.oid, 'EXECUTE')
  UNION ALL
  SELECT 'member of', CASE WHEN g.rolname ~ '^tenant_[0-9a-f]{32}$' THEN 'tenant roles'
                           ELSE g.rolname END,
         count(*) || ' role(s), ' || string_agg(DISTINCT coalesce(
           -- per-grant options: PostgreSQL 16+ (15 relies on the role's NOINHERIT)
           'INHERIT ' || upper(to_jsonb(m) ->> 'inherit_option')
             || ', SET ' || upper(to_jsonb(m) ->> 'set_option'), 'no per-grant options'), '; ')
    FROM api a JOIN pg_catalog.pg_auth_members m ON m.member = a.oid
    JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
   GROUP BY 2
)
SELECT kind, object, privileges FROM granted
ORDER BY array_position(ARRAY['role', 'database', 'schema', 'table', 'columns', 'sequence',
                              'function', 'member of'], kind), object;
