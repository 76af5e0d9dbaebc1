from backend.api.identity.routes import blueprint, jwks_blueprint

__all__ = ["blueprint", "jwks_blueprint"]
