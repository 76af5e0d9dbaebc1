"""A client's own data, streamed as a zip (GET /me/data): their profile, their appointments
with the shared notes, their media. It has slots of its own, like the export's (each download
holds a pooled connection while its rows are written), so clients downloading at once never
take the worker's export slots."""

from datetime import UTC, datetime
from functools import partial

from flask import Response, g, stream_with_context
from werkzeug.exceptions import TooManyRequests

from backend.api.auth import request_id
from backend.api.context import registry_uow, runtime
from backend.api.exports.routes import BUSY_RETRY_AFTER_S, export_slots
from backend.api.extension import Blueprint
from backend.domain.identity import Role
from backend.infrastructure.client_data import open_client_snapshot
from backend.infrastructure.exports import ZipStream
from backend.infrastructure.storage import LocalMediaStorage
from backend.service import client_data as service

blueprint = Blueprint("client_data", __name__, url_prefix="/api/v1", description="A client's own data")

ZIP_RESPONSE = {
    "description": "A zip: `README.txt`, `profile.json` (login, workspace, client record), "
    "`appointments.csv` (with the shared notes), `media.csv`, `media/<id>/<name>`, and "
    "`manifest.json` (sha256 and size per file, row counts)",
    "content": {
        "application/zip": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


@blueprint.route("/me/data")
@blueprint.protected(Role.CLIENT)
@blueprint.doc(responses={200: ZIP_RESPONSE}, operationId="downloadMyData")
@blueprint.alt_response(404, description="not_found: the login is not linked to a client record")
@blueprint.alt_response(429, description="Too many exports running; retry after Retry-After")
def download_my_data():
    """Download my own data (client): profile, appointments, media"""
    rt = runtime()
    slots = export_slots("client_data")
    if not slots.acquire(blocking=False):
        raise TooManyRequests(retry_after=BUSY_RETRY_AFTER_S)
    try:
        now = datetime.now(UTC)
        chunks = service.export_client_data(
            viewer=g.principal,
            now=now,
            uow_factory=registry_uow,
            open_snapshot=partial(open_client_snapshot, rt.engine, timeout_s=rt.settings.export_timeout_s),
            storage=LocalMediaStorage(rt.settings.media_dir),
            archive=ZipStream(timestamp=now),
            request_id=request_id(),
        )
        filename = f"{g.access.tenant_slug}-my-data-{now:%Y%m%dT%H%M%SZ}.zip"
        response = Response(
            stream_with_context(chunks),
            status=200,
            mimetype="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )
    except BaseException:
        slots.release()
        raise
    response.call_on_close(slots.release)
    return response
