#!/usr/bin/env python3
"""Benchmarks of the project: `scripts/bench.py <name> [--quick] [options]`, or `all`.

Each benchmark is a module of scripts/bench/ (listed in bench.BENCHMARKS) with
`add_arguments(parser)` and `run(args) -> Report`. It sets up its own data on a fresh
embedded PostgreSQL (or on the empty database DATABASE_URL/MIGRATION_DATABASE_URL name),
prints one table of figures and writes the run's JSON record (commit, machine, load average,
settings, figures) under docs/benchmarks/records/ when the tree is committed (`--no-record`).
`scripts/bench.py status [--check]` regenerates docs/benchmarks.md from the records.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import BENCHMARKS
from bench.common import Run, add_common_arguments, publish


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="scripts/bench.py", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="name", required=True, metavar="{all," + ",".join(BENCHMARKS) + "}")
    everything = commands.add_parser("all", help="every benchmark with its default sizes")
    add_common_arguments(everything)
    status = commands.add_parser("status", help="regenerate docs/benchmarks.md from the run records")
    status.add_argument("--check", action="store_true", help="fail when docs/benchmarks.md is stale")
    for name in BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        sub = commands.add_parser(name, help=module.__doc__.splitlines()[0])
        add_common_arguments(sub)
        module.add_arguments(sub)
    return root


def main(argv: list[str] | None = None) -> int:
    root = parser()
    args = root.parse_args(argv)
    if args.name == "status":
        from bench.status import write

        return write(args.check)
    everything = args.name == "all"
    names = list(BENCHMARKS) if everything else [args.name]
    quick_all = everything and "--quick" in (argv or sys.argv[1:])
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        skip = getattr(module, "skip_in_all", None)
        reason = skip(quick=quick_all) if everything and skip else None
        if reason:
            print(f"\n{name}: skipped in `all` ({reason})")
            continue
        if everything:  # re-parsed per benchmark: its defaults, or its ALL_ARGS sizes (`all`
            # must finish in under 15 minutes on 2 cores), and the common flags given
            sizes = [] if "--quick" in (argv or sys.argv[1:]) else getattr(module, "ALL_ARGS", [])
            args = root.parse_args([name, *sizes, *(a for a in (argv or sys.argv[1:]) if a != "all")])
        run = Run.begin()
        publish(name, module.run(args), args, run)
    if not args.no_record and not args.quick:
        from bench.status import write

        write(check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
