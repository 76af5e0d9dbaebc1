import marshmallow as ma

from backend.api.dumping import PlainDumpSchema
from backend.domain.clients import EMAIL_MAX, NAME_MAX, NOTES_MAX, PHONE_MAX, SEARCH_MAX


class ClientRecordSchema(PlainDumpSchema):
    """A client as workers see it (clients never read client records). Named `ClientRecord` in
    the document: `Client` is the HTTP client class of generated SDKs."""

    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=NAME_MAX))
    email = ma.fields.Email(allow_none=True, validate=ma.validate.Length(max=EMAIL_MAX))
    phone = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=PHONE_MAX))
    notes = ma.fields.String(
        allow_none=True,
        validate=ma.validate.Length(max=NOTES_MAX),
        metadata={"description": "The worker's private notes"},
    )
    created_at = ma.fields.AwareDateTime(dump_only=True)
    updated_at = ma.fields.AwareDateTime(dump_only=True)


class ClientQuerySchema(ma.Schema):
    q = ma.fields.String(
        validate=ma.validate.Length(min=1, max=SEARCH_MAX),
        metadata={"description": "Name or email prefix, case-insensitive"},
    )


READ_ONLY = "Read-only: accepted so a fetched ClientRecord can be sent back (read-modify-write)"


class ClientRecordUpdateSchema(ClientRecordSchema):
    """A partial update: only the fields sent change; `name` cannot be emptied.

    The read-only fields a ClientRecord carries are accepted so a generated client can send
    back what it read: `id` must be the client's own id (422 otherwise), the timestamps are
    ignored (the server keeps them). docs/api-integration.md."""

    name = ma.fields.String(validate=ma.validate.Length(min=1, max=NAME_MAX))
    id = ma.fields.UUID(metadata={"description": f"{READ_ONLY}; must be this client's id"})
    created_at = ma.fields.AwareDateTime(metadata={"description": f"{READ_ONLY}; ignored"})
    updated_at = ma.fields.AwareDateTime(metadata={"description": f"{READ_ONLY}; ignored"})

    @ma.post_load
    def drop_server_timestamps(self, data: dict, **kwargs) -> dict:
        data.pop("created_at", None)
        data.pop("updated_at", None)
        return data
