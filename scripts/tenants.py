#!/usr/bin/env python3
"""Operator commands without the flask launcher: `scripts/tenants.py provision --slug ...`.

Same code and arguments as `flask --app backend tenants ...`.
"""

from __future__ import annotations

import sys

from flask.cli import ScriptInfo

from backend import create_app
from backend.cli import tenants_cli

if __name__ == "__main__":
    sys.exit(tenants_cli.main(obj=ScriptInfo(create_app=create_app), prog_name="tenants"))
