from backend.api.exports.routes import blueprint

__all__ = ["blueprint"]
