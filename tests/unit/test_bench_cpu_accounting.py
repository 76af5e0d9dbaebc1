"""The benchmarks' CPU per request by process tree (scripts/bench/common.py tree_cpu_seconds,
used by `bench.py citus` per PostgreSQL node): a child that works and exits between two readings
still counts, through the time its parent reaped (a PostgreSQL backend ending during a pass)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import psutil

from backend.core.config import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "scripts"))

from bench.common import tree_cpu_seconds

# A parent that, on each line of its input, starts a child burning ~0.3 s of CPU and reaps it
# (as a postmaster reaps its backends), then answers.
PARENT = textwrap.dedent(
    """
    import subprocess, sys
    burn = "import time\\nend = time.process_time() + 0.3\\nwhile time.process_time() < end: pass"
    for line in sys.stdin:
        subprocess.run([sys.executable, "-c", burn], check=True)
        print("done", flush=True)
    """
)


def test_a_child_that_exits_between_readings_counts_through_its_parent():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        tree = psutil.Process(parent.pid)
        before = tree_cpu_seconds(tree)
        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.stdout.readline().strip() == "done"
        assert not tree.children()  # the child is gone: only the parent's reaped time holds it
        assert tree_cpu_seconds(tree) - before >= 0.25
    finally:
        parent.stdin.close()
        parent.wait(timeout=30)
