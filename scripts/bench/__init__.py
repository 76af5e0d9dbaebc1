"""The benchmarks of scripts/bench.py: one module each, with `add_arguments` and `run`."""

BENCHMARKS = (
    "provision",
    "migrate",
    "requests",
    "export",
    "delete",
    "fleet",
    "retention",
    "soak",
    "citus",
    "citus_moves",
)
