"""Signing keys for access tokens (JWT_PRIVATE_KEYS): generate a set, and the three steps of a
rotation (docs/runbooks/rotate-signing-key.md). The first key of the set signs, every key
verifies. Sets are read from standard input (or JWT_PRIVATE_KEYS) and printed on one line,
ready to paste into .env; no database and no app needed.
"""

from __future__ import annotations

import json
import os
import sys

import click

from backend.core.config import Settings
from backend.core.tokens import generate_key, load_signing_keys


class KeySetError(ValueError):
    pass


def _kids(keyset: dict) -> list[str]:
    return [key.get("kid") for key in keyset.get("keys", [])]


def _checked(keyset: dict) -> dict:
    """Refuse anything the API would refuse at start-up (or that would sign with nothing)."""
    if not keyset.get("keys"):
        raise KeySetError("the key set has no key")
    if any(not kid for kid in _kids(keyset)) or len(set(_kids(keyset))) != len(keyset["keys"]):
        raise KeySetError("every key needs a distinct kid")
    if "d" not in keyset["keys"][0]:
        raise KeySetError("the first key signs: it must be a private key")
    load_signing_keys(Settings(jwt_private_keys=json.dumps(keyset)))
    return keyset


def generate() -> dict:
    return _checked({"keys": [generate_key().as_dict(private=True)]})


def add_key(keyset: dict) -> dict:
    """Step 1: a new key, last: it verifies everywhere before anything signs with it."""
    return _checked({"keys": [*keyset["keys"], generate_key().as_dict(private=True)]})


def promote(keyset: dict, kid: str) -> dict:
    """Step 2: the key moves first and signs from now on; the others still verify."""
    if kid not in _kids(keyset):
        raise KeySetError(f"no key with kid {kid!r}")
    keys = sorted(keyset["keys"], key=lambda key: key.get("kid") != kid)
    return _checked({"keys": keys})


def remove(keyset: dict, kid: str) -> dict:
    """Step 3, once the access-token TTL has passed: the old key goes."""
    if kid not in _kids(keyset):
        raise KeySetError(f"no key with kid {kid!r}")
    if _kids(keyset)[0] == kid:
        raise KeySetError(f"{kid!r} signs (it is first): promote another key before removing it")
    return _checked({"keys": [key for key in keyset["keys"] if key.get("kid") != kid]})


def _read(from_env: bool) -> dict:
    raw = os.environ.get("JWT_PRIVATE_KEYS", "") if from_env else sys.stdin.read()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise click.ClickException(f"not a JSON key set: {error}") from None


def _emit(keyset: dict) -> None:
    click.echo(json.dumps(keyset, separators=(",", ":")))
    click.echo(f"kids (first signs): {', '.join(_kids(keyset))}", err=True)


from_env_option = click.option(
    "--from-env", is_flag=True, help="Read the set from JWT_PRIVATE_KEYS instead of stdin."
)


@click.group("jwks")
def jwks_cli() -> None:
    """Generate and rotate the access-token signing keys."""


@jwks_cli.command("generate")
def generate_command() -> None:
    """Print a new set with one ES256 key."""
    _emit(generate())


@jwks_cli.command("add")
@from_env_option
def add_command(from_env: bool) -> None:
    """Print the set with a new key added last (verifies, does not sign yet)."""
    _run(lambda: add_key(_read(from_env)))


@jwks_cli.command("promote")
@click.argument("kid")
@from_env_option
def promote_command(kid: str, from_env: bool) -> None:
    """Print the set with KID first (it signs)."""
    _run(lambda: promote(_read(from_env), kid))


@jwks_cli.command("remove")
@click.argument("kid")
@from_env_option
def remove_command(kid: str, from_env: bool) -> None:
    """Print the set without KID (never the signing key)."""
    _run(lambda: remove(_read(from_env), kid))


@jwks_cli.command("show")
@from_env_option
def show_command(from_env: bool) -> None:
    """List the kids in order, without any key material."""
    keyset = _read(from_env)
    for position, kid in enumerate(_kids(keyset)):
        click.echo(f"{kid}\t{'signs + verifies' if position == 0 else 'verifies'}")


def _run(step) -> None:
    try:
        _emit(step())
    except (KeySetError, KeyError, ValueError) as error:
        raise click.ClickException(str(error)) from None
