"""gunicorn's logger without its access line (the app logs one JSON line per request)."""

from gunicorn.glogging import Logger


class AppAccessLogger(Logger):
    def access(self, resp, req, environ, request_time) -> None:
        """Nothing: backend/api/observability.py writes the access line, without the raw path,
        query string or client address that gunicorn's would carry."""
