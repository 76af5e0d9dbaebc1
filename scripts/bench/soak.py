"""soak: many tenants under mixed reads and writes for a while; zero errors, nothing lost.

The load test lives in scripts/bench_soak.py (it also runs alone, and its load process
re-enters it); this module plugs it into `scripts/bench.py soak`. A run with any error or any
row written but not stored exits non-zero after its table is recorded.
"""

from __future__ import annotations

import argparse
import atexit
import sys

import bench_soak

add_arguments = bench_soak.add_arguments


def run(args: argparse.Namespace):
    result = bench_soak.run(args)
    if result.errors or result.lost:
        atexit.register(sys.exit, 1)  # after publish() has printed and recorded the figures
    return result
