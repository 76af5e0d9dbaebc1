"""Media: files (photos, documents) linked to a client and optionally to an appointment.

The bytes live in storage under the tenant's id and the media id; the user's file name is
kept only as a display name, cleaned, and never becomes part of a path.
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime

FILENAME_MAX = 120
# Characters that are unsafe in a file name on some system or in a header.
_UNSAFE = set('/\\:*?"<>|;') | {chr(c) for c in range(32)} | {chr(127)}
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/heic": ".heic",
    "image/avif": ".avif",
    "image/tiff": ".tif",
    "application/pdf": ".pdf",
}

SAME_TYPE = {".jpg": (".jpg", ".jpeg", ".jpe"), ".tif": (".tif", ".tiff")}
SAME_TYPE.update({ext: (ext,) for ext in EXTENSIONS.values() if ext not in SAME_TYPE})
KNOWN_EXTENSIONS = frozenset(ext for group in SAME_TYPE.values() for ext in group)


@dataclass(frozen=True)
class Media:
    id: uuid.UUID
    client_id: uuid.UUID | None  # None only once deleted together with its client
    appointment_id: uuid.UUID | None
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    uploaded_by: uuid.UUID  # user id (shared.users), kept for the delete rule
    uploaded_by_role: str
    created_at: datetime
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class MediaFilter:
    client_id: uuid.UUID | None = None
    appointment_id: uuid.UUID | None = None


def clean_filename(name: str | None) -> str:
    """A display name from what the uploader called the file: last path component only,
    no control or reserved characters, no leading dots, at most FILENAME_MAX characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join("_" if ch in _UNSAFE or unicodedata.category(ch) == "Cf" else ch for ch in name)
    name = " ".join(name.split()).strip(" .")
    if len(name) > FILENAME_MAX:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: FILENAME_MAX - len(ext) - 1].rstrip(" .") + "." + ext
        else:
            name = name[:FILENAME_MAX].rstrip(" .")
    return name or "file"


def download_name(filename: str, content_type: str) -> str:
    """The name offered on download: the display name with the extension of the type the
    bytes really are, so a PDF uploaded as `x.png` downloads as `x.pdf`."""
    extension = EXTENSIONS.get(content_type, "")
    stem, dot, ext = filename.rpartition(".")
    if dot and stem and "." + ext.lower() in KNOWN_EXTENSIONS:
        if "." + ext.lower() in SAME_TYPE.get(extension, ()):
            return filename  # already right, keep the uploader's spelling (.JPEG, .jpeg)
        filename = stem
    return filename + extension
