"""What could leak into logs through exceptions, and start-up errors that name the setting."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backend.core.config import ConfigError


def test_database_errors_do_not_carry_bound_values(runtime):
    with pytest.raises(DBAPIError) as raised, runtime.engine.connect() as connection:
        connection.execute(
            text("SELECT 1 / 0 WHERE CAST(:email AS text) IS NOT NULL"), {"email": "alice@example.com"}
        )
    assert "division by zero" in str(raised.value)
    assert "alice@example.com" not in str(raised.value)


def test_a_malformed_proxy_list_stops_start_up_naming_the_setting(settings):
    from backend import create_app

    with pytest.raises(ConfigError, match="FORWARDED_ALLOW_IPS"):
        create_app(settings.model_copy(update=dict(forwarded_allow_ips="127.0.0.1,not-a-network")))
