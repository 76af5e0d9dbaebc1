"""Identity settings: abuse limits and mail transport from the environment."""

from __future__ import annotations

import pytest

from backend.core.config import ConfigError, RateLimits, Settings

PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://app@db/saas",
    "JWT_PRIVATE_KEYS": "{}",
    "RATELIMIT_STORAGE_URI": "redis://valkey:6379/0",
    "JWT_ISSUER": "https://api.example.com",
    "RATELIMIT_KEY_SECRET": "k" * 64,
}


def test_rate_limits_come_from_the_environment_with_defaults():
    limits = RateLimits.from_env({"RATE_LIMIT_LOGIN_ACCOUNT": "2 per minute"})
    assert limits.login_account == "2 per minute"
    assert limits.login_ip == RateLimits().login_ip


def test_development_mails_to_files_and_production_needs_an_smtp_host():
    assert Settings.from_env({}).mail_backend == "file"
    with pytest.raises(ConfigError, match="SMTP_HOST"):
        Settings.from_env(PRODUCTION)
    settings = Settings.from_env(PRODUCTION | {"SMTP_HOST": "mail.internal", "SMTP_STARTTLS": "false"})
    assert settings.mail_backend == "smtp" and settings.smtp_starttls is False
    with pytest.raises(ConfigError, match="MAIL_BACKEND"):
        Settings.from_env({"MAIL_BACKEND": "pigeon"})


def test_production_refuses_to_start_without_a_shared_rate_limit_store():
    # memory:// counts per worker: with N workers every limit would silently be N times larger.
    without = {k: v for k, v in PRODUCTION.items() if k != "RATELIMIT_STORAGE_URI"}
    with pytest.raises(ConfigError, match=r"^RATELIMIT_STORAGE_URI is required when APP_ENV=production$"):
        Settings.from_env(without | {"SMTP_HOST": "mail.internal"})
    assert Settings.from_env({}).ratelimit_storage == "memory://"
    store = Settings.from_env(PRODUCTION | {"SMTP_HOST": "mail.internal"}).ratelimit_storage
    assert store == "redis://valkey:6379/0"
