from backend.api.audit.routes import blueprint

__all__ = ["blueprint"]
