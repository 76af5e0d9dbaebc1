"""Rules of the client book and the calendar, on in-memory units of work (tests/unit/fakes.py):
who may do what, what is committed, what is audited. Isolation between tenants, overlap
constraints and SQL are the integration tests' business."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from backend.domain.appointments import AppointmentFilter, AppointmentStatus, ClientAppointment
from backend.domain.errors import Conflict, Forbidden, Invalid, NotFound
from backend.domain.identity import Principal, Role
from backend.domain.media import Media
from backend.service import appointments, clients
from tests.unit.fakes import FakeTenantUnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TENANT = uuid.uuid4()
WORKER = Principal(user_id=uuid.uuid4(), tenant_id=TENANT, role=Role.WORKER)


def client_principal(client_id):
    return Principal(user_id=uuid.uuid4(), tenant_id=TENANT, role=Role.CLIENT, client_id=client_id)


@pytest.fixture()
def uow():
    return FakeTenantUnitOfWork()


def a_client(uow, name="Ada"):
    return clients.create_client(fields={"name": name}, now=NOW, uow=uow)


def booking(uow, client, *, hours_ahead=24, **extra):
    starts = NOW + timedelta(hours=hours_ahead)
    fields = {"client_id": client.id, "starts_at": starts, "ends_at": starts + timedelta(hours=1), **extra}
    return appointments.create_appointment(viewer=WORKER, fields=fields, now=NOW, uow=uow)


def test_a_created_client_is_committed_with_blank_optionals_as_none(uow):
    created = clients.create_client(fields={"name": "  Ada  ", "notes": "  "}, now=NOW, uow=uow)
    assert uow.commits == 1
    assert uow.clients.get(created.id).name == "Ada" and created.notes is None


def test_an_invalid_client_is_refused_before_anything_is_written(uow):
    with pytest.raises(Invalid):
        clients.create_client(fields={"name": ""}, now=NOW, uow=uow)
    assert uow.clients.rows == {} and uow.commits == 0


def test_updating_or_reading_a_missing_client_is_not_found(uow):
    with pytest.raises(NotFound):
        clients.update_client(client_id=uuid.uuid4(), changes={"name": "B"}, now=NOW, uow=uow)
    with pytest.raises(NotFound):
        clients.get_client(client_id=uuid.uuid4(), uow=uow)


def test_deleting_a_client_soft_deletes_their_media_removes_their_login_and_is_audited(uow):
    client = a_client(uow)
    uow.client_logins.logins[client.id] = 1
    clients.delete_client(client_id=client.id, actor=WORKER, now=NOW, uow=uow, request_id="req-1")
    assert uow.clients.get(client.id) is None
    assert client.id not in uow.client_logins.logins
    [(event, fields)] = uow.audit.events
    assert event == "client.deleted"
    assert fields["target_id"] == str(client.id) and fields["request_id"] == "req-1"
    assert fields["metadata"] == {"count": 0, "logins_removed": 1}


def test_a_changed_or_removed_email_revokes_invitations_and_an_unchanged_one_does_not(uow):
    client = clients.create_client(fields={"name": "Ada", "email": "ada@example.com"}, now=NOW, uow=uow)
    clients.update_client(client_id=client.id, changes={"email": client.email.upper()}, now=NOW, uow=uow)
    assert uow.client_logins.revoked == []  # the same address, in other case
    clients.update_client(client_id=client.id, changes={"name": "Renamed"}, now=NOW, uow=uow)
    assert uow.client_logins.revoked == []
    clients.update_client(client_id=client.id, changes={"email": "moved@example.com"}, now=NOW, uow=uow)
    assert uow.client_logins.revoked == [client.id]
    clients.update_client(client_id=client.id, changes={"email": None}, now=NOW, uow=uow)
    assert uow.client_logins.revoked == [client.id, client.id]


def test_deleting_a_missing_client_writes_nothing(uow):
    with pytest.raises(NotFound):
        clients.delete_client(client_id=uuid.uuid4(), actor=WORKER, now=NOW, uow=uow)
    assert uow.audit.events == [] and uow.commits == 0


def test_only_workers_book_and_a_booking_needs_an_existing_client(uow):
    client = a_client(uow)
    with pytest.raises(Forbidden):
        appointments.create_appointment(
            viewer=client_principal(client.id),
            fields={"client_id": client.id, "starts_at": NOW, "ends_at": NOW + timedelta(hours=1)},
            now=NOW,
            uow=uow,
        )
    with pytest.raises(NotFound):
        booking(uow, type("Ghost", (), {"id": uuid.uuid4()}))
    assert uow.appointments.rows == {}


def test_a_new_appointment_cannot_start_cancelled(uow):
    with pytest.raises(Invalid):
        booking(uow, a_client(uow), status=AppointmentStatus.CANCELLED.value)


def test_a_client_sees_only_their_own_appointments_without_the_workers_notes(uow):
    mine, theirs = a_client(uow, "Ada"), a_client(uow, "Bob")
    booking(uow, mine, notes="private")
    booking(uow, theirs, hours_ahead=48)
    items, total = appointments.list_appointments(
        viewer=client_principal(mine.id), filters=AppointmentFilter(), page=1, page_size=10, uow=uow
    )
    assert total == 1 and isinstance(items[0], ClientAppointment) and items[0].client_id == mine.id
    assert not hasattr(items[0], "notes")
    asking_for_other, total = appointments.list_appointments(
        viewer=client_principal(mine.id),
        filters=AppointmentFilter(client_id=theirs.id),
        page=1,
        page_size=10,
        uow=uow,
    )
    assert (asking_for_other, total) == ([], 0)


def test_a_client_without_a_client_record_sees_nothing(uow):
    with pytest.raises(Forbidden):
        appointments.list_appointments(
            viewer=client_principal(None), filters=AppointmentFilter(), page=1, page_size=10, uow=uow
        )


def test_cancelling_sets_the_time_once_and_a_past_appointment_cannot_be_cancelled(uow):
    client = a_client(uow)
    upcoming = booking(uow, client)
    cancelled = appointments.cancel_appointment(
        viewer=client_principal(client.id), appointment_id=upcoming.id, now=NOW, uow=uow
    )
    assert cancelled.status is AppointmentStatus.CANCELLED
    assert uow.appointments.get(upcoming.id).cancelled_at == NOW
    later = NOW + timedelta(minutes=5)
    again = appointments.cancel_appointment(viewer=WORKER, appointment_id=upcoming.id, now=later, uow=uow)
    assert (
        again.status is AppointmentStatus.CANCELLED and uow.appointments.get(upcoming.id).cancelled_at == NOW
    )
    past = booking(uow, client, hours_ahead=-3)
    with pytest.raises(Conflict) as refused:
        appointments.cancel_appointment(viewer=WORKER, appointment_id=past.id, now=NOW, uow=uow)
    assert refused.value.code == "appointment_not_cancellable"


def test_a_client_cannot_cancel_someone_elses_appointment(uow):
    mine, theirs = a_client(uow, "Ada"), a_client(uow, "Bob")
    other = booking(uow, theirs)
    with pytest.raises(NotFound):
        appointments.cancel_appointment(
            viewer=client_principal(mine.id), appointment_id=other.id, now=NOW, uow=uow
        )
    assert uow.appointments.get(other.id).status is AppointmentStatus.SCHEDULED


def test_reopening_a_cancelled_appointment_clears_its_cancellation_time(uow):
    appointment = booking(uow, a_client(uow))
    appointments.update_appointment(
        viewer=WORKER, appointment_id=appointment.id, changes={"status": "cancelled"}, now=NOW, uow=uow
    )
    assert uow.appointments.get(appointment.id).cancelled_at == NOW
    appointments.update_appointment(
        viewer=WORKER, appointment_id=appointment.id, changes={"status": "scheduled"}, now=NOW, uow=uow
    )
    assert uow.appointments.get(appointment.id).cancelled_at is None


def test_an_update_with_a_backwards_period_is_refused_and_nothing_changes(uow):
    appointment = booking(uow, a_client(uow))
    with pytest.raises(Invalid):
        appointments.update_appointment(
            viewer=WORKER,
            appointment_id=appointment.id,
            changes={"ends_at": appointment.starts_at - timedelta(hours=1)},
            now=NOW,
            uow=uow,
        )
    assert uow.appointments.get(appointment.id) == appointment


def test_clients_are_listed_by_name_in_pages_and_searched_by_name_or_email_prefix(uow):
    for name, email in (("bob", "zed@example.com"), ("Ada", None), ("Cy", "ADA.work@example.com")):
        clients.create_client(fields={"name": name, "email": email}, now=NOW, uow=uow)
    page, total = clients.list_clients(page=2, page_size=2, uow=uow)
    assert total == 3 and [c.name for c in page] == ["Cy"]
    found, total = clients.list_clients(page=1, page_size=10, uow=uow, search="ada")
    assert total == 2 and [c.name for c in found] == ["Ada", "Cy"]
    everyone, total = clients.list_clients(page=1, page_size=10, uow=uow, search="")
    assert total == 3 and [c.name for c in everyone] == ["Ada", "bob", "Cy"]


def test_an_email_another_client_has_is_a_conflict_on_create_and_update(uow):
    clients.create_client(fields={"name": "Ada", "email": "ada@example.com"}, now=NOW, uow=uow)
    with pytest.raises(Conflict) as on_create:
        clients.create_client(fields={"name": "Ada 2", "email": "ADA@example.com"}, now=NOW, uow=uow)
    assert on_create.value.code == "client_email_taken" and len(uow.clients.rows) == 1
    bob = clients.create_client(fields={"name": "Bob", "email": "bob@example.com"}, now=NOW, uow=uow)
    with pytest.raises(Conflict) as on_update:
        clients.update_client(client_id=bob.id, changes={"email": "ada@example.com"}, now=NOW, uow=uow)
    assert on_update.value.code == "client_email_taken"
    assert uow.clients.get(bob.id).email == "bob@example.com" and uow.client_logins.revoked == []


def test_an_invalid_update_changes_nothing_and_a_valid_one_stamps_the_time(uow):
    client = a_client(uow)
    with pytest.raises(Invalid) as refused:
        clients.update_client(client_id=client.id, changes={"name": " ", "phone": "abc"}, now=NOW, uow=uow)
    assert set(refused.value.errors) == {"name", "phone"}
    later = NOW + timedelta(hours=1)
    updated = clients.update_client(
        client_id=client.id, changes={"phone": " +44 20 1234 "}, now=later, uow=uow
    )
    assert updated.phone == "+44 20 1234" and updated.updated_at == later and updated.name == "Ada"
    assert clients.get_client(client_id=client.id, uow=uow) == updated


def test_deleting_a_client_soft_deletes_only_their_live_media(uow):
    ada, bob = a_client(uow, "Ada"), a_client(uow, "Bob")
    for owner in (ada, ada, bob):
        item = Media(
            uuid.uuid4(), owner.id, None, "f.png", "image/png", 3, "x", WORKER.user_id, "worker", NOW
        )
        uow.media.rows[item.id] = item
    clients.delete_client(client_id=ada.id, actor=WORKER, now=NOW, uow=uow)
    assert uow.audit.events[0][1]["metadata"] == {"count": 2, "logins_removed": 0}
    assert {m.client_id for m in uow.media.rows.values() if m.deleted_at is None} == {bob.id}


def test_a_client_reads_only_their_own_appointment_and_without_the_workers_notes(uow):
    mine, theirs = a_client(uow, "Ada"), a_client(uow, "Bob")
    own, other = booking(uow, mine, notes="private"), booking(uow, theirs)
    seen = appointments.get_appointment(viewer=client_principal(mine.id), appointment_id=own.id, uow=uow)
    assert isinstance(seen, ClientAppointment) and seen.id == own.id
    with pytest.raises(NotFound):
        appointments.get_appointment(viewer=client_principal(mine.id), appointment_id=other.id, uow=uow)
    assert appointments.get_appointment(viewer=WORKER, appointment_id=own.id, uow=uow).notes == "private"
    with pytest.raises(Forbidden):
        appointments.get_appointment(viewer=client_principal(None), appointment_id=own.id, uow=uow)


def test_the_calendar_is_listed_in_time_order_within_the_asked_window(uow):
    client = a_client(uow)
    late, early, middle = (booking(uow, client, hours_ahead=h) for h in (72, 24, 48))
    items, total = appointments.list_appointments(
        viewer=WORKER, filters=AppointmentFilter(), page=1, page_size=10, uow=uow
    )
    assert [a.id for a in items] == [early.id, middle.id, late.id] and total == 3
    window = AppointmentFilter(starts_from=middle.starts_at, starts_before=late.starts_at)
    items, total = appointments.list_appointments(
        viewer=WORKER, filters=window, page=1, page_size=10, uow=uow
    )
    assert [a.id for a in items] == [middle.id]
    with pytest.raises(Invalid):
        appointments.list_appointments(
            viewer=WORKER,
            filters=AppointmentFilter(starts_from=late.starts_at, starts_before=early.starts_at),
            page=1,
            page_size=10,
            uow=uow,
        )


def test_only_workers_change_or_delete_appointments_and_a_missing_one_is_not_found(uow):
    client = a_client(uow)
    appointment = booking(uow, client)
    as_client = client_principal(client.id)
    with pytest.raises(Forbidden):
        appointments.update_appointment(
            viewer=as_client, appointment_id=appointment.id, changes={"notes": "x"}, now=NOW, uow=uow
        )
    with pytest.raises(Forbidden):
        appointments.delete_appointment(viewer=as_client, appointment_id=appointment.id, uow=uow)
    with pytest.raises(NotFound):
        appointments.update_appointment(
            viewer=WORKER, appointment_id=uuid.uuid4(), changes={"notes": "x"}, now=NOW, uow=uow
        )
    with pytest.raises(NotFound):
        appointments.delete_appointment(viewer=WORKER, appointment_id=uuid.uuid4(), uow=uow)
    appointments.delete_appointment(viewer=WORKER, appointment_id=appointment.id, uow=uow)
    assert uow.appointments.rows == {}


def test_a_completed_appointment_cannot_be_cancelled_and_a_booking_may_start_completed(uow):
    done = booking(uow, a_client(uow), status=AppointmentStatus.COMPLETED.value)
    assert done.status is AppointmentStatus.COMPLETED
    with pytest.raises(Conflict) as refused:
        appointments.cancel_appointment(viewer=WORKER, appointment_id=done.id, now=NOW, uow=uow)
    assert refused.value.code == "appointment_not_cancellable"


def test_cancelling_through_an_update_keeps_the_first_cancellation_time(uow):
    appointment = booking(uow, a_client(uow))
    for minutes in (0, 5):
        appointments.update_appointment(
            viewer=WORKER,
            appointment_id=appointment.id,
            changes={"status": "cancelled"},
            now=NOW + timedelta(minutes=minutes),
            uow=uow,
        )
    assert uow.appointments.get(appointment.id).cancelled_at == NOW
