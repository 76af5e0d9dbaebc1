"""What the worker's export says about itself: the columns each CSV file carries (named as the
API names them), a README.md for people, and a CSVW description (`tables/csv-metadata.json`,
W3C "Metadata Vocabulary for Tabular Data") for programs.

Tables and columns come from the snapshot's catalog, so a table or column added by a migration
is exported even before it is described here; it is then marked "not described", and
tests/integration/lifecycle_data/test_export_format.py fails until it is."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from backend.domain.lifecycle import SourceColumn
from backend.domain.media import EXTENSIONS

CSVW_METADATA = "tables/csv-metadata.json"
README = "README.md"
NOT_DESCRIBED = "Not described by this version of the export."
UNKNOWN_EXTENSION = ".bin"
UUID_FORMAT = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# Database types -> CSVW datatypes (anything else is a string).
DATATYPES: dict[str, object] = {
    "uuid": {"base": "string", "format": UUID_FORMAT},
    "text": "string",
    "timestamp with time zone": "datetime",
    "bigint": "integer",
    "integer": "integer",
    "smallint": "integer",
    "boolean": "boolean",
}


@dataclass(frozen=True)
class ExportColumn:
    source: str  # the column in the database
    name: str  # its name in the CSV header
    datatype: object
    required: bool
    description: str


@dataclass(frozen=True)
class ExportTable:
    name: str
    description: str
    columns: tuple[ExportColumn, ...]

    @property
    def path(self) -> str:
        return f"tables/{self.name}.csv"


_TABLES = {
    "clients": "The workspace's clients (the API's `ClientRecord`).",
    "appointments": "Every appointment of the workspace, cancelled ones included (the API's `Appointment`).",
    "media": (
        "Every file of the workspace (the API's `Media`), including files deleted in the app and not yet "
        "purged: those have `deleted_at` set, are no longer shown by the API and are removed with their "
        "row once the retention period for deleted media has passed. Each file is in `media/` as "
        "`<id><extension>`."
    ),
}
# (table, column in the database) -> (name in the CSV, description). A rename keeps the CSV's
# meaning equal to the API's: the API's `uploaded_by` is a role.
_COLUMNS: dict[tuple[str, str], tuple[str, str]] = {
    ("clients", "id"): ("id", "The client's id (`ClientRecord.id`)."),
    ("clients", "name"): ("name", "The client's name."),
    ("clients", "email"): ("email", "The client's email address; empty when none."),
    ("clients", "phone"): ("phone", "The client's phone number; empty when none."),
    ("clients", "notes"): ("notes", "The worker's private notes about the client; empty when none."),
    ("clients", "created_at"): ("created_at", "When the client was created (ISO 8601, UTC)."),
    ("clients", "updated_at"): ("updated_at", "When the client was last changed (ISO 8601, UTC)."),
    ("appointments", "id"): ("id", "The appointment's id (`Appointment.id`)."),
    ("appointments", "client_id"): ("client_id", "The client it is with: `id` in clients.csv."),
    ("appointments", "starts_at"): ("starts_at", "When it starts (ISO 8601, UTC)."),
    ("appointments", "ends_at"): ("ends_at", "When it ends, exclusive (ISO 8601, UTC); after `starts_at`."),
    ("appointments", "status"): ("status", "`scheduled`, `completed` or `cancelled`."),
    ("appointments", "notes"): (
        "notes",
        "The worker's private notes (never shown to the client); empty when none.",
    ),
    ("appointments", "shared_notes"): ("shared_notes", "Notes the client can read; empty when none."),
    ("appointments", "cancelled_at"): (
        "cancelled_at",
        "When it was cancelled (ISO 8601, UTC); empty if not.",
    ),
    ("appointments", "created_at"): ("created_at", "When it was booked (ISO 8601, UTC)."),
    ("appointments", "updated_at"): ("updated_at", "When it was last changed (ISO 8601, UTC)."),
    ("media", "id"): ("id", "The file's id (`Media.id`); its bytes are `media/<id><extension>`."),
    ("media", "client_id"): (
        "client_id",
        "The client the file belongs to: `id` in clients.csv; empty once that client was deleted "
        "(the file is then deleted too, see `deleted_at`).",
    ),
    ("media", "appointment_id"): (
        "appointment_id",
        "The appointment it is attached to: `id` in appointments.csv; empty when none.",
    ),
    ("media", "filename"): (
        "filename",
        "The uploader's file name, cleaned (a display name, not the path in this archive).",
    ),
    ("media", "content_type"): (
        "content_type",
        "The media type recognised from the bytes at upload; it gives the file's extension in `media/`.",
    ),
    ("media", "size_bytes"): ("size_bytes", "The file's size in bytes."),
    ("media", "sha256"): ("sha256", "SHA-256 of the file's bytes, in hex."),
    ("media", "uploaded_by"): (
        "uploaded_by_user_id",
        "The id of the user who uploaded it (the worker, or the client's login); not shown by the API.",
    ),
    ("media", "uploaded_by_role"): (
        "uploaded_by",
        "Who uploaded it: `worker` or `client` (the API's `Media.uploaded_by`).",
    ),
    ("media", "created_at"): ("created_at", "When it was uploaded (ISO 8601, UTC)."),
    ("media", "deleted_at"): (
        "deleted_at",
        "When it was deleted in the app (ISO 8601, UTC); empty for live files. A deleted file is still "
        "in this archive until the purge removes it.",
    ),
}


def plan_table(table: str, columns: list[SourceColumn]) -> ExportTable:
    """The CSV columns of `table`, in the catalog's order, named and described."""
    planned = []
    for column in columns:
        name, description = _COLUMNS.get((table, column.name), (column.name, NOT_DESCRIBED))
        planned.append(
            ExportColumn(
                source=column.name,
                name=name,
                datatype=DATATYPES.get(column.db_type, "string"),
                required=column.not_null,
                description=description,
            )
        )
    return ExportTable(table, _TABLES.get(table, NOT_DESCRIBED), tuple(planned))


def media_path(media_id: uuid.UUID, content_type: str) -> str:
    """`media/<id><extension>`: the extension comes from the stored (sniffed) media type through
    a fixed table, never from what the uploader called the file."""
    return f"media/{uuid.UUID(str(media_id))}{EXTENSIONS.get(content_type, UNKNOWN_EXTENSION)}"


def csvw_metadata(tables: list[ExportTable]) -> bytes:
    """The CSVW table group describing every CSV file (urls relative to `tables/`)."""
    group = {
        "@context": "http://www.w3.org/ns/csvw",
        "dc:title": "Workspace export: tables",
        "dialect": {"header": True, "encoding": "utf-8", "doubleQuote": True},
        "null": "",
        "tables": [
            {
                "url": f"{table.name}.csv",
                "dc:description": table.description,
                "tableSchema": {
                    "columns": [
                        {
                            "name": column.name,
                            "titles": column.name,
                            "datatype": column.datatype,
                            "required": column.required,
                            "dc:description": column.description,
                        }
                        for column in table.columns
                    ],
                    **({"primaryKey": "id"} if any(c.name == "id" for c in table.columns) else {}),
                },
            }
            for table in tables
        ],
    }
    return json.dumps(group, indent=2).encode()


def _datatype_label(datatype: object) -> str:
    if isinstance(datatype, dict):
        return "uuid" if datatype.get("format") == UUID_FORMAT else str(datatype.get("base", "string"))
    return str(datatype)


def readme(*, slug: str, exported_at: datetime, tables: list[ExportTable]) -> bytes:
    """README.md: every file and every column of the archive."""
    lines = [
        f"# Export of workspace `{slug}`",
        "",
        f"Exported at {exported_at.isoformat()}. Every table comes from one consistent snapshot.",
        "",
        "## Files",
        "",
        "- `README.md`: this file.",
        f"- `{CSVW_METADATA}`: the same description of the CSV files for programs "
        "(CSVW, W3C Metadata Vocabulary for Tabular Data).",
        *(f"- `{table.path}`: {table.description}" for table in tables),
        "- `media/<id><extension>`: the bytes of each file listed in `tables/media.csv` (`id`), "
        "the extension given by its `content_type` (`.bin` for a type without one).",
        "- `manifest.json`: the workspace, the database schema revision, and for every file its "
        "size, SHA-256 and (for a table) its number of rows.",
        "",
        "## Conventions",
        "",
        "- CSV files are UTF-8, comma-separated, RFC 4180 quoting, with a header line.",
        "- Instants are ISO 8601 in UTC with the offset (`2026-01-31T09:30:00.25+00:00`), as the API "
        "writes them (trailing zeros of the fraction may be dropped).",
        '- An empty unquoted field is a missing value (null); an empty text is written `""`.',
        "- Column names are the API's where the API shows the same thing.",
    ]
    for table in tables:
        lines += [
            "",
            f"## {table.path}",
            "",
            table.description,
            "",
            "| column | type | always set | meaning |",
        ]
        lines.append("|---|---|---|---|")
        for column in table.columns:
            required = "yes" if column.required else "no"
            description = column.description.replace("|", "\\|")
            lines.append(
                f"| `{column.name}` | {_datatype_label(column.datatype)} | {required} | {description} |"
            )
    return ("\n".join(lines) + "\n").encode()
