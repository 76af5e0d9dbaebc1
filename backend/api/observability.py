"""Request plumbing for operators: request id, one JSON access line per request, metrics,
and the client's address behind trusted proxies.

- Request id: `X-Request-ID` from the caller when it is a sane token (8-128 characters of
  letters, digits, `.`, `_`, `:`, `-`), else a new one; always echoed in the response and
  available as `g.request_id` (`current_request_id()`) for audit events.
- Access line (logger `backend.access`): request_id, method, route (the URL rule, e.g.
  `/api/v1/clients/<uuid:client_id>`, never the raw path), status, duration_ms, bytes,
  tenant_id, user_id, role. Never the query string, headers, bodies, emails or the client's
  address (personal data; the proxy in front keeps its own logs if they are needed).
- Every other log line written during the request carries request_id, tenant_id, user_id
  (core/logging context provider).
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, has_request_context, request

from backend.api import metrics
from backend.api.proxies import TrustedProxies
from backend.core.config import ConfigError
from backend.core.logging import add_context_provider

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")
UNMATCHED_ROUTE = "<unmatched>"  # 404/405 before routing: one label, not one per probed path

access_log = logging.getLogger("backend.access")


def current_request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


def request_log_fields() -> dict[str, object]:
    if not has_request_context():
        return {}
    principal = g.get("principal")
    return {
        "request_id": g.get("request_id"),
        "tenant_id": str(principal.tenant_id) if principal else None,
        "user_id": str(principal.user_id) if principal else None,
    }


def begin_request() -> None:
    g.request_started = time.perf_counter()
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if REQUEST_ID_RE.fullmatch(incoming) else uuid.uuid4().hex


def finish_request(response: Response) -> Response:
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    metrics.observe_request(request.method, route, response.status_code, seconds)
    principal = g.get("principal")
    access_log.info(
        "request",
        extra={
            "request_id": request_id,
            "method": request.method,
            "route": route,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 2),
            "bytes": response.content_length,  # None for a streamed body
            "tenant_id": str(principal.tenant_id) if principal else None,
            "user_id": str(principal.user_id) if principal else None,
            "role": principal.role.value if principal else None,
        },
    )
    return response


def init_app(app: Flask) -> None:
    """Install the hooks first in line: the request id exists before any other hook runs
    (even one that answers early), and the access line sees the final response."""
    app.before_request_funcs.setdefault(None, []).insert(0, begin_request)
    # after_request functions run in reverse order of registration: index 0 runs last.
    app.after_request_funcs.setdefault(None, []).insert(0, finish_request)
    add_context_provider(request_log_fields)
    trusted = app.extensions["saas"].settings.forwarded_allow_ips
    try:
        app.wsgi_app = TrustedProxies(app.wsgi_app, trusted)
    except ValueError as error:
        raise ConfigError(f"FORWARDED_ALLOW_IPS: {error}") from None
    metrics.init_app(app)
