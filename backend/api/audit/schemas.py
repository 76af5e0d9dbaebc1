import marshmallow as ma


class AuditEventSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True, required=True)
    occurred_at = ma.fields.AwareDateTime(dump_only=True, required=True)
    actor_user_id = ma.fields.UUID(dump_only=True, required=True, allow_none=True)
    actor_role = ma.fields.String(dump_only=True, required=True, allow_none=True)
    event = ma.fields.String(dump_only=True, required=True)
    target_type = ma.fields.String(dump_only=True, required=True, allow_none=True)
    target_id = ma.fields.String(dump_only=True, required=True, allow_none=True)
    request_id = ma.fields.String(dump_only=True, required=True, allow_none=True)
    outcome = ma.fields.String(dump_only=True, required=True)
    metadata = ma.fields.Dict(dump_only=True, required=True)
