"""The OpenAPI document, committed as docs/openapi.json: sorted keys, two-space indent, so
that a diff shows exactly what changed in the API.

`make openapi` (= `scripts/openapi.py write`) rewrites it; `scripts/openapi.py check` exits 1
when it is stale, and so does the test suite (tests/integration/ops/test_openapi.py).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click
from flask import Flask

from backend.core.config import PROJECT_ROOT, Settings

OPENAPI_PATH = PROJECT_ROOT / "docs" / "openapi.json"
WRITE_COMMAND = "make openapi"


def render(app: Flask) -> str:
    """The document the app serves at /api/openapi.json, in its stable committed form."""
    url = f"{app.config['OPENAPI_URL_PREFIX'].rstrip('/')}/{app.config['OPENAPI_JSON_PATH']}"
    response = app.test_client().get(url)
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")
    return json.dumps(response.get_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def offline_app(var_dir: Path) -> Flask:
    """The app without a database: engines connect lazily and the document needs none."""
    from backend import create_app

    settings = Settings(
        env="test",
        database_url="postgresql://openapi@127.0.0.1:1/openapi",
        var_dir=var_dir,
    )
    return create_app(settings)


def current_document() -> str:
    with tempfile.TemporaryDirectory(prefix="openapi-") as var_dir:
        return render(offline_app(Path(var_dir)))


@click.group("openapi")
def openapi_cli() -> None:
    """Write or check docs/openapi.json."""


@openapi_cli.command("write")
def write() -> None:
    """Write docs/openapi.json from the routes as they are."""
    OPENAPI_PATH.write_text(current_document())
    click.echo(f"wrote {OPENAPI_PATH.relative_to(PROJECT_ROOT)}")


@openapi_cli.command("check")
def check() -> None:
    """Exit 1 when docs/openapi.json differs from the routes."""
    committed = OPENAPI_PATH.read_text() if OPENAPI_PATH.exists() else ""
    if committed != current_document():
        click.echo(f"docs/openapi.json is out of date: run `{WRITE_COMMAND}`", err=True)
        sys.exit(1)
    click.echo("docs/openapi.json is up to date")
