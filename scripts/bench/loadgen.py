#!/usr/bin/env python3
"""A lean load generator, run as its own process by the request benchmarks: `--connections`
threads, each with one keep-alive http.client connection to 127.0.0.1:PORT, send GET PATH
with the bearer tokens of TOKENS_FILE (round robin) until `--requests` are done; prints JSON
{"latencies": [...seconds], "stamps": [...epoch seconds each request started], "errors": n,
"statuses": {...}, "start": t0, "end": t1, "cpu_s": CPU seconds this process used (user + system,
all threads, its start-up included)}."""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import sys
import threading
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/api/v1/clients")
    parser.add_argument("--tokens-file", type=Path, required=True)
    parser.add_argument("--offset", type=int, default=0, help="first token used (spreads processes)")
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--reconnect-every",
        type=int,
        default=0,
        help="close and reopen a connection after this many requests (0: never), so that the "
        "server's workers, which each keep the connections they accepted, share the load evenly",
    )
    args = parser.parse_args()
    tokens = json.loads(args.tokens_file.read_text())
    order = itertools.islice(itertools.cycle(tokens), args.offset % len(tokens), None)
    lock = threading.Lock()
    remaining = [args.requests]
    latencies: list[float] = []
    stamps: list[float] = []
    statuses: dict[str, int] = {}
    errors = [0]

    def take() -> str | None:
        with lock:
            if remaining[0] <= 0:
                return None
            remaining[0] -= 1
            return next(order)

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
        mine: list[float] = []
        mine_stamps: list[float] = []
        while (token := take()) is not None:  # bounded by --requests
            if args.reconnect_every and len(mine) % args.reconnect_every == args.reconnect_every - 1:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
            mine_stamps.append(time.time())
            started = time.perf_counter()
            try:
                connection.request("GET", args.path, headers={"Authorization": f"Bearer {token}"})
                response = connection.getresponse()
                response.read()
                status = str(response.status)
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
                status = "connection error"
            mine.append(time.perf_counter() - started)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status != "200":
                    errors[0] += 1
        connection.close()
        with lock:
            latencies.extend(mine)
            stamps.extend(mine_stamps)

    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    start = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    end = time.time()
    cpu = os.times()
    json.dump(
        {
            "latencies": latencies,
            "stamps": stamps,
            "errors": errors[0],
            "statuses": statuses,
            "start": start,
            "end": end,
            "cpu_s": cpu.user + cpu.system,
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
