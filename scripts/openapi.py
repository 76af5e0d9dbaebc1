#!/usr/bin/env python3
"""`scripts/openapi.py write|check`: docs/openapi.json from the app's routes (no database needed)."""

from __future__ import annotations

import logging
import sys

from backend.cli.openapi import openapi_cli

if __name__ == "__main__":
    logging.disable(logging.INFO)  # the offline app's access line is noise here
    sys.exit(openapi_cli.main(prog_name="openapi"))
