"""Signing-key rotation steps: add (verifies only), promote (signs), remove (never the signer)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from backend.cli.jwks import KeySetError, add_key, generate, jwks_cli, promote, remove
from backend.core.config import Settings
from backend.core.tokens import TokenError, TokenService, load_signing_keys


def service(keyset: dict) -> TokenService:
    keys = load_signing_keys(Settings(jwt_private_keys=json.dumps(keyset)))
    return TokenService(keys, issuer="iss", audience="aud", ttl_s=60)


def issue(keyset: dict) -> str:
    import uuid

    return service(keyset).issue(
        user_id=uuid.uuid4(), tenant_id=uuid.uuid4(), role="worker", session_id=uuid.uuid4()
    )


def kids(keyset: dict) -> list[str]:
    return [key["kid"] for key in keyset["keys"]]


def test_a_full_rotation_never_rejects_a_live_token():
    old = generate()
    (old_kid,) = kids(old)
    token_before = issue(old)

    added = add_key(old)
    new_kid = kids(added)[1]
    assert kids(added)[0] == old_kid  # the old key still signs
    service(added).verify(token_before)

    promoted = promote(added, new_kid)
    assert kids(promoted) == [new_kid, old_kid]
    token_after = issue(promoted)
    service(promoted).verify(token_before)  # old tokens verify until they expire
    service(added).verify(token_after)  # instances not yet redeployed accept new tokens

    final = remove(promoted, old_kid)
    assert kids(final) == [new_kid]
    service(final).verify(token_after)
    with pytest.raises(TokenError):
        service(final).verify(token_before)


def test_the_signing_key_cannot_be_removed():
    keyset = add_key(generate())
    with pytest.raises(KeySetError, match="signs"):
        remove(keyset, kids(keyset)[0])


def test_unknown_kids_and_public_only_sets_are_refused():
    keyset = generate()
    with pytest.raises(KeySetError):
        promote(keyset, "nope")
    public = {"keys": [{k: v for k, v in keyset["keys"][0].items() if k != "d"}]}
    with pytest.raises(KeySetError, match="private"):
        add_key(public)


def test_cli_reads_stdin_and_prints_one_line():
    runner = CliRunner()
    generated = runner.invoke(jwks_cli, ["generate"])
    assert generated.exit_code == 0
    line = generated.stdout.strip()
    assert "\n" not in line and len(json.loads(line)["keys"]) == 1
    added = runner.invoke(jwks_cli, ["add"], input=line)
    assert added.exit_code == 0 and len(json.loads(added.stdout)["keys"]) == 2
    shown = runner.invoke(jwks_cli, ["show"], input=added.stdout)
    assert "signs + verifies" in shown.stdout and '"d"' not in shown.stdout
    refused = runner.invoke(jwks_cli, ["remove", json.loads(line)["keys"][0]["kid"]], input=added.stdout)
    assert refused.exit_code == 1 and "promote another key" in refused.output
