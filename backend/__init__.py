"""Schema-per-tenant SaaS backend. `flask --app backend ...` finds `create_app` here."""


def create_app(settings=None):
    from backend.app import build_app

    return build_app(settings)
