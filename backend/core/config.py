"""Settings read from the environment, with development defaults.

Outside development and test, every secret must come from the environment: a missing one
stops start-up with a one-line error that names it (see `ConfigError`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

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


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _non_negative(env: Mapping[str, str], name: str, default: int) -> int:
    value = _int(env, name, default)
    if value < 0:
        raise ConfigError(f"{name} must be 0 or more, got {value}")
    return value


_days = _non_negative


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw) if raw else None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class RateLimits:
    """Flask-Limiter strings (`N per minute;M per hour`) for the abuse-prone routes, per client
    IP and per account (the email, or the one-time token). Environment: RATE_LIMIT_<FIELD>.
    Login per account counts failures only (see docs/security.md)."""

    login_ip: str = "20 per minute;200 per hour"
    login_account: str = "5 per minute;20 per hour"
    signup_ip: str = "5 per minute;30 per hour"
    signup_account: str = "3 per hour"
    verify_ip: str = "10 per minute;60 per hour"
    verify_account: str = "5 per minute;20 per hour"
    invitation_ip: str = "10 per minute;60 per hour"
    invitation_account: str = "5 per minute;20 per hour"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RateLimits:
        return cls(**{f.name: env.get(f"RATE_LIMIT_{f.name.upper()}") or f.default for f in fields(cls)})


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    # Runtime role (the API); the owner role runs migrations, provisioning and purge.
    # URLs carry passwords: kept out of repr() so a logged Settings never leaks them.
    database_url: str | None = field(default=None, repr=False)
    migration_database_url: str | None = field(default=None, repr=False)
    # The access cache's LISTEN connection must reach PostgreSQL itself (or a session-mode
    # pooler): a transaction-mode pooler such as PgBouncer's drops LISTEN.
    listen_database_url: str | None = field(default=None, repr=False)
    var_dir: Path = PROJECT_ROOT / "var"
    # Connection pool: bounded, recycled (catalog caches grow on connections that touch
    # many schemas), and quick to give up so an exhausted pool answers 503, not a hang.
    pool_size: int = 10
    pool_max_overflow: int = 5
    pool_timeout_s: int = 5
    pool_recycle_s: int = 1800
    statement_timeout_ms: int = 15000
    # Tokens.
    jwt_issuer: str = "http://127.0.0.1:8000"
    jwt_audience: str = "saas-api"
    # JSON JWK set with private keys (production); the first key signs, all verify.
    jwt_private_keys: str | None = field(default=None, repr=False)
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    # Identity: one-time tokens, mail, abuse limits (docs/security.md).
    app_url: str = "http://127.0.0.1:8000"  # base of the links sent by mail
    verification_ttl_s: int = 48 * 3600
    invitation_ttl_s: int = 7 * 24 * 3600
    mail_backend: str = "file"  # file (one file per message under mail_dir) | smtp
    mail_from: str = "no-reply@localhost"
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = True
    ratelimit_storage_uri: str = "memory://"
    rate_limits: RateLimits = field(default_factory=RateLimits)
    # Product.
    trial_days: int = 14
    # Spare tenant schemas kept ready for signups (docs/architecture.md); 0: no pool.
    spare_schemas: int = 5
    max_content_length: int = 10 * 1024 * 1024  # any request body (Flask MAX_CONTENT_LENGTH)
    # Media uploads: the file's own limit (keep it below max_content_length, which also
    # counts the multipart envelope) and the types accepted, as sniffed from the bytes.
    media_max_bytes: int = 8 * 1024 * 1024
    media_allowed_types: tuple[str, ...] = DEFAULT_MEDIA_TYPES
    # Data lifecycle (docs/data-lifecycle.md): grace period and retention, in days.
    deletion_grace_days: int = 30
    media_retention_days: int = 30
    export_retention_days: int = 14
    audit_retention_days: int = 365
    exports_path: Path | None = None  # EXPORTS_DIR; default var/exports
    pg_bin_dir: Path | None = None  # PG_BIN_DIR: where pg_dump/pg_restore live
    # The worker's export holds one snapshot (and one pooled connection) open: how long at
    # most (seconds), and how many at once per process (more answer 429 + Retry-After).
    export_timeout_s: int = 3600
    export_max_concurrent: int = 2
    # Operability: /metrics answers only a bearer METRICS_TOKEN (unset: /metrics is 404), and
    # X-Forwarded-For is believed only from these proxies (the list gunicorn uses too).
    metrics_token: str | None = field(default=None, repr=False)
    forwarded_allow_ips: str = "127.0.0.1,::1"

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
    def owner_database_url(self) -> str | None:
        return self.migration_database_url or self.database_url

    @property
    def listener_database_url(self) -> str | None:
        return self.listen_database_url or self.database_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        app_env = env.get("APP_ENV", "development")
        settings = cls(
            env=app_env,
            database_url=env.get("DATABASE_URL") or None,
            migration_database_url=env.get("MIGRATION_DATABASE_URL") or None,
            listen_database_url=env.get("LISTEN_DATABASE_URL") or None,
            var_dir=Path(env.get("VAR_DIR", str(PROJECT_ROOT / "var"))),
            pool_size=_int(env, "DB_POOL_SIZE", 10),
            pool_max_overflow=_int(env, "DB_POOL_MAX_OVERFLOW", 5),
            pool_timeout_s=_int(env, "DB_POOL_TIMEOUT_S", 5),
            pool_recycle_s=_int(env, "DB_POOL_RECYCLE_S", 1800),
            statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS", 15000),
            jwt_issuer=env.get("JWT_ISSUER", "http://127.0.0.1:8000"),
            jwt_audience=env.get("JWT_AUDIENCE", "saas-api"),
            jwt_private_keys=env.get("JWT_PRIVATE_KEYS") or None,
            access_token_ttl_s=_int(env, "ACCESS_TOKEN_TTL_S", 900),
            refresh_token_ttl_s=_int(env, "REFRESH_TOKEN_TTL_S", 30 * 24 * 3600),
            app_url=env.get("APP_URL", "http://127.0.0.1:8000").rstrip("/"),
            verification_ttl_s=_int(env, "VERIFICATION_TTL_S", 48 * 3600),
            invitation_ttl_s=_int(env, "INVITATION_TTL_S", 7 * 24 * 3600),
            mail_backend=env.get("MAIL_BACKEND") or ("file" if app_env in DEVELOPMENT_ENVS else "smtp"),
            mail_from=env.get("MAIL_FROM", "no-reply@localhost"),
            smtp_host=env.get("SMTP_HOST") or None,
            smtp_port=_int(env, "SMTP_PORT", 587),
            smtp_username=env.get("SMTP_USERNAME") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_starttls=_bool(env, "SMTP_STARTTLS", True),
            ratelimit_storage_uri=env.get("RATELIMIT_STORAGE_URI", "memory://"),
            rate_limits=RateLimits.from_env(env),
            trial_days=_int(env, "TRIAL_DAYS", 14),
            spare_schemas=_non_negative(env, "SPARE_SCHEMAS", 5),
            max_content_length=_int(env, "MAX_CONTENT_LENGTH", 10 * 1024 * 1024),
            media_max_bytes=_int(env, "MEDIA_MAX_BYTES", 8 * 1024 * 1024),
            media_allowed_types=_list(env, "MEDIA_ALLOWED_TYPES", DEFAULT_MEDIA_TYPES),
            deletion_grace_days=_days(env, "DELETION_GRACE_DAYS", 30),
            media_retention_days=_days(env, "MEDIA_RETENTION_DAYS", 30),
            export_retention_days=_days(env, "EXPORT_RETENTION_DAYS", 14),
            audit_retention_days=_days(env, "AUDIT_RETENTION_DAYS", 365),
            exports_path=_path(env, "EXPORTS_DIR"),
            pg_bin_dir=_path(env, "PG_BIN_DIR"),
            export_timeout_s=_int(env, "EXPORT_TIMEOUT_S", 3600),
            export_max_concurrent=_int(env, "EXPORT_MAX_CONCURRENT", 2),
            metrics_token=env.get("METRICS_TOKEN") or None,
            forwarded_allow_ips=env.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse to start outside development without the secrets production needs."""
        if self.metrics_token is not None and len(self.metrics_token) < MIN_METRICS_TOKEN_LENGTH:
            raise ConfigError(f"METRICS_TOKEN must be at least {MIN_METRICS_TOKEN_LENGTH} characters")
        if self.mail_backend not in ("file", "smtp"):
            raise ConfigError(f"MAIL_BACKEND must be file or smtp, got {self.mail_backend!r}")
        if not self.is_development:
            for name, value in (
                ("DATABASE_URL", self.database_url),
                ("JWT_PRIVATE_KEYS", self.jwt_private_keys),
            ):
                if not value:
                    raise ConfigError(f"{name} is required when APP_ENV={self.env}")
        if self.mail_backend == "smtp" and not self.smtp_host:
            raise ConfigError("SMTP_HOST is required when MAIL_BACKEND=smtp")
