"""Password, email and slug rules; argon2id hashing and its parameters."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, extract_parameters

from backend.core import passwords
from backend.domain.errors import Invalid
from backend.domain.identity import validate_password, workspace_slug_from_name
from backend.domain.tenants import validate_slug


@pytest.mark.parametrize("password", ["a" * 10, "é" * 10, "x" * 256, "ten chars!"])
def test_accepts_passwords_of_10_to_256_characters(password):
    assert validate_password(password, email="someone@example.com") == password


@pytest.mark.parametrize("password", ["", "a" * 9, "x" * 257])
def test_refuses_passwords_out_of_length(password):
    with pytest.raises(Invalid) as raised:
        validate_password(password, email="someone@example.com")
    assert "password" in raised.value.errors


def test_refuses_the_email_as_password_whatever_the_case():
    with pytest.raises(Invalid):
        validate_password("Someone@Example.com", email="someone@example.com")


def test_hashes_with_argon2id_at_least_owasp_minimum():
    stored = passwords.hash_password("correct horse battery")
    params = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2 and params.parallelism >= 1
    assert passwords.verify_password(stored, "correct horse battery")
    assert not passwords.verify_password(stored, "correct horse battery!")
    assert not passwords.needs_rehash(stored)


def test_a_hash_with_other_parameters_needs_rehash():
    weaker = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("pw-123456789")
    assert passwords.verify_password(weaker, "pw-123456789")
    assert passwords.needs_rehash(weaker)


def test_unicode_normalisation_makes_composed_and_decomposed_equal():
    stored = passwords.hash_password("caf\u00e9 au lait!")
    assert passwords.verify_password(stored, "cafe\u0301 au lait!")


def test_malformed_hash_never_matches_and_dummy_is_always_false():
    assert not passwords.verify_password("not a hash", "whatever-password")
    assert passwords.verify_dummy("whatever-password") is False


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Ann's Studio", "ann-s-studio"),
        ("Café Noir", "cafe-noir"),
        ("  --Yoga--  ", "yoga"),
        ("!!!", "workspace"),
    ],
)
def test_slug_from_workspace_name(name, slug):
    assert workspace_slug_from_name(name) == slug


def test_slug_with_suffix_stays_valid_and_short():
    slug = workspace_slug_from_name("A very long workspace name that goes on and on forever", "a1b2c3")
    assert len(slug) <= 40 and slug.endswith("-a1b2c3")
    assert validate_slug(slug) == slug
