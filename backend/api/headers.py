"""Response headers every answer gets, set in one place, and the API docs' own assets.

- `X-Content-Type-Options: nosniff` on every response: a browser never guesses a type (a
  media file served as what it was checked to be stays that).
- `Cache-Control: no-store` unless the route chose its own caching (the public key set does):
  API answers carry personal data and tokens (RFC 6749 section 5.1 for token responses), and
  no shared or browser cache may keep them.
- `Retry-After` only on 429 and 503 answers: the error handlers set it (api/errors.py,
  api/extension.rate_limited); flask-limiter's own headers are off (api/__init__.py).
- `/api/docs` loads Swagger UI from this server (the files of the pinned `swagger-ui-bundle-v2`
  package, under DOCS_ASSETS_PATH), never from a CDN: nothing unpinned runs on the docs page.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from backend.api.errors import error_response

DOCS_ASSETS_PATH = "/api/docs/assets/"
DOCS_ASSET_MAX_AGE_S = 24 * 3600  # versioned by the pinned package: safe to cache for a day
DOCS_ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"})

docs_assets = Blueprint("docs_assets", __name__)


@docs_assets.get(f"{DOCS_ASSETS_PATH}<name>")
def docs_asset(name: str) -> Response:
    if name not in DOCS_ASSETS:
        return error_response(404, "not_found")
    return send_from_directory(swagger_ui_path, name, max_age=DOCS_ASSET_MAX_AGE_S)


def secure_defaults(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.config["OPENAPI_SWAGGER_UI_URL"] = DOCS_ASSETS_PATH
    app.register_blueprint(docs_assets)
    app.after_request(secure_defaults)
