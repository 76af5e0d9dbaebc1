import marshmallow as ma

from backend.api import rules
from backend.api.dumping import PlainDumpSchema
from backend.domain.clients import EMAIL_MAX, NAME_MAX, NOTES_MAX, PHONE_MAX, SEARCH_MAX


class ClientRecordCreateSchema(ma.Schema):
    """A new client: what a worker writes."""

    name = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=NAME_MAX),
        metadata={"pattern": rules.NON_BLANK, "description": "Trimmed; not blank"},
    )
    email = rules.Email(allow_none=True, validate=ma.validate.Length(max=EMAIL_MAX))
    phone = ma.fields.String(
        allow_none=True,
        validate=ma.validate.Length(max=PHONE_MAX),
        metadata={
            "pattern": rules.PHONE,
            "description": "Digits, spaces and + ( ) . / - with at least 3 digits; blank is stored as null",
        },
    )
    notes = ma.fields.String(
        allow_none=True,
        validate=ma.validate.Length(max=NOTES_MAX),
        metadata={"description": "The worker's private notes"},
    )


class ClientRecordSchema(PlainDumpSchema):
    """A client as workers see it (clients never read client records), every field present
    (`required` in the document: generated models carry no `Unset`). Named `ClientRecord` in
    the document: `Client` is the HTTP client class of generated SDKs. Plain fields only: the
    list dumps them without marshmallow's per-field machinery (api/dumping.py)."""

    id = ma.fields.UUID(dump_only=True, required=True)
    name = ma.fields.String(dump_only=True, required=True)
    email = ma.fields.String(dump_only=True, required=True, allow_none=True)
    phone = ma.fields.String(dump_only=True, required=True, allow_none=True)
    notes = ma.fields.String(
        dump_only=True, required=True, allow_none=True, metadata={"description": "The worker's private notes"}
    )
    created_at = ma.fields.AwareDateTime(dump_only=True, required=True)
    updated_at = ma.fields.AwareDateTime(dump_only=True, required=True)


class ClientQuerySchema(ma.Schema):
    q = ma.fields.String(
        validate=ma.validate.Length(min=1, max=SEARCH_MAX),
        metadata={"description": "Name or email prefix, case-insensitive"},
    )


READ_ONLY = "Read-only: accepted so a fetched ClientRecord can be sent back (read-modify-write)"
# `readOnly` in the document (OpenAPI: not to be sent, may be ignored): generators still
# offer the field, fuzzers leave it out.
READ_ONLY_DOC = {"readOnly": True}


class ClientRecordUpdateSchema(ClientRecordCreateSchema):
    """A partial update: only the fields sent change; `name` cannot be emptied.

    The read-only fields a ClientRecord carries are accepted so a generated client can send
    back what it read: `id` must be the client's own id (422 otherwise), the timestamps are
    ignored (the server keeps them). docs/api-integration.md."""

    name = ma.fields.String(
        validate=ma.validate.Length(min=1, max=NAME_MAX), metadata={"pattern": rules.NON_BLANK}
    )
    id = ma.fields.UUID(metadata={"description": f"{READ_ONLY}; must be this client's id", **READ_ONLY_DOC})
    created_at = ma.fields.AwareDateTime(metadata={"description": f"{READ_ONLY}; ignored", **READ_ONLY_DOC})
    updated_at = ma.fields.AwareDateTime(metadata={"description": f"{READ_ONLY}; ignored", **READ_ONLY_DOC})

    @ma.post_load
    def drop_server_timestamps(self, data: dict, **kwargs) -> dict:
        data.pop("created_at", None)
        data.pop("updated_at", None)
        return data
