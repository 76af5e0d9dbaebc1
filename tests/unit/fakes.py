"""In-memory implementations of the Protocols of backend/service/ports.py, for unit tests of
the service rules (cosmicpython's `FakeUnitOfWork` and `FakeRepository`): plain dicts and
lists, no SQL, no mocks. A unit of work keeps nothing written unless `commit()` was called,
like the SQL one: a service that forgets to commit, or raises before, is caught by a test.

They implement what a rule needs to be observed, not PostgreSQL, but where the SQL version
turns a constraint into a domain error (backend/infrastructure/sql/errors.py: `slug_taken`,
`email_taken`, `client_email_taken`, `already_member`) the fake raises the same one, and reads
that join the registry (a membership's tenant slug and status, a purged tenant's members) see
the registry as it is now. Overlapping appointments, locks and isolation between tenants are
tested against PostgreSQL in tests/integration."""

from __future__ import annotations

import copy
import io
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from backend.domain.appointments import Appointment, AppointmentFilter, AppointmentStatus
from backend.domain.clients import Client
from backend.domain.errors import Conflict, Invalid, Unavailable
from backend.domain.identity import (
    ClientContact,
    Membership,
    MfaFactor,
    OneTimeToken,
    RefreshToken,
    Role,
    SessionInfo,
    User,
)
from backend.domain.lifecycle import ArchiveContents, ArchivedUser, ArchiveSummary, UnverifiedSignup
from backend.domain.media import Media, MediaFilter
from backend.domain.tenants import (
    SchemaDowngrade,
    SchemaUpgrade,
    SpareSchema,
    Tenant,
    TenantStatus,
    UpgradeMethod,
)


class FakeAuditLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def record(self, event: str, **fields: object) -> None:
        self.events.append((event, fields))

    def list_page(self, *, tenant_id: uuid.UUID, offset: int, limit: int):
        mine = [(e, f) for e, f in reversed(self.events) if f.get("tenant_id") == tenant_id]
        return mine[offset : offset + limit], len(mine)

    def names(self) -> list[str]:
        return [event for event, _ in self.events]


class FakeClientRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Client] = {}

    def _check_free(self, email: str | None, client_id) -> None:
        # uq_clients_email_lower: one client per address in a workspace, whatever the case
        if email and any(
            c.id != client_id and (c.email or "").lower() == email.lower() for c in self.rows.values()
        ):
            raise Conflict("client_email_taken")

    def add(self, client: Client) -> Client:
        self._check_free(client.email, client.id)
        self.rows[client.id] = client
        return client

    def get(self, client_id: uuid.UUID) -> Client | None:
        return self.rows.get(client_id)

    def exists(self, client_id: uuid.UUID) -> bool:
        return client_id in self.rows

    def update(self, client_id: uuid.UUID, changes: dict, now: datetime) -> Client | None:
        if client_id not in self.rows:
            return None
        if "email" in changes:
            self._check_free(changes["email"], client_id)
        self.rows[client_id] = replace(self.rows[client_id], **changes, updated_at=now)
        return self.rows[client_id]

    def delete(self, client_id: uuid.UUID) -> bool:
        return self.rows.pop(client_id, None) is not None

    def list_page(self, *, offset: int, limit: int, search: str | None = None):
        found = sorted(self.rows.values(), key=lambda c: (c.name.lower(), c.id))
        if search:
            lowered = search.lower()
            found = [
                c
                for c in found
                if c.name.lower().startswith(lowered) or (c.email or "").lower().startswith(lowered)
            ]
        return found[offset : offset + limit], len(found)


class FakeAppointmentRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Appointment] = {}

    def add(self, appointment: Appointment) -> Appointment:
        self.rows[appointment.id] = appointment
        return appointment

    def get(self, appointment_id, *, client_id=None, for_update=False) -> Appointment | None:
        found = self.rows.get(appointment_id)
        if found is None or (client_id is not None and found.client_id != client_id):
            return None
        return found

    def update(self, appointment_id, changes: dict, now: datetime) -> Appointment | None:
        if appointment_id not in self.rows:
            return None
        if "status" in changes:  # stored as text, read back as the enum
            changes = {**changes, "status": AppointmentStatus(changes["status"])}
        self.rows[appointment_id] = replace(self.rows[appointment_id], **changes, updated_at=now)
        return self.rows[appointment_id]

    def delete(self, appointment_id) -> bool:
        return self.rows.pop(appointment_id, None) is not None

    def list_page(self, *, filters: AppointmentFilter, offset: int, limit: int):
        found = [
            a
            for a in sorted(self.rows.values(), key=lambda a: (a.starts_at, a.id))
            if (filters.client_id is None or a.client_id == filters.client_id)
            and (filters.status is None or a.status is filters.status)
            and (filters.starts_from is None or a.starts_at >= filters.starts_from)
            and (filters.starts_before is None or a.starts_at < filters.starts_before)
        ]
        return found[offset : offset + limit], len(found)


class FakeMediaRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Media] = {}

    def add(self, media: Media) -> Media:
        self.rows[media.id] = media
        return media

    def get(self, media_id, *, client_id=None) -> Media | None:
        found = self.rows.get(media_id)
        if found is None or found.deleted_at is not None:
            return None
        if client_id is not None and found.client_id != client_id:
            return None
        return found

    def list_page(self, *, filters: MediaFilter, offset: int, limit: int):
        found = [
            m
            for m in sorted(self.rows.values(), key=lambda m: (m.created_at, m.id), reverse=True)
            if m.deleted_at is None
            and (filters.client_id is None or m.client_id == filters.client_id)
            and (filters.appointment_id is None or m.appointment_id == filters.appointment_id)
        ]
        return found[offset : offset + limit], len(found)

    def soft_delete(self, media_id, now: datetime) -> bool:
        found = self.get(media_id)
        if found is None:
            return False
        self.rows[media_id] = replace(found, deleted_at=now)
        return True

    def soft_delete_for_client(self, client_id, now: datetime) -> int:
        mine = [m for m in self.rows.values() if m.client_id == client_id and m.deleted_at is None]
        for media in mine:
            self.rows[media.id] = replace(media, deleted_at=now)
        return len(mine)

    def deleted_before(self, cutoff: datetime, limit: int) -> list[Media]:
        old = [m for m in self.rows.values() if m.deleted_at is not None and m.deleted_at < cutoff]
        return sorted(old, key=lambda m: (m.deleted_at, m.id))[:limit]

    def count_deleted_before(self, cutoff: datetime) -> int:
        return len(self.deleted_before(cutoff, len(self.rows)))

    def hard_delete(self, media_ids) -> int:
        return sum(self.rows.pop(media_id, None) is not None for media_id in media_ids)

    def oldest_deleted_at(self) -> datetime | None:
        return min((m.deleted_at for m in self.rows.values() if m.deleted_at is not None), default=None)


class FakeMediaTrash:
    """One tenant's note in the registry's scheduled work (`FakeScheduledWork.media_trash`)."""

    def __init__(self, schedule: FakeScheduledWork, tenant_id: uuid.UUID) -> None:
        self._schedule = schedule
        self._tenant_id = tenant_id
        self.locks = 0

    def trashed(self, at: datetime) -> None:
        current = self._schedule.media_trash.get(self._tenant_id)
        self._schedule.media_trash[self._tenant_id] = at if current is None else min(current, at)

    def lock(self) -> None:
        self.locks += 1

    def settle(self, oldest: datetime | None) -> None:
        if oldest is None:
            self._schedule.media_trash.pop(self._tenant_id, None)
        else:
            self._schedule.media_trash[self._tenant_id] = oldest


def _state(store) -> dict:
    # Public attributes hold the data; `_`-prefixed ones are links to other stores.
    return copy.deepcopy({k: v for k, v in vars(store).items() if not k.startswith("_")})


class _FakeUnitOfWork:
    """Repositories are snapshotted on entry; leaving without commit() restores them."""

    _stores: tuple[str, ...] = ("audit",)

    def __init__(self) -> None:
        self.audit = FakeAuditLog()
        self.commits = 0
        self._saved: dict | None = None

    def __enter__(self):
        self._saved = {name: _state(getattr(self, name)) for name in self._stores}
        return self

    def __exit__(self, *exc_info):
        self.rollback()
        return None

    def commit(self) -> None:
        self.commits += 1
        self._saved = {name: _state(getattr(self, name)) for name in self._stores}

    def rollback(self) -> None:
        if self._saved is not None:
            for name, state in self._saved.items():
                getattr(self, name).__dict__.update(copy.deepcopy(state))


class FakeClientLogins:
    """Outstanding invitations and logins per client id, as the registry would hold them."""

    def __init__(self) -> None:
        self.invitations: dict[uuid.UUID, int] = {}
        self.logins: dict[uuid.UUID, int] = {}
        self.revoked: list[uuid.UUID] = []

    def revoke_invitations(self, client_id: uuid.UUID, at: datetime) -> int:
        self.revoked.append(client_id)
        return self.invitations.pop(client_id, 0)

    def remove(self, client_id: uuid.UUID, at: datetime) -> int:
        self.revoke_invitations(client_id, at)
        return self.logins.pop(client_id, 0)


class FakeTenantUnitOfWork(_FakeUnitOfWork):
    """`schedule`: the registry's scheduled work the tenant's trash notes go to (shared with
    a FakeRetentionUnitOfWork to follow a retention run); its own when not given."""

    _stores = ("audit", "clients", "appointments", "media", "client_logins", "_schedule")

    def __init__(self, tenant_id: uuid.UUID | None = None, schedule: FakeScheduledWork | None = None) -> None:
        super().__init__()
        self.tenant_id = tenant_id or uuid.uuid4()
        self.clients = FakeClientRepository()
        self.appointments = FakeAppointmentRepository()
        self.media = FakeMediaRepository()
        self.client_logins = FakeClientLogins()
        self._schedule = schedule if schedule is not None else FakeScheduledWork()
        self.media_trash = FakeMediaTrash(self._schedule, self.tenant_id)


_NOT_MIGRATABLE = (TenantStatus.PROVISIONING, TenantStatus.DELETED)


class FakeTenantRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Tenant] = {}
        self.locked: set[uuid.UUID] = set()  # tenants another migrate run holds
        self.mfa_required_ids: set[uuid.UUID] = set()  # workspaces requiring a second factor

    def add(self, tenant: Tenant) -> None:
        if any(t.slug == tenant.slug for t in self.rows.values()):
            raise Conflict("slug_taken")
        self.rows[tenant.id] = tenant

    def get(self, tenant_id) -> Tenant | None:
        return self.rows.get(tenant_id)

    def get_by_slug(self, slug: str) -> Tenant | None:
        return next((t for t in self.rows.values() if t.slug == slug), None)

    def lock_by_slug(self, slug: str) -> Tenant | None:
        return self.get_by_slug(slug)

    def list(self, status: TenantStatus | None = None) -> list[Tenant]:
        found = [t for t in self.rows.values() if status is None or t.status is status]
        return sorted(found, key=lambda t: (t.created_at, t.id))

    def set_status(self, tenant_id, status: TenantStatus, *, disabled_at) -> None:
        self.rows[tenant_id] = replace(self.rows[tenant_id], status=status, disabled_at=disabled_at)

    def set_trial_end(self, tenant_id, trial_ends_at) -> None:
        self.rows[tenant_id] = replace(self.rows[tenant_id], trial_ends_at=trial_ends_at)

    def record_migration(self, tenant_id, version, error) -> None:
        changes = {"last_migration_error": error}
        if version is not None:
            changes["schema_version"] = version
        self.rows[tenant_id] = replace(self.rows[tenant_id], **changes)

    def try_lock(self, tenant_id) -> bool:
        return tenant_id not in self.locked

    def mfa_required(self, tenant_id, *, for_update: bool = False) -> bool | None:
        return tenant_id in self.mfa_required_ids if tenant_id in self.rows else None

    def set_mfa_required(self, tenant_id, required: bool) -> None:
        (self.mfa_required_ids.add if required else self.mfa_required_ids.discard)(tenant_id)

    def count_migratable(self) -> int:
        return len([t for t in self.rows.values() if t.status not in _NOT_MIGRATABLE])

    def list_behind(self, head: str) -> list[Tenant]:
        return [
            t
            for t in self.list()
            if t.status not in _NOT_MIGRATABLE
            and (t.schema_version != head or t.last_migration_error is not None)
        ]


class FakeUserRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, User] = {}
        self._cascade: tuple = ()  # stores whose rows reference a user (set by the unit of work)

    def id_by_email(self, email: str) -> uuid.UUID | None:
        found = self.by_email(email)
        return found.id if found else None

    def _check_free(self, email: str, user_id) -> None:
        # uq_users_email_lower: one account per address, whatever the case
        holder = self.by_email(email)
        if holder is not None and holder.id != user_id:
            raise Conflict("email_taken")

    def add(self, user_id, email, name, password_hash, verified_at=None) -> None:
        self._check_free(email, user_id)
        self.rows[user_id] = User(
            id=user_id,
            email=email,
            name=name,
            password_hash=password_hash,
            verified_at=verified_at,
            created_at=datetime.now(UTC),
        )

    def get(self, user_id, *, for_update=False) -> User | None:
        return self.rows.get(user_id)

    def by_email(self, email: str, *, for_update=False) -> User | None:
        return next((u for u in self.rows.values() if u.email.lower() == email.lower()), None)

    def set_password_hash(self, user_id, password_hash: str) -> None:
        self.rows[user_id] = replace(self.rows[user_id], password_hash=password_hash)

    def set_name(self, user_id, name: str) -> None:
        self.rows[user_id] = replace(self.rows[user_id], name=name)

    def set_email(self, user_id, email: str) -> None:
        self._check_free(email, user_id)
        self.rows[user_id] = replace(self.rows[user_id], email=email)

    def delete(self, user_id) -> None:
        """Tokens, memberships and second factor go with the user (ON DELETE CASCADE)."""
        self.rows.pop(user_id, None)
        for store in self._cascade:
            store.forget_user(user_id)

    def mark_verified(self, user_id, at: datetime) -> bool:
        if self.rows[user_id].verified_at is not None:
            return False
        self.rows[user_id] = replace(self.rows[user_id], verified_at=at)
        return True


class FakeMembershipRepository:
    """Rows are (user, tenant, role, client); the tenant's slug and status are read from the
    registry when a membership is read, as the SQL join does."""

    def __init__(self, tenants: FakeTenantRepository, users: FakeUserRepository) -> None:
        self._tenants = tenants
        self._users = users
        self.rows: list[tuple[uuid.UUID, uuid.UUID, Role, uuid.UUID | None]] = []

    def add(self, *, user_id, tenant_id, role: Role, client_id=None) -> uuid.UUID:
        if (role is Role.CLIENT) != (client_id is not None):
            raise ValueError("memberships.client_link: a client membership names its client, only it")
        if any(r[0] == user_id and r[1] == tenant_id for r in self.rows):
            raise Conflict("already_member")  # uq_memberships_user_id_tenant_id
        self.rows.append((user_id, tenant_id, role, client_id))
        return uuid.uuid4()

    def _read(self, row) -> Membership | None:
        user_id, tenant_id, role, client_id = row
        tenant = self._tenants.get(tenant_id)
        if tenant is None:  # the inner join finds nothing
            return None
        return Membership(user_id, tenant_id, tenant.slug, tenant.status, role, client_id)

    def for_user(self, user_id) -> list[Membership]:
        found = [self._read(r) for r in self.rows if r[0] == user_id]
        live = [m for m in found if m is not None and m.tenant_status is not TenantStatus.DELETED]
        return sorted(live, key=lambda m: m.tenant_slug)

    def get(self, user_id, tenant_id) -> Membership | None:
        row = next((r for r in self.rows if r[0] == user_id and r[1] == tenant_id), None)
        return self._read(row) if row else None

    def remove(self, user_id, tenant_id) -> bool:
        before = len(self.rows)
        self.rows = [r for r in self.rows if not (r[0] == user_id and r[1] == tenant_id)]
        return len(self.rows) < before

    def worker_emails(self, tenant_id) -> list[str]:
        ids = [r[0] for r in self.rows if r[1] == tenant_id and r[2] is Role.WORKER]
        return sorted(self._users.rows[i].email for i in ids if i in self._users.rows)

    def client_is_linked(self, tenant_id, client_id) -> bool:
        return any(r[1] == tenant_id and r[3] == client_id for r in self.rows)

    def forget_user(self, user_id) -> None:
        self.rows = [r for r in self.rows if r[0] != user_id]


class FakeRefreshTokenRepository:
    """Tokens by id with their digest, issue time and user agent; a session is a family."""

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, tuple[bytes, RefreshToken]] = {}
        self.issued: dict[uuid.UUID, tuple[datetime, str | None]] = {}  # id -> (issued_at, agent)

    def add(
        self, *, family_id, user_id, tenant_id, token_hash: bytes, issued_at, expires_at, user_agent=None
    ) -> uuid.UUID:
        token_id = uuid.uuid4()
        token = RefreshToken(token_id, family_id, user_id, tenant_id, expires_at, None, None)
        self.rows[token_id] = (token_hash, token)
        self.issued[token_id] = (issued_at, user_agent)
        return token_id

    def lock_by_hash(self, token_hash: bytes) -> RefreshToken | None:
        return next((token for digest, token in self.rows.values() if digest == token_hash), None)

    def mark_used(self, token_id, at: datetime) -> None:
        digest, token = self.rows[token_id]
        self.rows[token_id] = (digest, replace(token, used_at=at))

    def _revoke(self, keep, at: datetime) -> int:
        hit = [i for i, (_, t) in self.rows.items() if keep(t) and t.revoked_at is None]
        for token_id in hit:
            digest, token = self.rows[token_id]
            self.rows[token_id] = (digest, replace(token, revoked_at=at))
        return len(hit)

    def revoke_family(self, family_id, at: datetime) -> int:
        return self._revoke(lambda t: t.family_id == family_id, at)

    def revoke_for(self, user_id, tenant_id, at: datetime) -> int:
        return self._revoke(lambda t: t.user_id == user_id and t.tenant_id == tenant_id, at)

    def revoke_all_for_user(self, user_id, at: datetime) -> int:
        return self._revoke(lambda t: t.user_id == user_id, at)

    def revoke_user_family(self, user_id, tenant_id, family_id, at: datetime) -> int:
        return self._revoke(
            lambda t: t.family_id == family_id and t.user_id == user_id and t.tenant_id == tenant_id, at
        )

    def revoke_others(self, user_id, tenant_id, keep_family, at: datetime) -> int:
        return self._revoke(
            lambda t: (
                t.user_id == user_id
                and (tenant_id is None or t.tenant_id == tenant_id)
                and (keep_family is None or t.family_id != keep_family)
            ),
            at,
        )

    def sessions_of(self, user_id, tenant_id, now: datetime) -> list[SessionInfo]:
        """Families with no revoked token and one not expired, newest use first (as the SQL's
        GROUP BY family ... HAVING bool_and(revoked_at IS NULL) AND max(expires_at) > now)."""
        families: dict[uuid.UUID, list[RefreshToken]] = {}
        for _, token in self.rows.values():
            if token.user_id == user_id and token.tenant_id == tenant_id:
                families.setdefault(token.family_id, []).append(token)
        found = []
        for family_id, tokens in families.items():
            if any(t.revoked_at is not None for t in tokens) or max(t.expires_at for t in tokens) <= now:
                continue
            issued = sorted((self.issued[t.id] for t in tokens), key=lambda pair: pair[0])
            found.append(SessionInfo(family_id, issued[0][0], issued[-1][0], issued[-1][1]))
        return sorted(found, key=lambda s: s.last_used_at, reverse=True)

    def live(self) -> list[RefreshToken]:
        return [t for _, t in self.rows.values() if t.revoked_at is None]

    def forget_user(self, user_id) -> None:
        self.rows = {i: (d, t) for i, (d, t) in self.rows.items() if t.user_id != user_id}


class FakeOneTimeTokenRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, tuple[bytes, OneTimeToken]] = {}

    def add(self, *, kind, token_hash, expires_at, user_id=None, tenant_id=None, client_id=None, email=None):
        token_id = uuid.uuid4()
        self.rows[token_id] = (
            token_hash,
            OneTimeToken(token_id, kind, user_id, tenant_id, client_id, email, expires_at, None),
        )
        return token_id

    def lock_by_hash(self, kind, token_hash: bytes) -> OneTimeToken | None:
        return next((t for digest, t in self.rows.values() if digest == token_hash and t.kind is kind), None)

    def mark_used(self, token_id, at: datetime) -> None:
        digest, token = self.rows[token_id]
        self.rows[token_id] = (digest, replace(token, used_at=at))

    def expire_addressed_to(self, email: str, at: datetime) -> int:
        lowered = email.strip().lower()
        return self._expire(lambda t: (t.email or "").lower() == lowered, at)

    def expire_outstanding(self, kind, *, at, user_id=None, tenant_id=None, client_id=None) -> int:
        return self._expire(
            lambda t: (
                t.kind is kind
                and (user_id is None or t.user_id == user_id)
                and (tenant_id is None or t.tenant_id == tenant_id)
                and (client_id is None or t.client_id == client_id)
            ),
            at,
        )

    def _expire(self, match, at: datetime) -> int:
        hit = [i for i, (_, t) in self.rows.items() if match(t) and t.used_at is None and t.expires_at > at]
        for token_id in hit:
            digest, token = self.rows[token_id]
            self.rows[token_id] = (digest, replace(token, expires_at=at))
        return len(hit)

    def usable(self, kind, now: datetime) -> list[OneTimeToken]:
        """Tokens of this kind that would still open something at `now`."""
        return [
            t for _, t in self.rows.values() if t.kind is kind and t.used_at is None and t.expires_at > now
        ]

    def forget_user(self, user_id) -> None:
        self.rows = {i: (d, t) for i, (d, t) in self.rows.items() if t.user_id != user_id}


@dataclass
class FakeMailer:
    """Keeps what was sent; `down=True` fails every delivery as the SMTP mailer does."""

    sent: list[dict] = field(default_factory=list)
    down: bool = False

    def send(self, *, to: str, subject: str, body: str) -> None:
        if self.down:
            raise Unavailable("mail_unavailable")
        self.sent.append({"to": to, "subject": subject, "body": body})

    def to(self, address: str) -> list[dict]:
        return [m for m in self.sent if m["to"] == address]


@dataclass
class FakeTokenIssuer:
    """Access tokens as readable strings: what was issued, for whom."""

    ttl_s: int = 900
    issued: list[dict] = field(default_factory=list)

    def issue(self, **claims) -> str:
        self.issued.append(claims)
        return f"access-{len(self.issued)}"


@dataclass
class FakeSchemaManager:
    """Schemas by name with their revision; `spares` are claimed first, like the pool."""

    head: str = "r_head"
    schemas: dict[str, str] = field(default_factory=dict)
    spares: list[SpareSchema] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # schemas whose migration raises
    migrations: list[tuple[str, str | None]] = field(default_factory=list)  # (schema, from_version)

    def create(self, schema_name: str) -> str:
        if schema_name in self.schemas:
            raise Conflict("schema_exists")
        self.schemas[schema_name] = self.head
        return self.head

    def claim_spare(self) -> SpareSchema | None:
        return self.spares.pop(0) if self.spares else None

    def ready_spares(self) -> int:
        return sum(1 for spare in self.spares if spare.revision == self.head)

    def add_spares(self, count: int) -> None:
        self.spares += [SpareSchema(id=uuid.uuid4(), revision=self.head) for _ in range(count)]

    def migrate(self, schema_name, *, from_version=None, lock_timeout_ms=None) -> SchemaUpgrade:
        if schema_name in self.broken:
            raise RuntimeError("column already exists\n[SQL: ALTER TABLE ...]")
        self.migrations.append((schema_name, from_version))
        self.schemas[schema_name] = self.head
        return SchemaUpgrade(self.head, UpgradeMethod.SCRIPT)

    def downgrade(self, schema_name: str, revision: str) -> SchemaDowngrade:
        """The tree is `r_first` -> `r_head`: only a revision below the schema's is reached."""
        current = self.schemas[schema_name]
        order = ["r_first", self.head]
        if revision not in order or order.index(revision) >= order.index(current):
            raise Invalid({"to": [f"{revision!r} is not a revision below {current!r}"]})
        self.schemas[schema_name] = revision
        return SchemaDowngrade(from_version=current, version=revision)

    def drop(self, schema_name: str) -> None:
        self.schemas.pop(schema_name, None)


class FakeMfaRepository:
    """Second factors by user (service/identity/mfa.py); recovery codes as digest -> used_at."""

    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, MfaFactor] = {}
        self.codes: dict[uuid.UUID, dict[bytes, datetime | None]] = {}

    def get(self, user_id, *, for_update: bool = False) -> MfaFactor | None:
        return self.rows.get(user_id)

    def start(self, user_id, secret_sealed: bytes) -> None:
        current = self.rows.get(user_id)
        if current is not None and current.enabled_at is not None:
            raise ValueError("user_mfa_pkey: an enabled factor is never replaced by start()")
        self.rows[user_id] = MfaFactor(user_id, secret_sealed, None, None)

    def enable(self, user_id, at: datetime, step: int) -> None:
        self.rows[user_id] = replace(self.rows[user_id], enabled_at=at, last_step=step)

    def accept_step(self, user_id, step: int) -> None:
        self.rows[user_id] = replace(self.rows[user_id], last_step=step)

    def remove(self, user_id) -> bool:
        self.codes.pop(user_id, None)
        return self.rows.pop(user_id, None) is not None

    def replace_recovery_codes(self, user_id, digests: list[bytes]) -> None:
        self.codes[user_id] = dict.fromkeys(digests)

    def spend_recovery_code(self, user_id, digest: bytes, at: datetime) -> bool:
        codes = self.codes.get(user_id, {})
        if digest in codes and codes[digest] is None:
            codes[digest] = at
            return True
        return False

    def recovery_codes_left(self, user_id) -> int:
        return sum(1 for used in self.codes.get(user_id, {}).values() if used is None)

    def forget_user(self, user_id) -> None:
        self.remove(user_id)


class FakeClientDirectory:
    """Client records by tenant schema, as identity reads them for invitations."""

    def __init__(self) -> None:
        self.contacts: dict[str, dict[uuid.UUID, ClientContact]] = {}

    def put(self, schema_name: str, contact: ClientContact) -> ClientContact:
        self.contacts.setdefault(schema_name, {})[contact.id] = contact
        return contact

    def contact(self, schema_name: str, client_id) -> ClientContact | None:
        return self.contacts.get(schema_name, {}).get(client_id)


class FakeSecretBox:
    """Sealing that visibly changes the bytes, so a secret stored unsealed is noticed."""

    def seal(self, secret: bytes) -> bytes:
        return b"sealed:" + secret[::-1]

    def open(self, sealed: bytes) -> bytes:
        if not sealed.startswith(b"sealed:"):
            raise ValueError("not sealed by this box")
        return sealed[len(b"sealed:") :][::-1]


class FakeRegistryUnitOfWork(_FakeUnitOfWork):
    _stores = (
        "audit",
        "tenants",
        "users",
        "memberships",
        "schemas",
        "refresh_tokens",
        "one_time_tokens",
        "mfa",
        "client_directory",
    )

    def __init__(self) -> None:
        super().__init__()
        self.refresh_tokens = FakeRefreshTokenRepository()
        self.one_time_tokens = FakeOneTimeTokenRepository()
        self.tenants = FakeTenantRepository()
        self.users = FakeUserRepository()
        self.memberships = FakeMembershipRepository(self.tenants, self.users)
        self.schemas = FakeSchemaManager()
        self.mfa = FakeMfaRepository()
        self.client_directory = FakeClientDirectory()
        self.users._cascade = (self.memberships, self.refresh_tokens, self.one_time_tokens, self.mfa)


class FakeDeletionRepository:
    def __init__(self, tenants: FakeTenantRepository, memberships: FakeMembershipRepository) -> None:
        self._tenants = tenants
        self._memberships = memberships
        self.scheduled: dict[uuid.UUID, TenantStatus] = {}  # tenant -> status before

    def lock(self, tenant_id) -> bool:
        return tenant_id in self._tenants.rows

    def schedule(self, tenant_id, due_at: datetime) -> None:
        tenant = self._tenants.rows[tenant_id]
        if tenant.status is not TenantStatus.DELETION_SCHEDULED:
            self.scheduled[tenant_id] = tenant.status
        self._tenants.rows[tenant_id] = replace(
            tenant, status=TenantStatus.DELETION_SCHEDULED, deletion_due_at=due_at
        )

    def cancel(self, tenant_id) -> None:
        previous = self.scheduled.pop(tenant_id)
        self._tenants.rows[tenant_id] = replace(
            self._tenants.rows[tenant_id], status=previous, deletion_due_at=None
        )

    def remove_tokens(self, tenant_id) -> int:
        return 0

    def remove_members(self, tenant_id) -> tuple[int, int]:
        gone = [r for r in self._memberships.rows if r[1] == tenant_id]
        self._memberships.rows = [r for r in self._memberships.rows if r[1] != tenant_id]
        return len(gone), 0

    def tombstone(self, tenant_id, now: datetime) -> None:
        self._tenants.rows[tenant_id] = replace(
            self._tenants.rows[tenant_id], status=TenantStatus.DELETED, deleted_at=now
        )


class FakeDeletionUnitOfWork(FakeRegistryUnitOfWork):
    _stores = (*FakeRegistryUnitOfWork._stores, "deletion")

    def __init__(self) -> None:
        super().__init__()
        self.deletion = FakeDeletionRepository(self.tenants, self.memberships)


class FakeScheduledWork:
    """The registry's due work: tenants' trash notes, and the unverified users it would find
    (from the user and membership repositories it is given)."""

    def __init__(self, tenants=None, users=None, memberships=None) -> None:
        self.media_trash: dict[uuid.UUID, datetime] = {}
        self._tenants, self._users, self._memberships = tenants, users, memberships
        self.reads = 0

    def media_due(self, trashed_before: datetime) -> list[Tenant]:
        self.reads += 1
        due = sorted(
            (since, tenant_id) for tenant_id, since in self.media_trash.items() if since < trashed_before
        )
        with_schema = (TenantStatus.ACTIVE, TenantStatus.DISABLED, TenantStatus.DELETION_SCHEDULED)
        found = [self._tenants.rows.get(tenant_id) for _, tenant_id in due]
        return [t for t in found if t is not None and t.status in with_schema]

    def unverified_signups(self, created_before: datetime) -> list[UnverifiedSignup]:
        self.reads += 1
        found = []
        for user in self._users.rows.values():
            if (
                user.verified_at is not None
                or user.password_hash is None
                or user.created_at >= created_before
            ):
                continue
            # Rows are (user, tenant, role, client), whatever the tenant's status (the SQL's join).
            mine = [r for r in self._memberships.rows if r[0] == user.id]
            shared = any(
                role is not Role.WORKER
                or any(o[1] == tenant_id and o[0] != user.id for o in self._memberships.rows)
                for _, tenant_id, role, _ in mine
            )
            found.append(UnverifiedSignup(user.id, tuple(r[1] for r in mine), shared))
        return found

    def remove_unverified_user(self, user_id: uuid.UUID) -> bool:
        user = self._users.rows.get(user_id)
        if (
            user is None
            or user.verified_at is not None
            or any(r[0] == user_id for r in self._memberships.rows)
        ):
            return False
        del self._users.rows[user_id]
        return True


class FakeRetentionRepository:
    def __init__(self) -> None:
        self.audit_times: list[datetime] = []

    def audit_events_before(self, cutoff: datetime) -> int:
        return sum(t < cutoff for t in self.audit_times)

    def delete_audit_events_before(self, cutoff: datetime) -> int:
        before = len(self.audit_times)
        self.audit_times = [t for t in self.audit_times if t >= cutoff]
        return before - len(self.audit_times)


class FakeRetentionUnitOfWork(FakeDeletionUnitOfWork):
    """The registry with its deletion, retention and scheduled-work repositories: one object
    serves as the deletion and the retention unit of work of a run."""

    _stores = (*FakeDeletionUnitOfWork._stores, "retention", "scheduled")

    def __init__(self) -> None:
        super().__init__()
        self.retention = FakeRetentionRepository()
        self.scheduled = FakeScheduledWork(self.tenants, self.users, self.memberships)

    def tenant_uow(self, tenant_id: uuid.UUID) -> FakeTenantUnitOfWork:
        """A tenant unit of work whose trash notes land in this registry."""
        return FakeTenantUnitOfWork(tenant_id, self.scheduled)


class FakeMediaStorage:
    """Files in a dict, `{tenant id: {name: bytes}}`."""

    def __init__(self) -> None:
        self.files_by_tenant: dict[uuid.UUID, dict[str, bytes]] = {}

    def save(self, tenant_id, media_id, chunks) -> None:
        self.files_by_tenant.setdefault(tenant_id, {})[str(media_id)] = b"".join(chunks)

    def open(self, tenant_id, name):
        try:
            return io.BytesIO(self.files_by_tenant[tenant_id][str(name)])
        except KeyError:
            raise FileNotFoundError(name) from None

    def files(self, tenant_id):
        return iter(sorted(self.files_by_tenant.get(tenant_id, {})))

    def delete(self, tenant_id, media_id) -> None:
        self.files_by_tenant.get(tenant_id, {}).pop(str(media_id), None)

    def delete_tenant(self, tenant_id) -> int:
        return len(self.files_by_tenant.pop(tenant_id, {}))


class FakeRestoreRepository:
    """Loads an archive's schema under a new name, revives a tombstone, recreates users."""

    def __init__(self, tenants: FakeTenantRepository, users: FakeUserRepository, schemas) -> None:
        self._tenants, self._users, self._schemas = tenants, users, schemas

    def load_schema(self, archive, schema_name: str) -> None:
        if schema_name in self._schemas.schemas:
            raise ValueError(f"schema {schema_name} already exists")  # CREATE SCHEMA fails
        self._schemas.schemas[schema_name] = archive.contents.schema_version

    def revive(self, tenant: Tenant) -> None:
        self._tenants.rows[tenant.id] = replace(
            self._tenants.rows[tenant.id],
            slug=tenant.slug,
            name=tenant.name,
            status=tenant.status,
            plan=tenant.plan,
            trial_ends_at=tenant.trial_ends_at,
            deleted_at=None,
            deletion_due_at=None,
            last_migration_error=None,
        )

    def add_user(self, user: ArchivedUser) -> uuid.UUID:
        user_id = uuid.uuid4() if user.id in self._users.rows else user.id
        self._users.add(user_id, user.email, user.name, user.password_hash, user.verified_at)
        return user_id


class FakeRestoreUnitOfWork(FakeRegistryUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.restore = FakeRestoreRepository(self.tenants, self.users, self.schemas)


@dataclass
class FakeTenantArchive:
    """An opened operator archive: its contents, and media staged for the restored tenant."""

    contents: ArchiveContents
    media_files: int = 0
    fail_media: bool = False
    dump_path: str = "/nonexistent/schema.dump"
    server_major: int | None = 18
    installed: dict[uuid.UUID, int] = field(default_factory=dict)

    def install_media(self, tenant_id) -> int:
        self.installed[tenant_id] = self.media_files
        if self.fail_media:
            raise OSError("disk full")
        return self.media_files

    def remove_media(self, tenant_id) -> None:
        self.installed.pop(tenant_id, None)


@dataclass
class FakeTenantArchiver:
    """Writes nothing: returns a summary for the tenant, or fails like a pg_dump that dies."""

    fail: bool = False
    dumped: list[tuple[uuid.UUID, str]] = field(default_factory=list)

    def dump(self, tenant: Tenant, out) -> ArchiveSummary:
        if self.fail:
            raise RuntimeError("pg_dump exited with 1")
        self.dumped.append((tenant.id, str(out)))
        return ArchiveSummary(str(out), 1234, tenant.schema_version, 2, 5)


@dataclass
class FakeJobQueue:
    """Jobs as (task, queue, arguments), in the order enqueued; one waiting job per queueing
    lock, as procrastinate's (a second enqueue under a held lock returns None); `failure` is
    raised by every enqueue (a queue that cannot be written to)."""

    jobs: list[tuple[str, str, dict]] = field(default_factory=list)
    locks: set[str] = field(default_factory=set)
    failure: Exception | None = None

    def enqueue(
        self, task_name: str, *, queue: str = "default", queueing_lock: str | None = None, **arguments
    ) -> int | None:
        if self.failure is not None:
            raise self.failure
        if queueing_lock is not None:
            if queueing_lock in self.locks:
                return None
            self.locks.add(queueing_lock)
        self.jobs.append((task_name, queue, arguments))
        return len(self.jobs)


class FakeExportFiles:
    """Operator archives by path with their age: `{path: modified}`."""

    def __init__(self) -> None:
        self.files: dict[Path, datetime] = {}

    def older_than(self, cutoff: datetime) -> list[Path]:
        return sorted(path for path, modified in self.files.items() if modified < cutoff)

    def remove(self, path: Path) -> bool:
        return self.files.pop(path, None) is not None


def stored_media(
    uow, storage, tenant_id: uuid.UUID, *, created_at: datetime, deleted_at: datetime | None
) -> Media:
    """A media row in the fake tenant unit of work and its file in the fake storage,
    soft-deleted at `deleted_at` (None: live)."""
    item = Media(
        id=uuid.uuid4(),
        client_id=uuid.uuid4(),
        appointment_id=None,
        filename="f.png",
        content_type="image/png",
        size_bytes=3,
        sha256="x",
        uploaded_by=uuid.uuid4(),
        uploaded_by_role="worker",
        created_at=created_at,
        deleted_at=deleted_at,
    )
    uow.media.rows[item.id] = item
    storage.save(tenant_id, item.id, [b"abc"])
    return item
