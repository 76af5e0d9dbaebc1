"""The worker's export of the whole workspace, streamed as a zip."""

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial

from flask import Response, current_app, g, stream_with_context
from flask.views import MethodView
from werkzeug.exceptions import TooManyRequests

from backend.api.auth import request_id
from backend.api.context import registry_uow, runtime
from backend.api.extension import Blueprint
from backend.domain.identity import Role
from backend.domain.lifecycle import Actor
from backend.infrastructure.exports import ZipStream, open_snapshot
from backend.infrastructure.storage import LocalMediaStorage
from backend.service import exports as service

blueprint = Blueprint("exports", __name__, url_prefix="/api/v1/export", description="Export")

ZIP_RESPONSE = {
    "description": "A zip: `tables/<table>.csv` (one per table, with a header line, all from "
    "one snapshot), `media/<file>`, and `manifest.json` (row counts, sha256 per file)",
    # Sent as application/zip. application/octet-stream is listed too (the same bytes) because
    # code generators that know only that binary type (openapi-python-client) drop the answer.
    "content": {
        "application/zip": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
BUSY_RETRY_AFTER_S = 30
_slots_lock = threading.Lock()


def export_slots(pool: str = "workspace") -> threading.BoundedSemaphore:
    """Each running export holds a pooled connection for its whole download: a few at once
    per process, so exports never starve the API's pool. Each `pool` has its own slots: the
    clients' own downloads (`client_data`) can never take the worker's."""
    with _slots_lock:
        key = f"saas_export_slots_{pool}"
        slots = current_app.extensions.get(key)
        if slots is None:
            slots = threading.BoundedSemaphore(max(1, runtime().settings.export_max_concurrent))
            current_app.extensions[key] = slots
    return slots


def zip_download(pool: str, name: str, chunks_at: Callable[[datetime], Iterator[bytes]]) -> Response:
    """The zip `chunks_at(now)` streams, sent while it holds one of `pool`'s slots (429 with
    Retry-After when none is free); the slot is released when the server closes the response:
    finished, failed or abandoned."""
    slots = export_slots(pool)
    if not slots.acquire(blocking=False):
        raise TooManyRequests(retry_after=BUSY_RETRY_AFTER_S)
    try:
        now = datetime.now(UTC)
        filename = f"{g.access.tenant_slug}-{name}-{now:%Y%m%dT%H%M%SZ}.zip"
        response = Response(
            stream_with_context(chunks_at(now)),
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


@blueprint.route("")
class Export(MethodView):
    @blueprint.protected(Role.WORKER, read_only_ok=True, deletion_ok=True)
    @blueprint.doc(responses={200: ZIP_RESPONSE})
    @blueprint.alt_response(429, description="Too many exports running; retry after Retry-After")
    @blueprint.doc(operationId="downloadExport")
    def get(self):
        """Download the whole workspace"""
        rt = runtime()
        actor = Actor(user_id=g.principal.user_id, role=g.principal.role.value, request_id=request_id())
        return zip_download(
            "workspace",
            "export",
            lambda now: service.export_workspace(
                tenant_id=g.principal.tenant_id,
                now=now,
                actor=actor,
                uow_factory=registry_uow,
                open_snapshot=partial(open_snapshot, rt.engine, timeout_s=rt.settings.export_timeout_s),
                storage=LocalMediaStorage(rt.settings.media_dir),
                archive=ZipStream(timestamp=now),
            ),
        )
