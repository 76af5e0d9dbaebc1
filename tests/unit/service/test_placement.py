"""Moving tenants between Citus workers, on in-memory units of work and a fake cluster: the
service moves only a live tenant that is elsewhere, audits each move with where it came from,
and turns a rebalance plan into the tenants moved. Citus itself is tested in tests/citus."""

from __future__ import annotations

import pytest

from backend.domain.errors import NotFound
from backend.domain.placement import DISTRIBUTED, MOVED, DistributionOutcome, SchemaMove, TenantSchema
from backend.domain.tenants import TenantStatus
from backend.service import placement
from tests.unit.fakes import FakeRegistryUnitOfWork
from tests.unit.service.helpers import workspace


class FakeCluster:
    """Schemas and the node each is on; a rebalance applies a fixed plan."""

    def __init__(self) -> None:
        self.nodes: dict[str, str] = {}
        self.moves: list[tuple[str, str, str]] = []
        self.plan: list[SchemaMove] = []
        self.distributed: list[str] = []
        self.refused: set[str] = set()
        self.busy: set[str] = set()
        self.transfer = "block_writes"  # how the cluster copies (behind poolers refusing replication)

    def node_of(self, schema_name: str) -> str | None:
        return self.nodes.get(schema_name)

    def move(self, schema_name: str, target: str, mode: str) -> str:
        self.moves.append((schema_name, target, mode))
        self.nodes[schema_name] = target
        return self.transfer

    def rebalance_plan(self, strategy: str) -> list[SchemaMove]:
        return list(self.plan)

    def rebalance(self, strategy: str, mode: str) -> str:
        for move in self.plan:
            self.nodes[move.schema_name] = move.target
        return self.transfer

    def tenant_schemas(self) -> list[TenantSchema]:
        return []

    def distribute(self, schema: TenantSchema, lock_timeout_ms: int) -> bool:
        if schema.schema_name in self.refused:
            raise RuntimeError(f"cannot distribute {schema.schema_name}")
        if schema.schema_name in self.busy:
            return False
        self.distributed.append(schema.schema_name)
        self.nodes[schema.schema_name] = "w1:5432"
        return True


@pytest.fixture()
def uow():
    return FakeRegistryUnitOfWork()


def moved_events(uow) -> list[dict]:
    return [fields["metadata"] for event, fields in uow.audit.events if event == MOVED]


def test_a_tenant_moves_to_the_named_worker_and_the_move_is_audited(uow):
    tenant = workspace(uow)
    cluster = FakeCluster()
    cluster.nodes[tenant.schema_name] = "w1:5432"
    done = placement.move_tenant(
        slug="acme", target="w2:5432", mode="auto", uow_factory=lambda: uow, placement=cluster
    )
    assert (done.moved, done.source, done.target) == (True, "w1:5432", "w2:5432")
    assert done.transfer == "block_writes"  # what the cluster ran, not the "auto" asked
    assert cluster.moves == [(tenant.schema_name, "w2:5432", "auto")]
    assert moved_events(uow) == [
        {"slug": "acme", "from_node": "w1:5432", "node": "w2:5432", "reason": "operator",
         "mode": "auto", "transfer": "block_writes"}
    ]  # fmt: skip


def test_a_tenant_already_there_is_left_alone_and_nothing_is_audited(uow):
    tenant = workspace(uow)
    cluster = FakeCluster()
    cluster.nodes[tenant.schema_name] = "w1:5432"
    done = placement.move_tenant(
        slug="acme", target="w1:5432", mode="auto", uow_factory=lambda: uow, placement=cluster
    )
    assert done.moved is False
    assert cluster.moves == [] and moved_events(uow) == []


def test_an_unknown_or_deleted_tenant_is_not_found(uow):
    tenant = workspace(uow)
    cluster = FakeCluster()
    cluster.nodes[tenant.schema_name] = "w1:5432"
    with pytest.raises(NotFound):
        placement.move_tenant(
            slug="nobody", target="w2:5432", mode="auto", uow_factory=lambda: uow, placement=cluster
        )
    uow.tenants.set_status(tenant.id, TenantStatus.DELETED, disabled_at=None)
    with pytest.raises(NotFound):
        placement.move_tenant(
            slug="acme", target="w2:5432", mode="auto", uow_factory=lambda: uow, placement=cluster
        )
    assert cluster.moves == []


def test_a_rebalance_audits_each_tenant_of_its_plan_and_an_even_cluster_moves_nothing(uow):
    first, second = workspace(uow, "acme"), workspace(uow, "beta", owner="b@example.com")
    cluster = FakeCluster()
    balanced = placement.rebalance_tenants(
        strategy="by_shard_count", mode="auto", uow_factory=lambda: uow, placement=cluster
    )
    assert (balanced.moves, balanced.transfer) == ([], None)
    cluster.plan = [
        SchemaMove(second.schema_name, "w1:5432", "w2:5432"),
        SchemaMove("not_a_tenant", "w1:5432", "w2:5432"),
    ]
    cluster.transfer = "logical"
    done = placement.rebalance_tenants(
        strategy="by_shard_count", mode="force_logical", uow_factory=lambda: uow, placement=cluster
    )
    assert [(tenant.slug, move.target) for tenant, move in done.moves] == [("beta", "w2:5432")]
    assert done.transfer == "logical"
    assert cluster.nodes[second.schema_name] == "w2:5432" and first.schema_name not in cluster.nodes
    assert moved_events(uow) == [
        {"slug": "beta", "from_node": "w1:5432", "node": "w2:5432", "reason": "rebalance",
         "mode": "force_logical", "transfer": "logical"}
    ]  # fmt: skip


def test_distribution_isolates_a_failing_schema_skips_done_ones_and_audits_each_change(uow):
    tenant = workspace(uow)
    schemas = [
        TenantSchema(tenant.schema_name, tenant.id, "acme", distributed=False, role_can_login=False),
        TenantSchema("tenant_" + "a" * 32, None, None, distributed=False, role_can_login=False),  # spare
        TenantSchema("tenant_" + "b" * 32, None, None, distributed=True, role_can_login=True),  # done
        TenantSchema("tenant_" + "c" * 32, None, None, distributed=False, role_can_login=True),
        TenantSchema("tenant_" + "d" * 32, None, None, distributed=False, role_can_login=False),
    ]
    cluster = FakeCluster()
    cluster.nodes["tenant_" + "b" * 32] = "w2:5432"
    cluster.refused = {"tenant_" + "a" * 32}
    cluster.busy = {"tenant_" + "d" * 32}
    results = list(
        placement.distribute_schemas(
            schemas=schemas, placement=cluster, uow_factory=lambda: uow, lock_timeout_ms=5000
        )
    )
    assert [(r.schema.schema_name[-1], r.outcome, r.node) for r in results] == [
        (tenant.schema_name[-1], DistributionOutcome.DISTRIBUTED, "w1:5432"),
        ("a", DistributionOutcome.FAILED, None),
        ("b", DistributionOutcome.CURRENT, "w2:5432"),
        ("c", DistributionOutcome.DISTRIBUTED, "w1:5432"),
        ("d", DistributionOutcome.BUSY, None),
    ]
    assert results[1].error == f"RuntimeError: cannot distribute tenant_{'a' * 32}"
    assert cluster.distributed == [tenant.schema_name, "tenant_" + "c" * 32]
    audited = [fields for event, fields in uow.audit.events if event == DISTRIBUTED]
    assert [(f["tenant_id"], f["target_type"], f["metadata"]) for f in audited] == [
        (tenant.id, "tenant", {"slug": "acme", "schema_name": tenant.schema_name, "node": "w1:5432",
                               "role_login": True}),
        (None, "spare_schema", {"slug": None, "schema_name": "tenant_" + "c" * 32, "node": "w1:5432",
                                "role_login": False}),
    ]  # fmt: skip
