from backend.api.tenant import settings  # noqa: F401 - registers the settings routes
from backend.api.tenant.routes import blueprint

__all__ = ["blueprint"]
