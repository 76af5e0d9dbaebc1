"""Least privilege (tests/integration/defense/test_least_privilege.py) on the cluster: the
catalogs of the coordinator, and tenant transactions that reach the workers as tenant roles."""

from tests.integration.defense.test_least_privilege import *  # noqa: F403
