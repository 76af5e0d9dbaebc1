"""The settings table of docs/operations.md is generated from backend/core/config.py."""

from __future__ import annotations

from backend.cli.settings_doc import BEGIN, END, OPERATIONS_PATH, WRITE_COMMAND, render, rows
from backend.core.config import RateLimits, Settings


def test_committed_settings_table_is_up_to_date():
    committed = OPERATIONS_PATH.read_text()
    assert render(committed) == committed, (
        f"docs/operations.md's settings table is stale: run `{WRITE_COMMAND}`"
    )


def test_every_setting_has_one_row_with_its_variable_and_meaning():
    table = "\n".join(rows())
    variables = [f.alias for f in Settings.model_fields.values() if f.alias]
    variables += [f.alias for f in RateLimits.model_fields.values()]
    for variable in variables:
        assert table.count(f"\n| `{variable}` |") == 1, variable
    assert all(f.description for f in Settings.model_fields.values() if f.alias)


def test_a_changed_default_makes_the_committed_table_stale():
    committed = OPERATIONS_PATH.read_text()
    stale = committed.replace("| `DB_POOL_SIZE` | `10` |", "| `DB_POOL_SIZE` | `11` |")
    assert stale != committed
    assert render(stale) == committed
    assert committed.count(BEGIN) == 1 and committed.count(END) == 1
