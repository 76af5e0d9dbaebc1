from backend.api.media.routes import blueprint

__all__ = ["blueprint"]
