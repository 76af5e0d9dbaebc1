"""Settings read from the environment, with development defaults.

Each setting is declared once below, with `setting(...)`: its environment variable, type,
default and meaning. pydantic-settings parses and checks them; the settings reference of
docs/operations.md is generated from these declarations (`make settings-doc`, checked by
tests/unit/test_settings_doc.py). To add a setting: one `setting(...)` line here, then
`make settings-doc`.

`Settings(...)` holds exactly the values given (defaults for the rest): it never reads the
process environment, so tests and scripts get what they pass. `Settings.from_env()` reads the
environment (or a given mapping) and checks it. Derive a variant with
`settings.model_copy(update={...})`.

Outside development and test, every secret must come from the environment: a missing one
stops start-up with a one-line error that names it (see `ConfigError`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEVELOPMENT_ENVS = frozenset({"development", "test"})
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MEDIA_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/heic",
    "application/pdf",
)
MIN_METRICS_TOKEN_LENGTH = 16
REQUIRED_IN_PRODUCTION = "— (required in production)"


class ConfigError(RuntimeError):
    """A required setting is missing or malformed; the message is one line naming it."""


def setting(default: Any = None, *, env: str, doc: str, shown: str | None = None, **checks: Any) -> Any:
    """One setting: its environment variable, default and meaning (`shown`: the default as the
    settings reference prints it, when the value itself says less, e.g. a path or a fallback)."""
    extra = {"shown_default": shown} if shown is not None else None
    return Field(default, alias=env, description=doc, json_schema_extra=extra, **checks)


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


CommaList = Annotated[tuple[str, ...], BeforeValidator(_comma_list)]
NonNegative = Annotated[int, Field(ge=0)]


def _rate_limit_env(name: str) -> str:
    return f"RATE_LIMIT_{name.upper()}"


class RateLimits(BaseModel):
    """Flask-Limiter strings (`N per minute;M per hour`) for the abuse-prone routes, per client
    IP and per account (the email, or the one-time token). Environment: RATE_LIMIT_<FIELD>.
    Login counts failures only, per account and address, with a per-account ceiling that slows
    rather than locks (see docs/security.md)."""

    model_config = ConfigDict(
        frozen=True, alias_generator=_rate_limit_env, populate_by_name=True, extra="ignore"
    )

    login_ip: str = "20 per minute;200 per hour"
    login_account: str = Field(
        "5 per minute;20 per hour",
        description="failed logins per account *and* client address ([security.md](security.md))",
    )
    login_account_ceiling: str = Field(
        "50 per hour",
        description="failed logins per account from all addresses; past it every address gets "
        "`RATE_LIMIT_LOGIN_SLOWED` on that account: slowed, never locked ([security.md](security.md))",
    )
    login_slowed: str = Field(
        "1 per minute",
        description="failed logins per account and address once the account's ceiling is reached "
        "([security.md](security.md))",
    )
    signup_ip: str = "5 per minute;30 per hour"
    signup_account: str = "3 per hour"
    verify_ip: str = "10 per minute;60 per hour"
    verify_account: str = "5 per minute;20 per hour"
    invitation_ip: str = "10 per minute;60 per hour"
    invitation_account: str = "5 per minute;20 per hour"
    # Password reset: the request (per email) and the spending of the mailed token.
    password_reset_ip: str = "10 per minute;60 per hour"
    password_reset_account: str = "3 per minute;10 per hour"
    # The second login step: per IP, and failures per MFA challenge.
    mfa_ip: str = "20 per minute;200 per hour"
    mfa_account: str = "5 per minute;20 per hour"
    # A client's own data download: each one streams a zip from a snapshot (a pooled
    # connection, the media files); a few a day is what a person needs, retries included.
    my_data_user: str = Field(
        "5 per hour",
        description="downloads of a client's own data (`GET /me/data`) per login, from any address; "
        "only downloads that start count ([security.md](security.md#abuse-limits))",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RateLimits:
        return _parse(cls, env)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    env: str = setting(
        "development",
        env="APP_ENV",
        doc="`development`/`test`: embedded PostgreSQL when `DATABASE_URL` is unset, a development "
        "signing key under `VAR_DIR`; anything else (`production`) requires the secrets marked required",
    )
    # Runtime role (the API); the owner role runs migrations, provisioning and purge.
    database_url: str | None = setting(
        env="DATABASE_URL",
        doc="runtime role: every request. `postgresql://user:password@host:5432/saas`",
        shown=REQUIRED_IN_PRODUCTION,
        repr=False,
    )
    migration_database_url: str | None = setting(
        env="MIGRATION_DATABASE_URL",
        doc="owner role: migrations, building spare workspaces, purge, restore; for the worker and the "
        "operator commands only, never the API (`backend.create_api()` drops it). Same role as "
        "`DATABASE_URL`: no grants are made (development only)",
        shown="`DATABASE_URL`",
        repr=False,
    )
    # The access cache's LISTEN connection must reach PostgreSQL itself (or a session-mode
    # pooler): a transaction-mode pooler such as PgBouncer's drops LISTEN.
    listen_database_url: str | None = setting(
        env="LISTEN_DATABASE_URL",
        doc="runtime role, for the one `LISTEN access_changed` connection per serving process "
        "(access-cache invalidation, security.md). Set it when `DATABASE_URL` goes through a "
        "transaction-mode pooler, which does not keep `LISTEN`: point it at PostgreSQL itself",
        shown="`DATABASE_URL`",
        repr=False,
    )
    var_dir: Path = setting(
        PROJECT_ROOT / "var",
        env="VAR_DIR",
        doc="media (`media/`), exports (`exports/`), mail files in development, the development signing key",
        shown="`<project>/var` (image: `/var/lib/saas`)",
    )
    # Connection pool: bounded, recycled (catalog caches grow on connections that touch
    # many schemas), and quick to give up so an exhausted pool answers 503, not a hang.
    pool_size: int = setting(10, env="DB_POOL_SIZE", doc="connections kept per process for the runtime role")
    pool_max_overflow: int = setting(
        5,
        env="DB_POOL_MAX_OVERFLOW",
        doc="extra connections per process under load (the API's runtime pool; the owner pool of the "
        "worker and the commands)",
    )
    pool_timeout_s: int = setting(
        5,
        env="DB_POOL_TIMEOUT_S",
        doc="wait for a free connection before answering 503 `database_unavailable`",
    )
    pool_recycle_s: int = setting(
        1800,
        env="DB_POOL_RECYCLE_S",
        doc="connection lifetime (catalog caches grow on connections that touch many schemas)",
    )
    statement_timeout_ms: NonNegative = setting(
        15000,
        env="DB_STATEMENT_TIMEOUT_MS",
        doc="statement timeout of the API's runtime-role connections (sent when each connects); `0`: none",
    )
    # Tokens.
    jwt_audience: str = setting("saas-api", env="JWT_AUDIENCE", doc="`aud` of access tokens")
    jwt_private_keys: str | None = setting(
        env="JWT_PRIVATE_KEYS",
        doc="private JWK set (ES256); the first key signs, all verify: "
        "[rotation](runbooks/rotate-signing-key.md)",
        shown=REQUIRED_IN_PRODUCTION,
        repr=False,
    )
    access_token_ttl_s: int = setting(900, env="ACCESS_TOKEN_TTL_S", doc="access-token lifetime")
    refresh_token_ttl_s: int = setting(
        30 * 24 * 3600, env="REFRESH_TOKEN_TTL_S", doc="refresh-token lifetime (30 days)"
    )
    # Identity: one-time tokens, mail, abuse limits (docs/security.md).
    app_url: str = setting("http://127.0.0.1:8000", env="APP_URL", doc="base of the links sent by mail")
    # Declared after APP_URL, its development default.
    jwt_issuer: str = setting(
        env="JWT_ISSUER",
        doc="`iss` of access tokens and `issuer` of `/.well-known/oauth-authorization-server`: the "
        "API's public URL, scheme and host only (`https://api.example.com`). Resource servers compare "
        "`iss` with it and find the metadata and keys from it",
        shown="`APP_URL` in development; required in production",
        validate_default=True,
    )
    oauth_client_id: str = setting(
        "saas-app",
        env="OAUTH_CLIENT_ID",
        doc="RFC 9068 `client_id` of every access token: our one public OAuth client (web, mobile, "
        "generated SDKs). A client's record id travels in the `client_record_id` claim",
    )
    verification_ttl_s: int = setting(
        48 * 3600, env="VERIFICATION_TTL_S", doc="email-verification link lifetime"
    )
    invitation_ttl_s: int = setting(7 * 24 * 3600, env="INVITATION_TTL_S", doc="invitation link lifetime")
    password_reset_ttl_s: int = setting(
        3600, env="PASSWORD_RESET_TTL_S", doc="password-reset link lifetime (single use)"
    )
    mfa_challenge_ttl_s: int = setting(
        300, env="MFA_CHALLENGE_TTL_S", doc="time between a right password and the second factor's code"
    )
    mfa_issuer: str = setting("Appointments", env="MFA_ISSUER", doc="the name authenticator apps show")
    mfa_encryption_keys: str | None = setting(
        env="MFA_ENCRYPTION_KEYS",
        doc="Fernet keys sealing TOTP secrets, comma-separated; the first seals, all open. Unset: a "
        "development key under `VAR_DIR`; outside development the second factor then answers 503",
        repr=False,
    )
    mail_backend: Literal["file", "smtp"] = setting(
        env="MAIL_BACKEND",
        doc="`file` (one file per message under `VAR_DIR/mail`) or `smtp`",
        shown="`file` in development, else `smtp`",
        validate_default=True,
    )
    mail_from: str = setting("no-reply@localhost", env="MAIL_FROM", doc="sender of every message")
    smtp_host: str | None = setting(env="SMTP_HOST", doc="SMTP server; required when `MAIL_BACKEND=smtp`")
    smtp_port: int = setting(587, env="SMTP_PORT", doc="SMTP port")
    smtp_username: str | None = setting(env="SMTP_USERNAME", doc="SMTP login (none: no login)")
    smtp_password: str | None = setting(env="SMTP_PASSWORD", doc="SMTP password", repr=False)
    smtp_starttls: bool = setting(True, env="SMTP_STARTTLS", doc="upgrade the SMTP connection with STARTTLS")
    ratelimit_storage_uri: str | None = setting(
        env="RATELIMIT_STORAGE_URI",
        doc="rate-limit counters shared by every worker and process: `redis://host:6379/0` (Redis or "
        "Valkey). `memory://` counts per worker (each limit multiplied by the workers); production "
        "refuses to start without the setting. Store down: limits fall back to per-worker memory "
        "([security.md](security.md#rate-limits))",
        shown="`memory://` in development/test; required in production",
    )
    ratelimit_key_secret: str | None = setting(
        env="RATELIMIT_KEY_SECRET",
        doc="key of the rate limiter's HMAC-SHA256 keys of emails, one-time tokens and client IPs: "
        "neither the limiter's store nor its log lines can be linked to an address by hashing guesses "
        "(`openssl rand -hex 32`; changing it resets the counters)",
        shown="— (required in production; development: a fixed development key)",
        repr=False,
    )
    log_client_ips: bool = setting(
        False,
        env="LOG_CLIENT_IPS",
        doc="opt in to client IP addresses in log lines (the limiter's lines then name the address, "
        "not its HMAC)",
    )
    rate_limits: RateLimits = Field(default_factory=RateLimits)  # RATE_LIMIT_<FIELD> variables
    # Product.
    trial_days: int = setting(14, env="TRIAL_DAYS", doc="trial length of a new workspace")
    spare_schemas: NonNegative = setting(
        5,
        env="SPARE_SCHEMAS",
        doc="spare workspaces (tenant schemas) the worker keeps ready for signups to claim "
        "([architecture.md](architecture.md#provisioning-from-spare-schemas-decision-issue-8)); a signup "
        "that finds none answers 503 `tenant_unavailable` and the worker builds one. `0`: no pool kept "
        "ahead, every signup waits for the worker",
    )
    max_content_length: int = setting(
        10 * 1024 * 1024,
        env="MAX_CONTENT_LENGTH",
        doc="largest request body in bytes (413 `payload_too_large`)",
    )
    citus: bool = setting(
        False,
        env="CITUS",
        doc="Citus coordinator ([scale-out.md](scale-out.md)): every schema the owner creates "
        "is a distributed schema, tenant roles may log in to the workers",
    )
    # Media uploads: the file's own limit (keep it below max_content_length, which also
    # counts the multipart envelope) and the types accepted, as sniffed from the bytes.
    media_max_bytes: int = setting(
        8 * 1024 * 1024, env="MEDIA_MAX_BYTES", doc="largest media file in bytes ([domain.md](domain.md))"
    )
    media_allowed_types: CommaList = setting(
        DEFAULT_MEDIA_TYPES, env="MEDIA_ALLOWED_TYPES", doc="media types accepted, as sniffed from the bytes"
    )
    # Data lifecycle (docs/data-lifecycle.md): grace period and retention, in days.
    deletion_grace_days: NonNegative = setting(
        30, env="DELETION_GRACE_DAYS", doc="days a deleted workspace can be restored before its purge"
    )
    media_retention_days: NonNegative = setting(
        30,
        env="MEDIA_RETENTION_DAYS",
        doc="days a deleted media file is kept ([data-lifecycle.md](data-lifecycle.md))",
    )
    export_retention_days: NonNegative = setting(
        14, env="EXPORT_RETENTION_DAYS", doc="days an export file is kept"
    )
    audit_retention_days: NonNegative = setting(
        365, env="AUDIT_RETENTION_DAYS", doc="days an audit event is kept"
    )
    worker_metrics_port: NonNegative = setting(
        0,
        env="WORKER_METRICS_PORT",
        doc="port of the job worker's own Prometheus figures (task latency, run time, attempts by"
        " outcome; [jobs.md](jobs.md#logs-and-metrics)); 0: not served",
    )
    unverified_retention_days: NonNegative = setting(
        7,
        env="UNVERIFIED_RETENTION_DAYS",
        doc="days a signup whose email is never verified keeps its account and workspace before"
        " the worker removes them ([data-lifecycle.md](data-lifecycle.md))",
    )
    exports_path: Path | None = setting(
        env="EXPORTS_DIR", doc="where export files are written", shown="`VAR_DIR/exports`"
    )
    pg_bin_dir: Path | None = setting(
        env="PG_BIN_DIR", doc="where `pg_dump`/`pg_restore` live", shown="found by server version"
    )
    # The worker's export holds one snapshot (and one pooled connection) open: how long at
    # most (seconds), and how many at once per process (more answer 429 + Retry-After).
    export_timeout_s: int = setting(
        3600, env="EXPORT_TIMEOUT_S", doc="longest an export may hold its snapshot"
    )
    export_max_concurrent: int = setting(
        2, env="EXPORT_MAX_CONCURRENT", doc="exports at once per process; more answer 429 + `Retry-After`"
    )
    # Operability: /metrics answers only a bearer METRICS_TOKEN (unset: /metrics is 404), and
    # X-Forwarded-For is believed only from these proxies (the list gunicorn uses too).
    metrics_token: str | None = setting(
        env="METRICS_TOKEN",
        doc="bearer token of `GET /metrics` (16 characters at least); unset: `/metrics` answers 404",
        repr=False,
    )
    forwarded_allow_ips: str = setting(
        "127.0.0.1,::1",
        env="FORWARDED_ALLOW_IPS",
        doc="proxies (addresses or CIDR networks, `*` for any) whose `X-Forwarded-For` and "
        "`X-Forwarded-Proto` are believed; read by gunicorn too",
    )

    @field_validator("mail_backend", mode="before")
    @classmethod
    def _mail_backend_default(cls, value: Any, info) -> Any:
        if value is None:
            return "file" if info.data.get("env") in DEVELOPMENT_ENVS else "smtp"
        return value

    @field_validator("jwt_issuer", mode="before")
    @classmethod
    def _issuer_default(cls, value: Any, info) -> Any:
        """Development follows APP_URL; elsewhere an unset issuer stays empty and check() refuses."""
        if not value:
            return info.data.get("app_url", "") if info.data.get("env") in DEVELOPMENT_ENVS else ""
        return value.rstrip("/")

    @field_validator("app_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource, *_: Any, **__: Any
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what is passed: from_env() passes the environment, Settings(...) its arguments.
        return (init_settings,)

    @property
    def is_development(self) -> bool:
        return self.env in DEVELOPMENT_ENVS

    @property
    def media_dir(self) -> Path:
        return self.var_dir / "media"

    @property
    def exports_dir(self) -> Path:
        return self.exports_path or self.var_dir / "exports"

    @property
    def mail_dir(self) -> Path:
        return self.var_dir / "mail"

    @property
    def ratelimit_storage(self) -> str:
        return self.ratelimit_storage_uri or "memory://"

    @property
    def owner_database_url(self) -> str | None:
        return self.migration_database_url or self.database_url

    @property
    def listener_database_url(self) -> str | None:
        return self.listen_database_url or self.database_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        settings = _parse(cls, env, rate_limits=RateLimits.from_env(env))
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse to start outside development without the secrets production needs."""
        if self.metrics_token is not None and len(self.metrics_token) < MIN_METRICS_TOKEN_LENGTH:
            raise ConfigError(f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_LENGTH} characters")
        if not self.is_development:
            for name, value in (
                ("DATABASE_URL", self.database_url),
                ("JWT_PRIVATE_KEYS", self.jwt_private_keys),
                # per-worker memory would multiply every limit by the workers, silently
                ("RATELIMIT_STORAGE_URI", self.ratelimit_storage_uri),
                ("JWT_ISSUER", self.jwt_issuer),
                ("RATELIMIT_KEY_SECRET", self.ratelimit_key_secret),
            ):
                if not value:
                    raise ConfigError(f"{name} is required when APP_ENV={self.env}")
        issuer = urlsplit(self.jwt_issuer)
        if issuer.scheme not in ("http", "https") or not issuer.netloc or issuer.path or issuer.query:
            raise ConfigError(
                "JWT_ISSUER must be the public URL's scheme and host, e.g. https://api.example.com"
            )
        if self.mail_backend == "smtp" and not self.smtp_host:
            raise ConfigError("SMTP_HOST is required when MAIL_BACKEND=smtp")


def _parse(model: type[BaseModel], env: Mapping[str, str], **given: Any) -> Any:
    """The model from the variables its fields name; an empty variable means its default."""
    aliases = {field.alias for field in model.model_fields.values()}
    values = {name: value for name, value in env.items() if name in aliases and value.strip()}
    try:
        return model(**values, **given)
    except ValidationError as error:
        raise ConfigError(_one_line(model, error)) from None


def _one_line(model: type[BaseModel], error: ValidationError) -> str:
    first = error.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else model.__name__
    field = model.model_fields.get(name)
    if field is None:
        field = next((f for f in model.model_fields.values() if f.alias == name), None)
    variable = field.alias if field is not None and field.alias else name
    got = first.get("input")
    if first["type"] == "greater_than_equal":
        return f"{variable} must be {first['ctx']['ge']} or more, got {got}"
    if first["type"] == "int_parsing":
        return f"{variable} must be an integer, got {got!r}"
    if first["type"] == "bool_parsing":
        return f"{variable} must be true or false, got {got!r}"
    return f"{variable}: {first['msg'][0].lower()}{first['msg'][1:]}, got {got!r}"
