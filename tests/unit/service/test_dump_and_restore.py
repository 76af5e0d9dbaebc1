"""The operator's archive on in-memory units of work (tests/unit/fakes.py) and a fake archiver
and archive: a dump audited however it ends, a restore as the same tenant over its tombstone
or as a new one, users matched by email, the schema brought to head, and nothing kept when a
step fails. pg_dump/pg_restore, the archive format and the schema rename are tested in
tests/integration/lifecycle_data."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from backend.domain.errors import Conflict, Invalid, NotFound
from backend.domain.identity import Role
from backend.domain.lifecycle import (
    Actor,
    ArchiveContents,
    ArchivedMembership,
    ArchivedUser,
    tombstone_slug,
)
from backend.domain.tenants import TenantStatus, schema_name_for
from backend.service import exports
from tests.unit.fakes import (
    FakeRegistryUnitOfWork,
    FakeRestoreUnitOfWork,
    FakeTenantArchive,
    FakeTenantArchiver,
)
from tests.unit.service.helpers import NOW, events, person, workspace

OPERATOR = Actor(request_id="op-1")


def dump(uow, archiver, slug="acme"):
    return exports.dump_tenant(
        slug=slug, out=Path("/archives/acme.zip"), actor=OPERATOR, uow_factory=lambda: uow, archiver=archiver
    )


def test_a_dump_is_written_and_audited_with_its_size_and_version():
    uow, archiver = FakeRegistryUnitOfWork(), FakeTenantArchiver()
    tenant = workspace(uow)
    summary = dump(uow, archiver)
    assert archiver.dumped == [(tenant.id, "/archives/acme.zip")] and summary.bytes == 1234
    [fields] = events(uow, "export.dumped")
    assert fields["tenant_id"] == tenant.id and fields["request_id"] == "op-1"
    assert fields["metadata"] == {"bytes": 1234, "count": 2, "schema_version": "r_head"}
    assert "outcome" not in fields


def test_a_failed_dump_is_audited_as_a_failure_and_raised():
    uow = FakeRegistryUnitOfWork()
    workspace(uow)
    with pytest.raises(RuntimeError):
        dump(uow, FakeTenantArchiver(fail=True))
    [fields] = events(uow, "export.dumped")
    assert fields["outcome"] == "failure" and fields["metadata"] == {"code": "RuntimeError"}


def test_an_unknown_or_purged_tenant_has_nothing_to_dump():
    uow, archiver = FakeRegistryUnitOfWork(), FakeTenantArchiver()
    tenant = workspace(uow)
    uow.tenants.rows[tenant.id] = replace(tenant, status=TenantStatus.DELETED)
    for slug in ("ghost", "acme"):
        with pytest.raises(NotFound):
            dump(uow, archiver, slug=slug)
    assert archiver.dumped == [] and events(uow, "export.dumped") == []


def archived():
    """An archive of `acme` (owner ada, client cy) and a registry where it was purged: a
    tombstone, no schema, ada's account kept (she has another workspace), cy's gone."""
    uow = FakeRestoreUnitOfWork()
    tenant = workspace(uow, "acme", owner="ada@example.com")
    workspace(uow, "other", owner="ada@example.com")
    ada = uow.users.by_email("ada@example.com")
    cy_id, client_id = uuid.uuid4(), uuid.uuid4()
    contents = ArchiveContents(
        tenant=replace(tenant, status=TenantStatus.DELETION_SCHEDULED, deletion_due_at=NOW),
        previous_status=TenantStatus.DISABLED,
        schema_version="r_first",
        users=(
            ArchivedUser(ada.id, "ADA@example.com", "Ada", "$argon2id$ada", NOW, NOW),
            ArchivedUser(cy_id, "cy@example.com", "Cy", "$argon2id$cy", NOW, NOW),
        ),
        memberships=(
            ArchivedMembership(ada.id, Role.WORKER, None),
            ArchivedMembership(cy_id, Role.CLIENT, client_id),
        ),
    )
    with uow:  # the purge's end state
        uow.memberships.remove(ada.id, tenant.id)
        uow.schemas.drop(tenant.schema_name)
        uow.tenants.rows[tenant.id] = replace(
            tenant, slug=tombstone_slug(tenant.id), name="", status=TenantStatus.DELETED, deleted_at=NOW
        )
        uow.commit()
    return uow, tenant, FakeTenantArchive(contents, media_files=3)


def restore(uow, archive, new_slug=None):
    return exports.restore_tenant(
        archive=archive,
        new_slug=new_slug,
        now=NOW + timedelta(days=40),
        actor=OPERATOR,
        uow_factory=lambda: uow,
    )


def test_a_restore_as_itself_revives_the_tombstone_with_its_users_members_schema_and_media():
    uow, tenant, archive = archived()
    result = restore(uow, archive)
    restored = uow.tenants.get(tenant.id)
    assert (restored.slug, restored.name, restored.schema_name) == ("acme", "Acme", tenant.schema_name)
    assert restored.status is TenantStatus.DISABLED, "as it was before its deletion was scheduled"
    assert restored.deleted_at is None and restored.deletion_due_at is None
    assert restored.schema_version == "r_head" and uow.schemas.schemas[tenant.schema_name] == "r_head"
    assert uow.schemas.migrations == [(tenant.schema_name, None)]
    assert (result.users_created, result.users_matched, result.media_files) == (1, 1, 3)
    assert result.tenant.schema_version == "r_head" and archive.installed == {tenant.id: 3}
    ada, cy = uow.users.by_email("ada@example.com"), uow.users.by_email("cy@example.com")
    assert uow.memberships.get(ada.id, tenant.id).role is Role.WORKER, "matched by email, any case"
    assert uow.memberships.get(cy.id, tenant.id).role is Role.CLIENT
    [fields] = events(uow, "export.restored")
    assert fields["metadata"] == {"slug": "acme", "schema_version": "r_head", "reason": "same"}


def test_a_restore_as_a_new_tenant_gets_a_new_id_schema_and_slug():
    uow, tenant, archive = archived()
    result = restore(uow, archive, new_slug="acme-copy")
    new = result.tenant
    assert new.id != tenant.id and new.schema_name == schema_name_for(new.id)
    assert new.slug == "acme-copy" and new.created_at == NOW + timedelta(days=40)
    assert uow.tenants.get(new.id).schema_version == "r_head"
    assert uow.tenants.get(tenant.id).status is TenantStatus.DELETED, "the tombstone stays"
    assert events(uow, "export.restored")[0]["metadata"]["reason"] == "new"


def test_a_live_tenant_is_never_overwritten_and_a_taken_slug_is_refused():
    uow, _, archive = archived()
    restore(uow, archive)
    with pytest.raises(Conflict) as exists:
        restore(uow, archive)
    assert exists.value.code == "tenant_exists"
    with pytest.raises(Conflict) as taken:
        restore(uow, archive, new_slug="other")
    assert taken.value.code == "slug_taken"
    with pytest.raises(Invalid):
        restore(uow, archive, new_slug="Not A Slug")
    assert len(events(uow, "export.restored")) == 1


def test_a_slug_reused_since_the_purge_must_be_restored_under_a_new_one():
    uow, _, archive = archived()
    workspace(uow, "acme", owner="zed@example.com")
    with pytest.raises(Conflict) as taken:
        restore(uow, archive)
    assert taken.value.code == "slug_taken"
    assert restore(uow, archive, new_slug="acme-old").tenant.slug == "acme-old"


def test_a_failure_installing_the_media_keeps_nothing():
    uow, tenant, archive = archived()
    archive.fail_media = True
    users_before = dict(uow.users.rows)
    with pytest.raises(OSError):
        restore(uow, archive)
    assert archive.installed == {}, "the staged media are removed"
    assert uow.tenants.get(tenant.id).status is TenantStatus.DELETED
    assert tenant.schema_name not in uow.schemas.schemas and uow.users.rows == users_before
    assert events(uow, "export.restored") == []


def test_a_restore_into_a_registry_that_never_knew_the_tenant_adds_it():
    uow, tenant, archive = archived()
    del uow.tenants.rows[tenant.id]
    person(uow, "cy@example.com")  # cy has an account here already
    result = restore(uow, archive)
    assert uow.tenants.get(tenant.id).slug == "acme" and result.users_created == 0
