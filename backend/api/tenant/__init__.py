from backend.api.tenant.routes import blueprint

__all__ = ["blueprint"]
