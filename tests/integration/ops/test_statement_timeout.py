"""DB_STATEMENT_TIMEOUT_MS bounds every statement of the API's runtime connections."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from backend import create_app


def _runtime_engine(settings, timeout_ms):
    return (
        create_app(settings.model_copy(update={"statement_timeout_ms": timeout_ms})).extensions["saas"].engine
    )


def test_the_setting_is_the_runtime_sessions_statement_timeout(settings):
    engine = _runtime_engine(settings, 1234)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "1234ms"
            with pytest.raises(OperationalError, match="statement timeout"):
                connection.execute(text("SELECT pg_sleep(2)"))
    finally:
        engine.dispose()


def test_zero_means_no_timeout_even_though_the_role_has_one(settings):
    engine = _runtime_engine(settings, 0)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SHOW statement_timeout")).scalar_one() == "0"
    finally:
        engine.dispose()
