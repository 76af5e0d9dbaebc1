"""Media: upload, list, download and soft delete. Clients reach only their own."""

from datetime import UTC, datetime

from flask import g, request, send_file
from flask.views import MethodView
from werkzeug.datastructures import CombinedMultiDict

from backend.api.context import runtime, tenant_uow
from backend.api.extension import Blueprint, PaginationParameters
from backend.api.media.schemas import MediaQuerySchema, MediaSchema, MediaUploadSchema
from backend.api.parsing import ArgumentsParser
from backend.core.config import DEFAULT_MEDIA_TYPES
from backend.domain.identity import Role
from backend.domain.media import MediaFilter, download_name
from backend.infrastructure.storage import LocalMediaStorage
from backend.service import media as service

NOT_FOUND = "No such media visible to the caller"
# The file part's allowed media types (OpenAPI `encoding`); the server sniffs the bytes.
UPLOAD_ENCODING = {
    "content": {
        "multipart/form-data": {"encoding": {"file": {"contentType": ", ".join(DEFAULT_MEDIA_TYPES)}}}
    }
}


class MultipartParser(ArgumentsParser):
    """Adds a `multipart` location: form fields and files validated by one schema, unknown
    parts refused (422) like unknown JSON fields."""

    __location_map__ = dict(ArgumentsParser.__location_map__, multipart="load_multipart")
    DEFAULT_UNKNOWN_BY_LOCATION = dict(ArgumentsParser.DEFAULT_UNKNOWN_BY_LOCATION, multipart=None)

    def load_multipart(self, req, schema):
        return self._makeproxy(CombinedMultiDict([req.files, req.form]), schema)


class MediaBlueprint(Blueprint):
    ARGUMENTS_PARSER = MultipartParser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = dict(
        Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING, multipart="multipart/form-data"
    )


blueprint = MediaBlueprint("media", __name__, url_prefix="/api/v1/media", description="Media")


def media_storage() -> LocalMediaStorage:
    return LocalMediaStorage(runtime().settings.media_dir)


@blueprint.route("")
class MediaCollection(MethodView):
    @blueprint.protected(Role.WORKER, Role.CLIENT)
    @blueprint.arguments(MediaQuerySchema, location="query")
    @blueprint.response(200, MediaSchema(many=True))
    @blueprint.paginated()
    @blueprint.doc(operationId="listMedia")
    def get(self, query: dict, pagination_parameters: PaginationParameters):
        """List media"""
        items, total = service.list_media(
            viewer=g.principal,
            filters=MediaFilter(**query),
            page=pagination_parameters.page,
            page_size=pagination_parameters.page_size,
            uow=tenant_uow(),
        )
        pagination_parameters.item_count = total
        return items

    @blueprint.protected(Role.WORKER, Role.CLIENT)
    @blueprint.arguments(MediaUploadSchema, location="multipart")
    @blueprint.response(201, MediaSchema)
    @blueprint.alt_response(404, description="No such client or appointment visible to the caller")
    @blueprint.alt_response(413, description="`payload_too_large`: above MEDIA_MAX_BYTES")
    @blueprint.alt_response(415, description="`unsupported_media_type`: bytes of a type not allowed")
    @blueprint.doc(operationId="uploadMedia", requestBody=UPLOAD_ENCODING)
    def post(self, form: dict):
        """Upload a file"""
        settings = runtime().settings
        upload = form["file"]
        return service.upload_media(
            viewer=g.principal,
            client_id=form.get("client_id"),
            appointment_id=form.get("appointment_id"),
            filename=upload.filename,
            content=upload.stream,
            max_bytes=settings.media_max_bytes,
            allowed_types=settings.media_allowed_types,
            now=datetime.now(UTC),
            uow=tenant_uow(),
            storage=media_storage(),
        )


@blueprint.route("/<uuid:media_id>")
class MediaById(MethodView):
    @blueprint.protected(Role.WORKER, Role.CLIENT)
    @blueprint.response(200, MediaSchema)
    @blueprint.alt_response(404, description=NOT_FOUND)
    @blueprint.doc(operationId="getMedia")
    def get(self, media_id):
        """Get a media item's details"""
        return service.get_media(viewer=g.principal, media_id=media_id, uow=tenant_uow())

    @blueprint.protected(Role.WORKER, Role.CLIENT)
    @blueprint.response(204)
    @blueprint.alt_response(404, description=NOT_FOUND)
    @blueprint.doc(operationId="deleteMedia")
    def delete(self, media_id):
        """Delete a media item (a client: only one they uploaded)"""
        service.delete_media(
            viewer=g.principal,
            media_id=media_id,
            now=datetime.now(UTC),
            uow=tenant_uow(),
            request_id=g.get("request_id"),
        )


# Binary, in the type the upload was sniffed as (one of MEDIA_ALLOWED_TYPES; the defaults are
# documented), so that generated clients read bytes rather than parse an error body.
# `application/octet-stream` comes first: openapi-python-client reads only that binary type and
# would drop the answer otherwise (it takes the first type it knows).
BINARY = {"schema": {"type": "string", "format": "binary"}}
CONTENT_RESPONSE = {
    "description": "The file, as an attachment, in the media type it was stored as",
    "content": {
        "application/octet-stream": BINARY,
        **{media_type: BINARY for media_type in DEFAULT_MEDIA_TYPES},
    },
}


@blueprint.route("/<uuid:media_id>/content")
class MediaContent(MethodView):
    @blueprint.protected(Role.WORKER, Role.CLIENT)
    @blueprint.doc(responses={200: CONTENT_RESPONSE})
    @blueprint.alt_response(404, description=NOT_FOUND)
    @blueprint.doc(operationId="downloadMediaContent")
    def get(self, media_id):
        """Download a media item's bytes"""
        item, handle = service.open_media(
            viewer=g.principal, media_id=media_id, uow=tenant_uow(), storage=media_storage()
        )
        response = send_file(
            handle,
            mimetype=item.content_type,
            as_attachment=True,
            download_name=download_name(item.filename, item.content_type),
            etag=item.sha256,
            conditional=False,
        )
        response.content_length = item.size_bytes
        response.cache_control.private = True
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response.make_conditional(request.environ, accept_ranges=True, complete_length=item.size_bytes)
