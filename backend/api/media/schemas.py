import marshmallow as ma
from flask_smorest.fields import Upload
from werkzeug.datastructures import FileStorage

from backend.core.config import DEFAULT_MEDIA_TYPES


def _is_file(value) -> bool:
    if not isinstance(value, FileStorage):
        raise ma.ValidationError("Not a file part.")
    return True


class MediaUploadSchema(ma.Schema):
    """multipart/form-data: the file, the client it belongs to and optionally one of that
    client's appointments. `client_id` is required of everyone (a client sends their own, from
    `GET /me`): the document states it, so generated clients send it."""

    file = Upload(
        required=True,
        validate=_is_file,
        metadata={
            "description": "The bytes must be one of the allowed media types (MEDIA_ALLOWED_TYPES; by "
            f"default {', '.join(DEFAULT_MEDIA_TYPES)}), recognised from the bytes themselves: the "
            "part's declared type and the file name are ignored (415 `unsupported_media_type`)"
        },
    )
    client_id = ma.fields.UUID(
        required=True,
        metadata={"description": "The client the file belongs to; a client sends their own id (`GET /me`)"},
    )
    appointment_id = ma.fields.UUID(metadata={"description": "One of that client's appointments"})


class MediaSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True, required=True)
    client_id = ma.fields.UUID(dump_only=True, required=True)
    appointment_id = ma.fields.UUID(dump_only=True, required=True, allow_none=True)
    filename = ma.fields.String(
        dump_only=True, required=True, metadata={"description": "Cleaned display name"}
    )
    content_type = ma.fields.String(
        dump_only=True, required=True, metadata={"description": "Sniffed from the bytes"}
    )
    size_bytes = ma.fields.Integer(dump_only=True, required=True)
    sha256 = ma.fields.String(dump_only=True, required=True)
    uploaded_by = ma.fields.String(
        attribute="uploaded_by_role",
        dump_only=True,
        required=True,
        metadata={"description": "worker or client"},
    )
    created_at = ma.fields.AwareDateTime(dump_only=True, required=True)


class MediaQuerySchema(ma.Schema):
    client_id = ma.fields.UUID()
    appointment_id = ma.fields.UUID()
