"""The worker's tasks, one module per area (docs/jobs.md): each registers its tasks on the
worker's procrastinate app and runs a use case in the Flask app's context."""
