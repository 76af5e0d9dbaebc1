#!/usr/bin/env python3
"""`scripts/jwks.py generate|add|promote KID|remove KID|show`: access-token signing keys
(JWT_PRIVATE_KEYS). See docs/runbooks/rotate-signing-key.md."""

from __future__ import annotations

import sys

from backend.cli.jwks import jwks_cli

if __name__ == "__main__":
    sys.exit(jwks_cli.main(prog_name="jwks"))
