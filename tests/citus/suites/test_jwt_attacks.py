"""The JWT attack suite (tests/integration/defense/test_jwt_attacks.py) on the cluster."""

from tests.integration.defense.test_jwt_attacks import *  # noqa: F403
