#!/usr/bin/env python3
"""`scripts/settings_doc.py write|check`: docs/operations.md's settings table from backend/core/config.py."""

from __future__ import annotations

import sys

from backend.cli.settings_doc import settings_doc_cli

if __name__ == "__main__":
    sys.exit(settings_doc_cli.main(prog_name="settings-doc"))
