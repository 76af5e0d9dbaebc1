"""Database-enforced tenant isolation (tests/integration/defense/test_tenant_isolation.py) on
the cluster: tenant roles refused by PostgreSQL across schemas held by different workers."""

from tests.integration.defense.test_tenant_isolation import *  # noqa: F403
