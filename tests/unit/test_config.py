import pytest

from backend.core.config import ConfigError, Settings


def test_development_needs_no_secret():
    assert Settings.from_env({}).is_development


def test_production_refuses_to_start_without_the_signing_key():
    with pytest.raises(ConfigError, match=r"^JWT_PRIVATE_KEYS is required when APP_ENV=production$"):
        Settings.from_env({"APP_ENV": "production", "DATABASE_URL": "postgresql://x@/db"})


PRODUCTION = {
    "APP_ENV": "production",
    "DATABASE_URL": "postgresql://x@/db",
    "JWT_PRIVATE_KEYS": "{}",
    "SMTP_HOST": "smtp.example.com",
    "RATELIMIT_STORAGE_URI": "redis://valkey:6379/0",
    "RATELIMIT_KEY_SECRET": "k" * 64,
}


def test_production_refuses_to_start_without_the_issuer():
    """The issuer is the public URL resource servers compare `iss` with: never guessed outside
    development (where it follows APP_URL)."""
    with pytest.raises(ConfigError, match=r"^JWT_ISSUER is required when APP_ENV=production$"):
        Settings.from_env(PRODUCTION)
    issuer = Settings.from_env({**PRODUCTION, "JWT_ISSUER": "https://api.example.com/"}).jwt_issuer
    assert issuer == "https://api.example.com"
    for wrong in ("api.example.com", "https://api.example.com/saas", "ftp://api.example.com"):
        with pytest.raises(ConfigError, match="JWT_ISSUER must be"):
            Settings.from_env({**PRODUCTION, "JWT_ISSUER": wrong})
    assert Settings.from_env({"APP_URL": "http://127.0.0.1:8123/"}).jwt_issuer == "http://127.0.0.1:8123"


def test_production_refuses_to_start_without_the_limiter_key_secret():
    settings = {**PRODUCTION, "JWT_ISSUER": "https://api.example.com"}
    del settings["RATELIMIT_KEY_SECRET"]
    with pytest.raises(ConfigError, match=r"^RATELIMIT_KEY_SECRET is required when APP_ENV=production$"):
        Settings.from_env(settings)
    assert "k" * 64 not in repr(Settings.from_env({"RATELIMIT_KEY_SECRET": "k" * 64}))


def test_production_refuses_to_start_without_a_database():
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.from_env({"APP_ENV": "production", "JWT_PRIVATE_KEYS": "{}"})


def test_malformed_integer_names_the_setting():
    with pytest.raises(ConfigError, match="DB_POOL_SIZE"):
        Settings.from_env({"DB_POOL_SIZE": "lots"})


def test_spare_schemas_default_to_a_small_pool_and_zero_turns_it_off():
    assert Settings.from_env({}).spare_schemas == 5
    assert Settings.from_env({"SPARE_SCHEMAS": "0"}).spare_schemas == 0
    with pytest.raises(ConfigError, match="SPARE_SCHEMAS must be 0 or more"):
        Settings.from_env({"SPARE_SCHEMAS": "-1"})
