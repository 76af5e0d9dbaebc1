"""The worker's periodic rules on in-memory units of work (tests/unit/fakes.py): the retention
run opens only the tenants the registry notes as due and settles their notes, the media service
notes its trash, due purges take only deletions past their date, and the unverified-signup
removal takes only bare, stale, still unverified signups."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from backend.domain.identity import Principal, Role
from backend.domain.lifecycle import SCHEDULER, RetentionPolicy
from backend.domain.tenants import TenantStatus
from backend.service import clients, deletion, media, retention, tenants, unverified
from tests.unit.fakes import (
    FakeExportFiles,
    FakeMediaStorage,
    FakeRetentionUnitOfWork,
    FakeTenantUnitOfWork,
    stored_media,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = RetentionPolicy(media_days=30, export_days=14, audit_days=365)


def tenant_in(registry, slug: str):
    return tenants.provision_tenant(
        slug=slug, name=slug, owner_email=f"{slug}@example.com", trial_days=14, now=NOW, uow=registry
    )


def trashed(uow: FakeTenantUnitOfWork, storage, deleted_at) -> uuid.UUID:
    """A media item soft-deleted at `deleted_at` (row and file), noted as the service notes it."""
    created_at = NOW - timedelta(days=90)
    item = stored_media(uow, storage, uow.tenant_id, created_at=created_at, deleted_at=deleted_at)
    if deleted_at is not None:
        uow.media_trash.trashed(deleted_at)
    return item.id


class World:
    """A registry and its tenants' units of work; counts which tenants a run opened."""

    def __init__(self) -> None:
        self.registry = FakeRetentionUnitOfWork()
        self.storage = FakeMediaStorage()
        self.tenant_uows: dict[uuid.UUID, FakeTenantUnitOfWork] = {}
        self.opened: list[uuid.UUID] = []

    def tenant(self, slug: str):
        tenant = tenant_in(self.registry, slug)
        self.tenant_uows[tenant.id] = self.registry.tenant_uow(tenant.id)
        return tenant, self.tenant_uows[tenant.id]

    def open(self, tenant) -> FakeTenantUnitOfWork:
        self.opened.append(tenant.id)
        return self.tenant_uows[tenant.id]

    def purge_due_media(self, failures=None):
        return retention.purge_due_media(
            now=NOW,
            policy=POLICY,
            dry_run=False,
            retention_uow_factory=lambda: self.registry,
            tenant_uow_factory=self.open,
            storage=self.storage,
            failures=[] if failures is None else failures,
            actor=SCHEDULER,
        )


def test_the_retention_run_opens_only_tenants_whose_note_is_past_the_cutoff():
    world = World()
    due, due_uow = world.tenant("due")
    recent, recent_uow = world.tenant("recent")
    clean, _ = world.tenant("clean")
    old_item = trashed(due_uow, world.storage, NOW - timedelta(days=40))
    left = trashed(due_uow, world.storage, NOW - timedelta(days=2))
    trashed(recent_uow, world.storage, NOW - timedelta(days=1))

    removed = world.purge_due_media()

    assert removed == {str(due.id): 1}
    assert set(world.opened) == {due.id}, "a tenant with a recent or empty trash is never opened"
    assert old_item not in due_uow.media.rows and left in due_uow.media.rows
    assert str(old_item) not in world.storage.files_by_tenant[due.id]
    # The note follows the oldest item left: the next run does not open the tenant for 28 days.
    assert world.registry.scheduled.media_trash[due.id] == NOW - timedelta(days=2)
    assert world.registry.audit.names().count("media.purged") == 1
    assert clean.id not in world.registry.scheduled.media_trash and recent.id not in world.opened


def test_an_emptied_trash_loses_its_note_and_a_second_run_opens_nothing():
    world = World()
    due, due_uow = world.tenant("due")
    trashed(due_uow, world.storage, NOW - timedelta(days=31))
    world.purge_due_media()
    assert due.id not in world.registry.scheduled.media_trash
    world.opened.clear()
    assert world.purge_due_media() == {} and world.opened == []
    assert world.registry.audit.names().count("media.purged") == 1


def test_one_tenant_failing_does_not_stop_the_others_and_keeps_its_note():
    world = World()
    broken, broken_uow = world.tenant("broken")
    fine, fine_uow = world.tenant("fine")
    trashed(broken_uow, world.storage, NOW - timedelta(days=50))
    trashed(fine_uow, world.storage, NOW - timedelta(days=40))

    def refuse(tenant_id, media_id):
        if tenant_id == broken.id:
            raise OSError("disk")

    world.storage.delete = refuse
    failures: list[str] = []
    removed = world.purge_due_media(failures)
    assert removed == {str(fine.id): 1}
    assert len(failures) == 1 and str(broken.id) in failures[0]
    assert broken.id in world.registry.scheduled.media_trash  # the next run retries it


def test_deleting_media_or_a_client_with_media_notes_the_trash_in_the_same_commit():
    uow = FakeTenantUnitOfWork()
    worker = Principal(user_id=uuid.uuid4(), tenant_id=uow.tenant_id, role=Role.WORKER)
    client = clients.create_client(fields={"name": "Ada"}, now=NOW, uow=uow)
    first = trashed(uow, FakeMediaStorage(), None)
    uow.media.rows[first] = replace(uow.media.rows[first], client_id=client.id)
    media.delete_media(viewer=worker, media_id=first, now=NOW, uow=uow)
    assert uow._schedule.media_trash == {uow.tenant_id: NOW}
    second = trashed(uow, FakeMediaStorage(), None)
    uow.media.rows[second] = replace(uow.media.rows[second], client_id=client.id)
    clients.delete_client(client_id=client.id, actor=worker, now=NOW + timedelta(days=1), uow=uow)
    assert uow._schedule.media_trash == {uow.tenant_id: NOW}, "the oldest deletion time is kept"


def test_deleting_a_client_without_media_notes_nothing():
    uow = FakeTenantUnitOfWork()
    worker = Principal(user_id=uuid.uuid4(), tenant_id=uow.tenant_id, role=Role.WORKER)
    client = clients.create_client(fields={"name": "Ada"}, now=NOW, uow=uow)
    clients.delete_client(client_id=client.id, actor=worker, now=NOW, uow=uow)
    assert uow._schedule.media_trash == {}


def test_due_purges_take_only_deletions_past_their_date_and_audit_the_run():
    registry, storage = FakeRetentionUnitOfWork(), FakeMediaStorage()
    due, waiting = tenant_in(registry, "due"), tenant_in(registry, "waiting")
    for tenant, grace in ((due, 0), (waiting, 30)):
        deletion.schedule_deletion(slug=tenant.slug, grace_days=grace, now=NOW, actor=SCHEDULER, uow=registry)
    report = deletion.purge_due_tenants(
        now=NOW, actor=SCHEDULER, uow_factory=lambda: registry, storage=storage
    )
    assert report.purged == [due.id] and report.failures == []
    assert registry.tenants.get(due.id).status is TenantStatus.DELETED
    assert registry.tenants.get(waiting.id).status is TenantStatus.DELETION_SCHEDULED
    assert registry.audit.names()[-1] == deletion.DUE_PURGES_EVENT


def test_a_run_with_no_due_deletion_writes_nothing():
    registry = FakeRetentionUnitOfWork()
    tenant_in(registry, "alive")
    commits = registry.commits
    report = deletion.purge_due_tenants(
        now=NOW, actor=SCHEDULER, uow_factory=lambda: registry, storage=FakeMediaStorage()
    )
    assert report.purged == [] and registry.commits == commits


def signup_in(registry, slug: str, *, age_days: int, verified: bool = False):
    """A signup: a workspace whose owner chose a password, `age_days` old."""
    tenant = tenant_in(registry, slug)
    owner = registry.users.by_email(f"{slug}@example.com")
    registry.users.rows[owner.id] = replace(
        owner,
        password_hash="hash",
        created_at=NOW - timedelta(days=age_days),
        verified_at=NOW if verified else None,
    )
    return tenant, owner.id


def remove(registry):
    return unverified.remove_unverified_signups(
        now=NOW,
        retention_days=7,
        actor=SCHEDULER,
        retention_uow_factory=lambda: registry,
        deletion_uow_factory=lambda: registry,
        storage=FakeMediaStorage(),
    )


def test_stale_bare_unverified_signups_lose_user_and_workspace_and_others_stay():
    registry = FakeRetentionUnitOfWork()
    stale, stale_user = signup_in(registry, "stale", age_days=8)
    fresh, fresh_user = signup_in(registry, "fresh", age_days=6)
    verified, verified_user = signup_in(registry, "verified", age_days=30, verified=True)
    shared, shared_user = signup_in(registry, "joined", age_days=30)
    registry.memberships.add(
        user_id=uuid.uuid4(), tenant_id=shared.id, role=Role.CLIENT, client_id=uuid.uuid4()
    )
    provisioned = tenant_in(registry, "provisioned")  # an operator's owner: no password yet
    provisioned_owner = registry.users.by_email("provisioned@example.com")
    registry.users.rows[provisioned_owner.id] = replace(
        provisioned_owner, created_at=NOW - timedelta(days=30)
    )

    report = remove(registry)

    assert report.removed == [stale_user] and report.workspaces_removed == 1
    assert report.skipped == [shared_user] and report.failures == []
    assert stale_user not in registry.users.rows
    assert registry.tenants.get(stale.id).status is TenantStatus.DELETED
    assert stale.schema_name not in registry.schemas.schemas
    for tenant, user_id in ((fresh, fresh_user), (verified, verified_user), (shared, shared_user)):
        assert user_id in registry.users.rows
        assert registry.tenants.get(tenant.id).status is TenantStatus.ACTIVE
    assert registry.tenants.get(provisioned.id).status is TenantStatus.ACTIVE
    assert registry.audit.names().count(unverified.REMOVED_EVENT) == 1


def test_a_signup_verified_after_the_listing_keeps_everything():
    registry = FakeRetentionUnitOfWork()
    tenant, user_id = signup_in(registry, "late", age_days=8)
    listed = registry.scheduled.unverified_signups(NOW - timedelta(days=7))
    registry.users.mark_verified(user_id, NOW)  # the person clicks the link meanwhile
    registry.scheduled.unverified_signups = lambda cutoff: listed
    report = remove(registry)
    assert report.removed == [] and user_id in registry.users.rows
    assert registry.tenants.get(tenant.id).status is TenantStatus.ACTIVE


def test_a_removal_cut_short_after_the_workspace_is_finished_by_the_next_run():
    registry = FakeRetentionUnitOfWork()
    tenant, user_id = signup_in(registry, "cut", age_days=8)
    # The previous run purged the workspace and died before removing the user.
    deletion.schedule_in(registry, tenant_id=tenant.id, now=NOW, actor=SCHEDULER)
    deletion.purge_tenant(
        tenant_id=tenant.id,
        now=NOW,
        actor=SCHEDULER,
        uow_factory=lambda: registry,
        storage=FakeMediaStorage(),
    )
    assert user_id in registry.users.rows
    report = remove(registry)
    assert report.removed == [user_id] and user_id not in registry.users.rows
    assert registry.audit.names().count("tenant.purged") == 1


def test_the_whole_retention_run_applies_every_rule_once_and_a_dry_run_changes_nothing():
    world = World()
    registry = world.registry
    keeper, keeper_uow = world.tenant("keeper")
    doomed = tenant_in(registry, "doomed")
    deletion.schedule_deletion(slug=doomed.slug, grace_days=0, now=NOW, actor=SCHEDULER, uow=registry)
    old = trashed(keeper_uow, world.storage, NOW - timedelta(days=31))
    exports = FakeExportFiles()
    old_archive, new_archive = Path("/exports/old.tar"), Path("/exports/new.tar")
    exports.files = {old_archive: NOW - timedelta(days=15), new_archive: NOW - timedelta(days=1)}
    registry.retention.audit_times = [NOW - timedelta(days=400), NOW - timedelta(days=2)]

    def run(dry_run: bool, finish_deletions: bool = True):
        return retention.apply_retention(
            now=NOW,
            policy=POLICY,
            dry_run=dry_run,
            actor=SCHEDULER,
            deletion_uow_factory=lambda: registry,
            retention_uow_factory=lambda: registry,
            tenant_uow_factory=world.open,
            storage=world.storage,
            export_files=exports,
            finish_deletions=finish_deletions,
        )

    dry = run(dry_run=True)
    assert (dry.tenants_purged, dry.media_removed) == ([str(doomed.id)], {str(keeper.id): 1})
    assert dry.exports_removed == [str(old_archive)] and dry.audit_events_removed == 1
    assert old in keeper_uow.media.rows and old_archive in exports.files
    assert registry.tenants.get(doomed.id).status is TenantStatus.DELETION_SCHEDULED
    assert "retention.applied" not in registry.audit.names()

    done = run(dry_run=False)
    assert done.failures == [] and old not in keeper_uow.media.rows
    assert registry.tenants.get(doomed.id).status is TenantStatus.DELETED
    assert list(exports.files) == [new_archive] and len(registry.retention.audit_times) == 1
    assert registry.audit.names().count("retention.applied") == 1

    again = run(dry_run=False, finish_deletions=False)  # the worker's run: deletions are a task of their own
    assert (again.tenants_purged, again.media_removed, again.exports_removed) == ([], {}, [])
    assert registry.audit.names().count("media.purged") == 1
