"""Mail through the job queue, on in-memory units of work (tests/unit/fakes.py): the request
enqueues an intent after its commit and draws no token; the worker's half re-checks, draws the
link and mails it; nothing about the account's state decides what the public routes do."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from backend.core.passwords import hash_password
from backend.domain.errors import Conflict
from backend.domain.identity import ClientContact, Role
from backend.service import tenants
from backend.service.identity import closing, emails, invitations, passwords
from backend.service.identity.common import SEND_NOTICE_TASK
from tests.unit.fakes import FakeJobQueue, FakeMailer, FakeRegistryUnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
APP = "https://app.example"
PASSWORD = "correct horse battery"


def workspace(uow, slug="acme"):
    tenant = tenants.provision_tenant(
        slug=slug, name="Acme Studio", owner_email=f"{slug}@example.com", trial_days=14, now=NOW, uow=uow
    )
    owner = uow.users.by_email(f"{slug}@example.com")
    uow.users.rows[owner.id] = replace(owner, password_hash=hash_password(PASSWORD), verified_at=NOW)
    return tenant, owner.id


def link_token(mail) -> str:
    link = next(line for line in mail["body"].splitlines() if line.startswith("https://"))
    return parse_qs(urlparse(link).query)["token"][0]


def test_a_reset_request_enqueues_the_same_job_for_any_address_and_reads_nothing():
    jobs = FakeJobQueue()
    for email in ("known@example.com", " unknown@example.com "):
        passwords.request_password_reset_mail(email=email, jobs=jobs, request_id="r")
    assert [(task, queue, sorted(arguments)) for task, queue, arguments in jobs.jobs] == [
        (passwords.PASSWORD_RESET_TASK, "mail", ["email", "request_id"])
    ] * 2
    assert jobs.jobs[1][2]["email"] == "unknown@example.com"


def test_the_worker_mails_a_reset_link_to_a_known_account_only():
    uow, mailer = FakeRegistryUnitOfWork(), FakeMailer()
    workspace(uow)
    common = {"now": NOW, "reset_ttl_s": 900, "app_url": APP, "uow": uow, "mailer": mailer}
    assert passwords.request_password_reset(email="acme@example.com", **common) is True
    assert passwords.request_password_reset(email="nobody@example.com", **common) is False
    assert [m["to"] for m in mailer.sent] == ["acme@example.com"]


def invite_setup():
    uow, jobs = FakeRegistryUnitOfWork(), FakeJobQueue()
    tenant, owner_id = workspace(uow)
    client_id = uuid.uuid4()
    uow.client_directory.put(tenant.schema_name, ClientContact(client_id, "Ann", "ann@example.com"))
    return uow, jobs, tenant, owner_id, client_id


def invite(uow, jobs, tenant, owner_id, client_id):
    return invitations.invite_client(
        tenant_id=tenant.id,
        schema_name=tenant.schema_name,
        client_id=client_id,
        inviter_id=owner_id,
        now=NOW,
        invitation_ttl_s=3600,
        uow=uow,
        jobs=jobs,
    )


def test_an_invitation_is_audited_and_enqueued_and_its_token_drawn_by_the_worker():
    uow, jobs, tenant, owner_id, client_id = invite_setup()
    invitation = invite(uow, jobs, tenant, owner_id, client_id)
    assert invitation.expires_at == NOW + timedelta(hours=1)
    assert uow.one_time_tokens.rows == {}, "no token in the request"
    assert uow.audit.names()[-1] == "invitation.sent"
    [(task, _, job)] = jobs.jobs
    assert task == invitations.INVITATION_TASK and job["client_id"] == str(client_id)
    mailer = FakeMailer()
    sent = invitations.mail_invitation(
        tenant_id=tenant.id,
        client_id=client_id,
        expires_at=datetime.fromisoformat(job["expires_at"]),
        now=NOW,
        app_url=APP,
        uow=uow,
        mailer=mailer,
    )
    assert sent and [m["to"] for m in mailer.sent] == ["ann@example.com"]
    assert "Acme Studio" in mailer.sent[0]["subject"]
    [(_, token)] = uow.one_time_tokens.rows.values()
    assert token.expires_at == NOW + timedelta(hours=1) and token.email == "ann@example.com"
    assert link_token(mailer.sent[0])


def test_the_worker_drops_an_invitation_whose_client_got_a_login_or_went_meanwhile():
    uow, jobs, tenant, owner_id, client_id = invite_setup()
    invite(uow, jobs, tenant, owner_id, client_id)
    uow.memberships.add(user_id=uuid.uuid4(), tenant_id=tenant.id, role=Role.CLIENT, client_id=client_id)
    mailer = FakeMailer()
    args = {"tenant_id": tenant.id, "expires_at": NOW + timedelta(hours=1), "now": NOW, "app_url": APP}
    assert not invitations.mail_invitation(client_id=client_id, uow=uow, mailer=mailer, **args)
    assert not invitations.mail_invitation(client_id=uuid.uuid4(), uow=uow, mailer=mailer, **args)
    assert mailer.sent == [] and uow.one_time_tokens.rows == {}


def test_an_email_change_enqueues_the_link_and_a_notice_and_the_worker_rechecks_the_address():
    uow, jobs = FakeRegistryUnitOfWork(), FakeJobQueue()
    tenant, owner_id = workspace(uow)
    emails.request_email_change(
        user_id=owner_id,
        tenant_id=tenant.id,
        role=Role.WORKER,
        password=PASSWORD,
        new_email="new@example.com",
        now=NOW,
        ttl_s=3600,
        uow=uow,
        jobs=jobs,
    )
    assert [task for task, _, _ in jobs.jobs] == [emails.EMAIL_CHANGE_TASK, SEND_NOTICE_TASK]
    notice = jobs.jobs[1][2]
    assert notice["to"] == "acme@example.com" and "token" not in notice["body"]
    assert uow.one_time_tokens.rows == {}
    change = jobs.jobs[0][2]
    uow.users.add(uuid.uuid4(), "new@example.com", "Someone", None)  # taken meanwhile
    mailer = FakeMailer()
    args = {"user_id": owner_id, "new_email": change["new_email"], "now": NOW, "app_url": APP}
    expires = datetime.fromisoformat(change["expires_at"])
    assert not emails.mail_email_change(expires_at=expires, uow=uow, mailer=mailer, **args)
    assert mailer.sent == []


def test_an_email_change_to_a_taken_address_is_refused_and_nothing_is_enqueued():
    uow, jobs = FakeRegistryUnitOfWork(), FakeJobQueue()
    tenant, owner_id = workspace(uow)
    workspace(uow, "other")
    with pytest.raises(Conflict):
        emails.request_email_change(
            user_id=owner_id,
            tenant_id=tenant.id,
            role=Role.WORKER,
            password=PASSWORD,
            new_email="other@example.com",
            now=NOW,
            ttl_s=3600,
            uow=uow,
            jobs=jobs,
        )
    assert jobs.jobs == []


def test_a_client_closing_their_login_enqueues_a_notice_to_each_worker():
    uow, jobs = FakeRegistryUnitOfWork(), FakeJobQueue()
    tenant, _ = workspace(uow)
    client_user, client_id = uuid.uuid4(), uuid.uuid4()
    uow.users.add(client_user, "c@example.com", "C", hash_password(PASSWORD))
    uow.memberships.add(user_id=client_user, tenant_id=tenant.id, role=Role.CLIENT, client_id=client_id)
    closing.delete_own_client_account(
        user_id=client_user,
        tenant_id=tenant.id,
        client_id=client_id,
        password=PASSWORD,
        workspace_name="Acme Studio",
        now=NOW,
        uow=uow,
        jobs=jobs,
    )
    assert [(task, job["to"]) for task, _, job in jobs.jobs] == [(SEND_NOTICE_TASK, "acme@example.com")]
