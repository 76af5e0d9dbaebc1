#!/usr/bin/env python3
"""Form a Citus cluster we do not start ourselves (docker-compose.citus.yml's one-shot
`cluster-init`, or an operator's own nodes): each worker joined to the coordinator, the
database, the extension and the two roles on every node, exactly as the local cluster
(backend/infrastructure/citus_cluster.form_cluster), plus the passwords the application logs
in with (set on the coordinator; Citus propagates them to the workers).

    COORDINATOR_URL=postgresql://postgres:...@coordinator:5432/postgres \\
    WORKER_URLS=postgresql://postgres:...@worker1:5432/postgres,postgresql://...@worker2:5432/postgres \\
    OWNER_DB_PASSWORD=... APP_DB_PASSWORD=... scripts/citus_bootstrap.py

The host and port of each URL are the ones the coordinator (and the other workers) reach that
node by. WORKER_POOLERS (optional, HOST:PORT,... in the order of WORKER_URLS): the PgBouncer in
front of each worker, through which the coordinator then reaches it (docs/scale-out.md, "Worker
connections"). Idempotent: it runs at every `docker compose up`, and adding a worker to WORKER_URLS
then running it again joins the new node (docs/runbooks/citus-cluster.md: then rebalance).
"""

from __future__ import annotations

import os
import sys

from db_bootstrap import PASSWORDS, set_passwords

from backend.infrastructure.citus_cluster import form_cluster, use_poolers, worker_address


def main() -> int:
    required = ("COORDINATOR_URL", "WORKER_URLS", *PASSWORDS.values())
    missing = [name for name in required if not os.environ.get(name)]
    if missing:
        print(f"citus_bootstrap: {', '.join(missing)} must be set", file=sys.stderr)
        return 2
    coordinator_url = os.environ["COORDINATOR_URL"]
    worker_urls = [url.strip() for url in os.environ["WORKER_URLS"].split(",") if url.strip()]
    poolers = [item.strip() for item in os.environ.get("WORKER_POOLERS", "").split(",") if item.strip()]
    if poolers and len(poolers) != len(worker_urls):
        print("citus_bootstrap: WORKER_POOLERS needs a HOST:PORT per worker of WORKER_URLS", file=sys.stderr)
        return 2
    form_cluster(coordinator_url, worker_urls)
    set_passwords(coordinator_url, {role: os.environ[name] for role, name in PASSWORDS.items()})
    if poolers:
        use_poolers(
            coordinator_url,
            {
                worker_address(url): "host={} port={}".format(*pooler.rsplit(":", 1))
                for url, pooler in zip(worker_urls, poolers, strict=True)
            },
        )
    through = f" (through {', '.join(poolers)})" if poolers else ""
    print(f"citus cluster: {len(worker_urls)} worker(s){through} joined, roles and passwords set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
