import marshmallow as ma
from flask_smorest.fields import Upload
from werkzeug.datastructures import FileStorage


def _is_file(value) -> bool:
    if not isinstance(value, FileStorage):
        raise ma.ValidationError("Not a file part.")
    return True


class MediaUploadSchema(ma.Schema):
    """multipart/form-data: the file, the client it belongs to (clients: themselves, may be
    omitted) and optionally one of that client's appointments."""

    file = Upload(required=True, validate=_is_file)
    client_id = ma.fields.UUID(metadata={"description": "Required for workers"})
    appointment_id = ma.fields.UUID()


class MediaSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    client_id = ma.fields.UUID(dump_only=True)
    appointment_id = ma.fields.UUID(dump_only=True, allow_none=True)
    filename = ma.fields.String(dump_only=True, metadata={"description": "Cleaned display name"})
    content_type = ma.fields.String(dump_only=True, metadata={"description": "Sniffed from the bytes"})
    size_bytes = ma.fields.Integer(dump_only=True)
    sha256 = ma.fields.String(dump_only=True)
    uploaded_by = ma.fields.String(
        attribute="uploaded_by_role", dump_only=True, metadata={"description": "worker or client"}
    )
    created_at = ma.fields.AwareDateTime(dump_only=True)


class MediaQuerySchema(ma.Schema):
    client_id = ma.fields.UUID()
    appointment_id = ma.fields.UUID()
