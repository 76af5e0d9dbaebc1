import marshmallow as ma


class DeletionRequestSchema(ma.Schema):
    confirm_slug = ma.fields.String(
        required=True, metadata={"description": "The workspace slug, typed again to confirm"}
    )


class DeletionScheduledSchema(ma.Schema):
    deletion_due_at = ma.fields.AwareDateTime(
        required=True, metadata={"description": "When the workspace and its data are purged"}
    )
