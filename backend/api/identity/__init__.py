from backend.api.identity.accounts import blueprint as account_blueprint
from backend.api.identity.mfa import blueprint as mfa_blueprint
from backend.api.identity.routes import blueprint, jwks_blueprint

__all__ = ["account_blueprint", "blueprint", "jwks_blueprint", "mfa_blueprint"]
