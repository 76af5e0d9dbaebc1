"""Pure rules of the clients, appointments and media areas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.domain.appointments import check_period, check_window
from backend.domain.clients import clean_client_fields, search_pattern
from backend.domain.errors import Invalid
from backend.domain.media import FILENAME_MAX, clean_filename, download_name

T0 = datetime(2030, 1, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\scan.pdf", "scan.pdf"),
        ("a\r\nContent-Type: text.png", "a__Content-Type_ text.png"),
        ('say "hi"; now.jpg', "say _hi__ now.jpg"),
        ("...", "file"),
        ("", "file"),
        (None, "file"),
        (".hidden", "hidden"),
        ("e\u0301t\u00e9.png", "\u00e9t\u00e9.png"),  # NFC
        ("evil\u202egnp.exe", "evil_gnp.exe"),  # right-to-left override is a format character
    ],
)
def test_clean_filename(raw, clean):
    assert clean_filename(raw) == clean


def test_clean_filename_caps_length_and_keeps_the_extension():
    cleaned = clean_filename("x" * 500 + ".pdf")
    assert len(cleaned) == FILENAME_MAX and cleaned.endswith(".pdf")
    assert len(clean_filename("y" * 500)) == FILENAME_MAX


@pytest.mark.parametrize(
    ("name", "content_type", "offered"),
    [
        ("scan.png", "application/pdf", "scan.pdf"),
        ("photo.JPEG", "image/jpeg", "photo.JPEG"),
        ("photo.jpg", "image/png", "photo.png"),
        ("report", "application/pdf", "report.pdf"),
        ("notes.v2", "image/png", "notes.v2.png"),
        ("file", "application/x-unknown", "file"),
    ],
)
def test_download_name_uses_the_real_type(name, content_type, offered):
    assert download_name(name, content_type) == offered


def test_client_fields_are_trimmed_and_blank_optionals_become_none():
    cleaned = clean_client_fields({"name": "  Ann ", "email": " ", "phone": " +44 (0) 20 ", "notes": "\n"})
    assert cleaned == {"name": "Ann", "email": None, "phone": "+44 (0) 20", "notes": None}
    assert clean_client_fields({"notes": "x"}) == {"notes": "x"}  # partial: only what was given


@pytest.mark.parametrize(
    ("fields", "bad"),
    [({"name": " "}, {"name"}), ({"name": None}, {"name"}), ({"name": "A", "phone": "12"}, {"phone"})],
)
def test_client_field_problems(fields, bad):
    with pytest.raises(Invalid) as raised:
        clean_client_fields(fields)
    assert set(raised.value.errors) == bad


def test_search_pattern_escapes_like_wildcards():
    assert search_pattern("ann") == "ann%"
    assert search_pattern("50%_off\\") == "50\\%\\_off\\\\%"


def test_period_rules():
    check_period(T0, T0 + timedelta(minutes=1))
    for end in (T0, T0 - timedelta(hours=1)):
        with pytest.raises(Invalid) as raised:
            check_period(T0, end)
        assert set(raised.value.errors) == {"ends_at"}
    with pytest.raises(Invalid) as raised:
        check_period(T0.replace(tzinfo=None), T0 + timedelta(hours=1))
    assert set(raised.value.errors) == {"starts_at"}


def test_window_rules():
    check_window(None, T0)
    check_window(T0, None)
    with pytest.raises(Invalid):
        check_window(T0, T0)
