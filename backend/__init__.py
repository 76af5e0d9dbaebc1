"""Schema-per-tenant SaaS backend.

- `create_api()`: the app gunicorn serves (`gunicorn ... 'backend:create_api()'`): the runtime
  role only, no owner URL or engine in the process (docs/architecture.md, "Processes and roles").
- `create_app()`: what `flask --app backend ...` finds: the worker and the operator commands,
  which hold the owner role as well (backend/cli/owner.py).
"""


def create_app(settings=None):
    from backend.app import build_app

    return build_app(settings)


def create_api(settings=None):
    from backend.app import build_app

    return build_app(settings, serving=True)
