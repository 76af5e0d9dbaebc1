"""A client's own data, streamed as a zip (GET /me/data): their profile, their appointments
with the shared notes, their media. It has slots of its own, like the export's (each download
holds a pooled connection while its rows are written), so clients downloading at once never
take the worker's export slots. Each login may start a few downloads per window
(RATE_LIMIT_MY_DATA_USER, api/identity/limits.py)."""

from functools import partial

from flask import g

from backend.api.auth import request_id
from backend.api.context import registry_uow, runtime
from backend.api.exports.routes import zip_download
from backend.api.extension import Blueprint
from backend.api.identity import limits
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
@limits.my_data  # inside `protected`: counted per authenticated login
@blueprint.doc(responses={200: ZIP_RESPONSE}, operationId="downloadMyData")
@blueprint.alt_response(404, description="not_found: the login is not linked to a client record")
@blueprint.alt_response(
    429,
    description="rate_limited: this login's downloads per window (RATE_LIMIT_MY_DATA_USER) are used "
    "up, or too many downloads are running; retry after Retry-After",
)
def download_my_data():
    """Download my own data (client): profile, appointments, media"""
    rt = runtime()
    return zip_download(
        "client_data",
        "my-data",
        lambda now: service.export_client_data(
            viewer=g.principal,
            now=now,
            uow_factory=registry_uow,
            open_snapshot=partial(open_client_snapshot, rt.engine, timeout_s=rt.settings.export_timeout_s),
            storage=LocalMediaStorage(rt.settings.media_dir),
            archive=ZipStream(timestamp=now),
            request_id=request_id(),
        ),
    )
