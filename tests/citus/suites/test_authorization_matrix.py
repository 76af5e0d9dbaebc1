"""The authorization matrix (tests/integration/identity/test_authorization_matrix.py) on the
cluster: every route against every way in, the tenants' rows on the workers."""

from tests.integration.identity.test_authorization_matrix import *  # noqa: F403
