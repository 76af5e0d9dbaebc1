"""shared: the claim of a spare workspace, callable by the runtime role

Revision ID: 0009_workspace_claim
Revises: 0008_workspace_mfa_policy
Create Date: 2026-12-05

The API connects as the runtime role only (issue 14): it cannot create schemas, roles or
grants, and may only read `shared.spare_schemas`. Signup takes a pre-built workspace through
one narrow door, `shared.claim_spare_schema(revision)`: a SECURITY DEFINER function owned by
the owner role (who runs this migration) that does exactly what the owner's claim did
(backend/infrastructure/sql/spares.py): delete the oldest ready spare's row at that revision,
locked with SKIP LOCKED, and return its id and revision. The caller's transaction then writes
the tenant's registry row under that id, the owner's membership and the audit event, as
before; a rollback puts the row, hence the spare, back.

- A fixed search path, `pg_catalog, pg_temp` (temporary objects last, as PostgreSQL's manual
  asks for SECURITY DEFINER functions), and every table schema-qualified: nothing the caller
  creates or sets can change what the function reads.
- The argument is validated (a revision id: letters, digits and `_`, 1 to 64 characters);
  the function takes no schema name and builds no SQL text: the spare's name comes from its
  row, whose CHECK ties it to the id.
- EXECUTE is revoked from PUBLIC here and granted to the runtime role by `grant_shared`
  (backend/infrastructure/sql/privileges.py), which knows the role's name; tenant roles and
  the tenant group never get it.
"""

from alembic import op

revision = "0009_workspace_claim"
down_revision = "0008_workspace_mfa_policy"
branch_labels = None
depends_on = None

CLAIM = """
CREATE FUNCTION shared.claim_spare_schema(spare_revision text)
RETURNS TABLE (id uuid, revision text)
LANGUAGE plpgsql
VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $claim$
BEGIN
  IF spare_revision IS NULL OR pg_catalog.length(spare_revision) NOT BETWEEN 1 AND 64
     OR spare_revision !~ '^[A-Za-z0-9_]+$' THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
      MESSAGE = 'claim_spare_schema: not a revision id';
  END IF;
  RETURN QUERY
  DELETE FROM shared.spare_schemas AS spare
   WHERE spare.id = (
     SELECT ready.id FROM shared.spare_schemas AS ready
      WHERE ready.revision = spare_revision
      ORDER BY ready.created_at, ready.id
      LIMIT 1
      FOR UPDATE SKIP LOCKED)
  RETURNING spare.id, spare.revision;
END
$claim$
"""


def upgrade() -> None:
    op.execute(CLAIM)
    op.execute("REVOKE ALL ON FUNCTION shared.claim_spare_schema(text) FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION shared.claim_spare_schema(text)")
