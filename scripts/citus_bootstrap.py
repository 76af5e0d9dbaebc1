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
node by. Idempotent: it runs at every `docker compose up`, and adding a worker to WORKER_URLS
then running it again joins the new node (docs/runbooks/citus-cluster.md: then rebalance).
"""

from __future__ import annotations

import os
import sys

from db_bootstrap import PASSWORDS, set_passwords

from backend.infrastructure.citus_cluster import form_cluster


def main() -> int:
    required = ("COORDINATOR_URL", "WORKER_URLS", *PASSWORDS.values())
    missing = [name for name in required if not os.environ.get(name)]
    if missing:
        print(f"citus_bootstrap: {', '.join(missing)} must be set", file=sys.stderr)
        return 2
    coordinator_url = os.environ["COORDINATOR_URL"]
    worker_urls = [url.strip() for url in os.environ["WORKER_URLS"].split(",") if url.strip()]
    form_cluster(coordinator_url, worker_urls)
    set_passwords(coordinator_url, {role: os.environ[name] for role, name in PASSWORDS.items()})
    print(f"citus cluster: coordinator and {len(worker_urls)} worker(s) joined, roles and passwords set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
