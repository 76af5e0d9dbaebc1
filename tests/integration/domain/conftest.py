"""Helpers for the domain tests: a workspace with a worker, files of known types."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

API = "/api/v1"


def png_bytes(width: int = 1, height: int = 1) -> bytes:
    """A real, minimal PNG (greyscale), built here so the tests ship no binary files."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + b"\x00" * 24


def at(hours: float) -> str:
    """An ISO instant `hours` from a fixed future day (upcoming for years), with offset."""
    base = datetime(2030, 6, 3, 9, 0, tzinfo=UTC)
    return (base + timedelta(hours=hours)).isoformat()


def past(hours: float = 0) -> str:
    return (datetime(2020, 1, 6, 9, 0, tzinfo=UTC) + timedelta(hours=hours)).isoformat()


@dataclass
class Workspace:
    """A tenant seen through the API: its worker's headers and helpers to create things."""

    tenant: object
    worker: dict
    http: object

    def create_client(self, **fields) -> dict:
        response = self.http.post(f"{API}/clients", json={"name": "Client", **fields}, headers=self.worker)
        assert response.status_code == 201, response.json
        return response.json

    def book(self, client_id, start: float, end: float, **fields) -> dict:
        body = {"client_id": str(client_id), "starts_at": at(start), "ends_at": at(end), **fields}
        response = self.http.post(f"{API}/appointments", json=body, headers=self.worker)
        assert response.status_code == 201, response.json
        return response.json

    def upload(self, headers=None, data: bytes | None = None, filename: str = "photo.png", **form) -> dict:
        response = upload(self.http, headers or self.worker, data=data, filename=filename, **form)
        assert response.status_code == 201, response.json
        return response.json


def upload(http, headers, data: bytes | None = None, filename: str = "photo.png", **form):
    body = {key: str(value) for key, value in form.items() if value is not None}
    body["file"] = (io.BytesIO(png_bytes() if data is None else data), filename)
    return http.post(f"{API}/media", data=body, headers=headers, content_type="multipart/form-data")


@pytest.fixture()
def workspace(client, make_tenant, worker_token):
    """A fresh tenant with its worker, for one test; call again for a second tenant."""

    def make() -> Workspace:
        tenant = make_tenant()
        return Workspace(tenant=tenant, worker=worker_token(tenant), http=client)

    return make
