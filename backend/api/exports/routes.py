"""The worker's export of the whole workspace, streamed as a zip."""

from datetime import UTC, datetime
from functools import partial

from flask import Response, g, request, stream_with_context
from flask.views import MethodView

from backend.api.context import registry_uow, runtime
from backend.api.extension import Blueprint
from backend.domain.identity import Role
from backend.domain.lifecycle import Actor
from backend.infrastructure.exports import ZipStream, open_snapshot
from backend.infrastructure.tenant_files import TenantMediaDirectory
from backend.service import exports as service

blueprint = Blueprint("exports", __name__, url_prefix="/api/v1/export", description="Export")

ZIP_RESPONSE = {
    "description": "A zip: `tables/<table>.csv` (one per table, with a header line, all from "
    "one snapshot), `media/<file>`, and `manifest.json` (row counts, sha256 per file)",
    "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
}


@blueprint.route("")
class Export(MethodView):
    @blueprint.protected(Role.WORKER, read_only_ok=True, deletion_ok=True)
    @blueprint.doc(responses={200: ZIP_RESPONSE})
    def get(self):
        """Download the whole workspace"""
        rt = runtime()
        now = datetime.now(UTC)
        actor = Actor(
            user_id=g.principal.user_id,
            role=g.principal.role.value,
            request_id=g.get("request_id") or request.headers.get("X-Request-ID"),
        )
        chunks = service.export_workspace(
            tenant_id=g.principal.tenant_id,
            now=now,
            actor=actor,
            uow_factory=registry_uow,
            open_snapshot=partial(open_snapshot, rt.engine, timeout_s=rt.settings.export_timeout_s),
            media=TenantMediaDirectory(rt.settings.media_dir),
            archive=ZipStream(timestamp=now.timetuple()),
        )
        filename = f"{g.access.tenant_slug}-export-{now:%Y%m%dT%H%M%SZ}.zip"
        return Response(
            stream_with_context(chunks),
            status=200,
            mimetype="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )
