"""docs/operations.md documents every environment variable the code reads.

backend/core/config.py's settings are covered by the generated table (tests/unit/test_settings_doc.py);
this test covers the variables read by hand in the serving and logging modules."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SOURCES = ("backend/core/logging.py", "backend/gunicorn_conf.py")
# env.get("X"), _int(env, "X", ...), os.environ.get("X"), os.environ["X"], _int("X", ...), and
# f"PREFIX_{...}" families such as RATE_LIMIT_<RULE>.
LOOKUP = re.compile(
    r"""(?:\.get|_[a-z]+)\(\s*(?:env,\s*)?["'](?P<name>[A-Z][A-Z0-9_]+)["']"""
    r"""|environ\[\s*["'](?P<key>[A-Z][A-Z0-9_]+)["']\]"""
    r"""|f"(?P<prefix>[A-Z][A-Z0-9_]+_)\{"""
)


def variables_read() -> set[str]:
    found = set()
    for source in SOURCES:
        for match in LOOKUP.finditer((ROOT / source).read_text()):
            found.add(match["name"] or match["key"] or match["prefix"])
    return found


def test_the_lookup_finds_known_variables():
    assert {"WEB_CONCURRENCY", "LOG_LEVEL", "PORT"} <= variables_read()


def test_every_variable_is_in_the_settings_reference():
    documented = (ROOT / "docs" / "operations.md").read_text()
    missing = sorted(name for name in variables_read() if f"`{name}" not in documented)
    assert not missing, f"add {', '.join(missing)} to docs/operations.md, 'Settings reference'"
