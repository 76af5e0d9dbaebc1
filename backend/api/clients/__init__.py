from backend.api.clients.routes import blueprint

__all__ = ["blueprint"]
