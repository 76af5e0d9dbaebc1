"""In-memory implementations of the Protocols of backend/service/ports.py, for unit tests of
the service rules (cosmicpython's `FakeUnitOfWork` and `FakeRepository`): plain dicts and
lists, no SQL, no mocks. A unit of work keeps nothing written unless `commit()` was called,
like the SQL one: a service that forgets to commit, or raises before, is caught by a test.

They implement what a rule needs to be observed, not PostgreSQL: constraints the database
enforces (unique emails, overlapping appointments, isolation) are tested against it in
tests/integration."""

from __future__ import annotations

import copy
import io
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from backend.domain.appointments import Appointment, AppointmentFilter
from backend.domain.clients import Client
from backend.domain.errors import Conflict, Invalid
from backend.domain.identity import Membership, MfaFactor, OneTimeToken, RefreshToken, Role, User
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

    def add(self, client: Client) -> Client:
        if client.email and any(c.email == client.email for c in self.rows.values()):
            raise Conflict("client_email_taken")
        self.rows[client.id] = client
        return client

    def get(self, client_id: uuid.UUID) -> Client | None:
        return self.rows.get(client_id)

    def exists(self, client_id: uuid.UUID) -> bool:
        return client_id in self.rows

    def update(self, client_id: uuid.UUID, changes: dict, now: datetime) -> Client | None:
        if client_id not in self.rows:
            return None
        self.rows[client_id] = replace(self.rows[client_id], **changes, updated_at=now)
        return self.rows[client_id]

    def delete(self, client_id: uuid.UUID) -> bool:
        return self.rows.pop(client_id, None) is not None

    def list_page(self, *, offset: int, limit: int, search: str | None = None):
        found = sorted(self.rows.values(), key=lambda c: (c.name, c.id))
        if search:
            lowered = search.lower()
            found = [
                c for c in found if c.name.lower().startswith(lowered) or (c.email or "").startswith(lowered)
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
        self.rows[appointment_id] = replace(self.rows[appointment_id], **changes, updated_at=now)
        return self.rows[appointment_id]

    def delete(self, appointment_id) -> bool:
        return self.rows.pop(appointment_id, None) is not None

    def list_page(self, *, filters: AppointmentFilter, offset: int, limit: int):
        found = [
            a
            for a in sorted(self.rows.values(), key=lambda a: (a.starts_at, a.id))
            if filters.client_id is None or a.client_id == filters.client_id
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
            for m in self.rows.values()
            if m.deleted_at is None and (filters.client_id is None or m.client_id == filters.client_id)
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
        return [m for m in self.rows.values() if m.deleted_at is not None and m.deleted_at < cutoff][:limit]

    def count_deleted_before(self, cutoff: datetime) -> int:
        return len(self.deleted_before(cutoff, len(self.rows)))

    def hard_delete(self, media_ids) -> int:
        return sum(self.rows.pop(media_id, None) is not None for media_id in media_ids)


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
    _stores = ("audit", "clients", "appointments", "media", "client_logins")

    def __init__(self) -> None:
        super().__init__()
        self.clients = FakeClientRepository()
        self.appointments = FakeAppointmentRepository()
        self.media = FakeMediaRepository()
        self.client_logins = FakeClientLogins()


class FakeTenantRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, Tenant] = {}
        self.locked: set[uuid.UUID] = set()  # tenants another migrate run holds

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
        return [t for t in self.rows.values() if status is None or t.status is status]

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

    def count_migratable(self) -> int:
        return len([t for t in self.rows.values() if t.status is not TenantStatus.DELETED])

    def list_behind(self, head: str) -> list[Tenant]:
        return [
            t
            for t in self.rows.values()
            if t.status is not TenantStatus.DELETED
            and (t.schema_version != head or t.last_migration_error is not None)
        ]


class FakeUserRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, User] = {}

    def id_by_email(self, email: str) -> uuid.UUID | None:
        found = self.by_email(email)
        return found.id if found else None

    def add(self, user_id, email, name, password_hash, verified_at=None) -> None:
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

    def mark_verified(self, user_id, at: datetime) -> bool:
        if self.rows[user_id].verified_at is not None:
            return False
        self.rows[user_id] = replace(self.rows[user_id], verified_at=at)
        return True


class FakeMembershipRepository:
    def __init__(self, tenants: FakeTenantRepository) -> None:
        self._tenants = tenants
        self.rows: list[Membership] = []

    def add(self, *, user_id, tenant_id, role: Role, client_id=None) -> uuid.UUID:
        if self.get(user_id, tenant_id) is not None:
            raise Conflict("already_member")
        tenant = self._tenants.get(tenant_id)
        self.rows.append(
            Membership(
                user_id=user_id,
                tenant_id=tenant_id,
                tenant_slug=tenant.slug if tenant else "",
                tenant_status=tenant.status if tenant else TenantStatus.ACTIVE,
                role=role,
                client_id=client_id,
            )
        )
        return uuid.uuid4()

    def for_user(self, user_id) -> list[Membership]:
        return [m for m in self.rows if m.user_id == user_id]

    def get(self, user_id, tenant_id) -> Membership | None:
        return next((m for m in self.rows if m.user_id == user_id and m.tenant_id == tenant_id), None)

    def client_is_linked(self, tenant_id, client_id) -> bool:
        return any(m.tenant_id == tenant_id and m.client_id == client_id for m in self.rows)


class FakeRefreshTokenRepository:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, tuple[bytes, RefreshToken]] = {}

    def add(
        self, *, family_id, user_id, tenant_id, token_hash: bytes, issued_at, expires_at, user_agent=None
    ) -> uuid.UUID:
        token_id = uuid.uuid4()
        token = RefreshToken(token_id, family_id, user_id, tenant_id, expires_at, None, None)
        self.rows[token_id] = (token_hash, token)
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

    def live(self) -> list[RefreshToken]:
        return [t for _, t in self.rows.values() if t.revoked_at is None]


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

    def expire_outstanding(self, kind, *, at, user_id=None, tenant_id=None, client_id=None) -> int:
        hit = [
            i
            for i, (_, t) in self.rows.items()
            if t.kind is kind
            and t.used_at is None
            and t.expires_at > at
            and (user_id is None or t.user_id == user_id)
            and (tenant_id is None or t.tenant_id == tenant_id)
            and (client_id is None or t.client_id == client_id)
        ]
        for token_id in hit:
            digest, token = self.rows[token_id]
            self.rows[token_id] = (digest, replace(token, expires_at=at))
        return len(hit)


@dataclass
class FakeMailer:
    sent: list[dict] = field(default_factory=list)

    def send(self, *, to: str, subject: str, body: str) -> None:
        self.sent.append({"to": to, "subject": subject, "body": body})


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

    def create(self, schema_name: str) -> str:
        if schema_name in self.schemas:
            raise Conflict("schema_exists")
        self.schemas[schema_name] = self.head
        return self.head

    def claim_spare(self) -> SpareSchema | None:
        return self.spares.pop(0) if self.spares else None

    def migrate(self, schema_name, *, from_version=None, lock_timeout_ms=None) -> SchemaUpgrade:
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
    )

    def __init__(self) -> None:
        super().__init__()
        self.refresh_tokens = FakeRefreshTokenRepository()
        self.one_time_tokens = FakeOneTimeTokenRepository()
        self.tenants = FakeTenantRepository()
        self.users = FakeUserRepository()
        self.memberships = FakeMembershipRepository(self.tenants)
        self.schemas = FakeSchemaManager()
        self.mfa = FakeMfaRepository()


class FakeDeletionRepository:
    def __init__(self, tenants: FakeTenantRepository) -> None:
        self._tenants = tenants
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
        return 0, 0

    def tombstone(self, tenant_id, now: datetime) -> None:
        self._tenants.rows[tenant_id] = replace(
            self._tenants.rows[tenant_id], status=TenantStatus.DELETED, deleted_at=now
        )


class FakeDeletionUnitOfWork(FakeRegistryUnitOfWork):
    _stores = (*FakeRegistryUnitOfWork._stores, "deletion")

    def __init__(self) -> None:
        super().__init__()
        self.deletion = FakeDeletionRepository(self.tenants)


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
