"""Pure rules of the data lifecycle."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from backend.domain.errors import Conflict, Invalid, NotFound
from backend.domain.lifecycle import (
    RetentionPolicy,
    check_cancellable,
    check_confirm_slug,
    check_schedulable,
    deletion_due_at,
    is_due,
    restored_status,
    tombstone_slug,
)
from backend.domain.tenants import SLUG_RE, TenantStatus

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
S = TenantStatus


def test_due_date_is_now_plus_grace_and_zero_means_now():
    assert deletion_due_at(NOW, 30) == NOW + timedelta(days=30)
    assert deletion_due_at(NOW, 0) == NOW
    with pytest.raises(ValueError):
        deletion_due_at(NOW, -1)


def test_confirmation_must_be_the_exact_slug():
    check_confirm_slug("my-space", "my-space")
    for wrong in ("My-Space", "my-space ", "", "other"):
        with pytest.raises(Invalid) as raised:
            check_confirm_slug(wrong, "my-space")
        assert "confirm_slug" in raised.value.errors


def test_only_a_deleted_tenant_cannot_be_scheduled():
    for status in (S.PROVISIONING, S.ACTIVE, S.DISABLED, S.DELETION_SCHEDULED):
        check_schedulable(status)
    with pytest.raises(NotFound):
        check_schedulable(S.DELETED)


def test_cancel_only_during_the_grace_period():
    check_cancellable(S.DELETION_SCHEDULED, NOW + timedelta(seconds=1), NOW)
    with pytest.raises(Conflict) as raised:
        check_cancellable(S.DELETION_SCHEDULED, NOW, NOW)
    assert raised.value.code == "deletion_in_progress"
    for status in (S.ACTIVE, S.DISABLED, S.DELETED):
        with pytest.raises(NotFound):
            check_cancellable(status, None, NOW)


def test_due_and_cancellable_never_overlap():
    for offset in (-1, 0, 1):
        due = NOW + timedelta(seconds=offset)
        try:
            check_cancellable(S.DELETION_SCHEDULED, due, NOW)
            cancellable = True
        except Conflict:
            cancellable = False
        assert cancellable != is_due(S.DELETION_SCHEDULED, due, NOW)


def test_tombstone_slug_names_nobody_and_fits_the_slug_rules():
    tenant_id = uuid.uuid4()
    slug = tombstone_slug(tenant_id)
    assert slug == f"deleted-{tenant_id.hex}"
    assert SLUG_RE.fullmatch(slug)


@pytest.mark.parametrize(
    ("status", "previous", "expected"),
    [
        (S.ACTIVE, None, S.ACTIVE),
        (S.DISABLED, None, S.DISABLED),
        (S.PROVISIONING, None, S.ACTIVE),
        (S.DELETION_SCHEDULED, S.DISABLED, S.DISABLED),
        (S.DELETION_SCHEDULED, None, S.ACTIVE),
    ],
)
def test_restored_status(status, previous, expected):
    assert restored_status(status, previous) is expected


def test_retention_cutoffs():
    policy = RetentionPolicy(media_days=30, export_days=14, audit_days=365)
    assert policy.media_cutoff(NOW) == NOW - timedelta(days=30)
    assert policy.export_cutoff(NOW) == NOW - timedelta(days=14)
    assert policy.audit_cutoff(NOW) == NOW - timedelta(days=365)
