"""Signup and email verification on in-memory units of work (tests/unit/fakes.py): the
workspace and the unverified owner together, the mail enqueued after the commit (the worker
draws the link and mails it), single-use and expiring tokens, a generated slug that avoids a
taken one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from backend.domain.errors import Conflict, Invalid, NotFound, Unauthenticated, Unavailable
from backend.domain.identity import OneTimeTokenKind
from backend.service.identity import accounts
from backend.service.tenants import REFILL_SPARES_TASK
from tests.unit.fakes import FakeJobQueue, FakeMailer, FakeRegistryUnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TTL = 3600


def with_spares(count: int = 5) -> FakeRegistryUnitOfWork:
    """A registry whose pool holds `count` ready workspaces (the worker built them)."""
    uow = FakeRegistryUnitOfWork()
    uow.schemas.add_spares(count)
    return uow


def signup(uow, mailer, email="Ada@Example.com", slug=None, workspace="Acme Studio", jobs=None, target=0):
    """Signs up, then runs the queued verification mail as the worker would (other jobs stay)."""
    jobs = jobs if jobs is not None else FakeJobQueue()
    result = accounts.signup(
        email=email,
        password="correct horse battery",
        name="Ada",
        workspace_name=workspace,
        workspace_slug=slug,
        trial_days=14,
        now=NOW,
        uow=uow,
        jobs=jobs,
        spare_target=target,
    )
    run_mail_jobs(jobs, uow, mailer)
    return result


def run_mail_jobs(jobs, uow, mailer) -> None:
    mail = [job for job in jobs.jobs if job[1] == "mail"]
    jobs.jobs[:] = [job for job in jobs.jobs if job[1] != "mail"]
    for task, _, arguments in mail:
        assert task == accounts.RESEND_VERIFICATION_TASK
        accounts.resend_verification(
            email=arguments["email"],
            now=NOW,
            verification_ttl_s=TTL,
            app_url="https://app.example",
            uow=uow,
            mailer=mailer,
        )


def test_signup_enqueues_the_verification_mail_after_the_commit_and_sends_nothing_itself():
    uow, jobs = with_spares(), FakeJobQueue()
    accounts.signup(
        email="ada@example.com",
        password="correct horse battery",
        name="Ada",
        workspace_name="Acme",
        workspace_slug=None,
        trial_days=14,
        now=NOW,
        uow=uow,
        jobs=jobs,
        spare_target=0,
    )
    assert jobs.jobs == [("resend_verification", "mail", {"email": "ada@example.com", "request_id": None})]
    assert uow.one_time_tokens.rows == {}, "no token in the request: the worker draws it"


def mailed_token(mailer) -> str:
    link = next(line for line in mailer.sent[-1]["body"].splitlines() if line.startswith("https://"))
    return parse_qs(urlparse(link).query)["token"][0]


def test_signup_makes_an_unverified_owner_and_mails_a_link_that_verifies_once():
    uow, mailer = with_spares(), FakeMailer()
    result = signup(uow, mailer)
    assert result.user.email == "Ada@Example.com" and result.user.verified_at is None  # kept as typed
    assert result.user.password_hash is None, "the hash never leaves the service"
    assert result.tenant.slug == "acme-studio"
    assert uow.audit.names() == ["tenant.provisioned", "auth.signup", "auth.verification_sent"]
    assert [m["to"] for m in mailer.sent] == ["Ada@Example.com"]
    token = mailed_token(mailer)
    verified = accounts.verify_email(token=token, now=NOW + timedelta(minutes=5), uow=uow)
    assert verified.verified_at == NOW + timedelta(minutes=5)
    with pytest.raises(Conflict) as again:
        accounts.verify_email(token=token, now=NOW + timedelta(minutes=6), uow=uow)
    assert again.value.code == "already_verified"


def test_an_expired_or_unknown_verification_token_is_refused():
    uow, mailer = with_spares(), FakeMailer()
    signup(uow, mailer)
    with pytest.raises(Unauthenticated) as expired:
        accounts.verify_email(token=mailed_token(mailer), now=NOW + timedelta(seconds=TTL), uow=uow)
    assert expired.value.code == "token_expired"
    with pytest.raises(Unauthenticated) as unknown:
        accounts.verify_email(token="not-a-token", now=NOW, uow=uow)
    assert unknown.value.code == "invalid_token"


def test_a_generated_slug_avoids_a_taken_one_but_an_asked_for_slug_does_not():
    uow, mailer = with_spares(), FakeMailer()
    signup(uow, mailer)
    second = signup(uow, mailer, email="bob@example.com")
    assert second.tenant.slug.startswith("acme-studio-") and second.tenant.slug != "acme-studio"
    with pytest.raises(Conflict) as taken:
        signup(uow, mailer, email="cy@example.com", slug="acme-studio")
    assert taken.value.code == "slug_taken"


def test_an_email_already_registered_is_refused_and_nothing_is_mailed():
    uow, mailer = with_spares(), FakeMailer()
    signup(uow, mailer)
    with pytest.raises(Conflict) as taken:
        signup(uow, mailer, email="ADA@example.com", workspace="Other")
    assert taken.value.code == "email_taken" and len(mailer.sent) == 1


def test_a_weak_password_is_refused_before_anything_is_written():
    uow, jobs = with_spares(), FakeJobQueue()
    with pytest.raises(Invalid):
        accounts.signup(
            email="ada@example.com",
            password="short",
            name="Ada",
            workspace_name="Acme",
            workspace_slug=None,
            trial_days=14,
            now=NOW,
            uow=uow,
            jobs=jobs,
            spare_target=5,
        )
    assert uow.commits == 0 and jobs.jobs == [] and uow.users.rows == {}


def test_a_link_for_an_address_verified_another_way_is_already_verified():
    uow, mailer = with_spares(), FakeMailer()
    result = signup(uow, mailer)
    with uow:
        uow.users.mark_verified(result.user.id, NOW)
        uow.commit()
    with pytest.raises(Conflict) as verified:
        accounts.verify_email(token=mailed_token(mailer), now=NOW, uow=uow)
    assert verified.value.code == "already_verified"


def test_verification_is_audited_in_the_workspace_and_ends_the_other_links():
    uow, mailer = with_spares(), FakeMailer()
    result = signup(uow, mailer)
    token = mailed_token(mailer)
    accounts.verify_email(token=token, now=NOW, uow=uow, request_id="r9")
    [fields] = [f for e, f in uow.audit.events if e == "auth.verified"]
    assert fields["tenant_id"] == result.tenant.id and fields["metadata"] == {"reason": "token"}
    assert fields["request_id"] == "r9"
    assert uow.one_time_tokens.usable(OneTimeTokenKind.EMAIL_VERIFICATION, NOW) == []


def test_an_operator_verifies_a_worker_once_and_it_is_audited_in_their_workspace():
    uow, mailer = with_spares(), FakeMailer()
    result = signup(uow, mailer)
    with pytest.raises(NotFound):
        accounts.verify_worker_by_operator(email="nobody@example.com", now=NOW, uow=uow)
    verified = accounts.verify_worker_by_operator(email=" ada@example.com ", now=NOW, uow=uow)
    assert verified.verified_at == NOW and uow.users.get(result.user.id).verified_at == NOW
    [fields] = [f for e, f in uow.audit.events if e == "auth.verified"]
    assert fields["tenant_id"] == result.tenant.id and fields["metadata"] == {"reason": "operator"}
    assert uow.one_time_tokens.usable(OneTimeTokenKind.EMAIL_VERIFICATION, NOW) == [], "the link ended"
    with pytest.raises(Conflict) as again:
        accounts.verify_worker_by_operator(email="ada@example.com", now=NOW, uow=uow)
    assert again.value.code == "already_verified"


def resend(uow, mailer, email="ada@example.com", now=NOW):
    accounts.resend_verification(
        email=email, now=now, verification_ttl_s=TTL, app_url="https://app.example", uow=uow, mailer=mailer
    )


def test_a_resend_mails_a_fresh_link_that_supersedes_the_first():
    uow, mailer = with_spares(), FakeMailer()
    signup(uow, mailer)
    first = mailed_token(mailer)
    resend(uow, mailer, email=" ADA@example.com ", now=NOW + timedelta(minutes=1))
    assert len(mailer.sent) == 2 and mailer.sent[1]["to"] == "Ada@Example.com"
    assert "auth.verification_sent" in uow.audit.names()
    later = NOW + timedelta(minutes=2)
    with pytest.raises(Unauthenticated) as superseded:
        accounts.verify_email(token=first, now=later, uow=uow)
    assert superseded.value.code == "token_expired"
    assert accounts.verify_email(token=mailed_token(mailer), now=later, uow=uow).verified_at == later


def test_a_resend_for_an_unknown_or_verified_address_does_nothing():
    uow, mailer = with_spares(), FakeMailer()
    signup(uow, mailer)
    accounts.verify_email(token=mailed_token(mailer), now=NOW, uow=uow)
    commits, events = uow.commits, uow.audit.names()
    resend(uow, mailer)
    resend(uow, mailer, email="nobody@example.com")
    assert len(mailer.sent) == 1 and uow.commits == commits
    assert uow.audit.names() == events, "nothing more recorded (the signup's own mail was one)"


def test_asking_for_a_resend_only_enqueues_the_same_job_for_any_address():
    jobs = FakeJobQueue()
    accounts.request_verification_resend(email=" ada@example.com ", jobs=jobs, request_id="r")
    accounts.request_verification_resend(email="nobody@example.com", jobs=jobs)
    assert jobs.jobs == [
        ("resend_verification", "mail", {"email": "ada@example.com", "request_id": "r"}),
        ("resend_verification", "mail", {"email": "nobody@example.com", "request_id": None}),
    ]


def test_a_signup_whose_mail_fails_still_stands_and_the_user_is_public():
    uow = with_spares()
    result = signup(uow, FakeMailer(down=True))
    assert uow.users.get(result.user.id) is not None
    user = accounts.get_user(user_id=result.user.id, uow=uow)
    assert user.email == "Ada@Example.com" and user.password_hash is None
    with pytest.raises(NotFound):
        accounts.get_user(user_id=uuid.uuid4(), uow=uow)


def test_a_workspace_named_like_a_reserved_slug_gets_a_suffixed_one():
    uow, mailer = with_spares(), FakeMailer()
    result = signup(uow, mailer, workspace="Admin")
    assert result.tenant.slug.startswith("admin-") and len(result.tenant.slug) == len("admin-") + 6


def test_signup_takes_a_ready_workspace_and_asks_once_for_a_refill_below_the_target():
    uow, mailer, jobs = with_spares(3), FakeMailer(), FakeJobQueue()
    spares = {spare.id for spare in uow.schemas.spares}
    first = signup(uow, mailer, jobs=jobs, target=3)
    second = signup(uow, mailer, email="bob@example.com", workspace="Bob", jobs=jobs, target=3)
    assert {first.tenant.id, second.tenant.id} <= spares and first.tenant.id != second.tenant.id
    assert uow.schemas.schemas == {}, "signup never builds a schema"
    assert [task for task, _queue, _arguments in jobs.jobs] == [REFILL_SPARES_TASK]  # the queueing lock: one


def test_signup_with_no_workspace_ready_writes_nothing_and_asks_for_a_refill():
    uow, mailer, jobs = with_spares(0), FakeMailer(), FakeJobQueue()
    with pytest.raises(Unavailable) as unavailable:
        signup(uow, mailer, jobs=jobs, target=0)
    assert unavailable.value.code == "tenant_unavailable" and unavailable.value.retry_after_s > 0
    assert uow.commits == 0 and uow.users.rows == {} and uow.schemas.schemas == {} and mailer.sent == []
    assert [task for task, _queue, _arguments in jobs.jobs] == [REFILL_SPARES_TASK]
    uow.schemas.add_spares(1)  # the worker ran: the same signup now works
    assert signup(uow, mailer, jobs=jobs).tenant.slug == "acme-studio"


def test_a_refill_that_cannot_be_asked_for_fails_no_signup():
    jobs = FakeJobQueue(failure=ConnectionError("queue unreachable"))
    uow, mailer = with_spares(1), FakeMailer()
    assert signup(uow, mailer, jobs=jobs, target=5).tenant.slug == "acme-studio"
    with pytest.raises(Unavailable):
        signup(uow, mailer, email="bob@example.com", workspace="Bob", jobs=jobs, target=5)
