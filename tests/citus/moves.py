"""A bounded write load on tenants while one of them moves: every answer is kept (status,
Retry-After, when it started and ended), so a test can count the writes acknowledged against
the rows present and measure how long writes waited."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import text

from backend.core.db import set_tenant_search_path

API = "/api/v1"


@dataclass
class Writer:
    """POSTs clients named `<prefix>-<n>` to one tenant, then reads its list, until stopped."""

    app: object
    headers: dict
    prefix: str
    acknowledged: list[str] = field(default_factory=list)
    failures: list[tuple[int, str | None, object]] = field(default_factory=list)
    writes: list[tuple[float, float]] = field(default_factory=list)  # (start, end) of each write
    reads_ok: int = 0

    def run(self, stop: threading.Event) -> None:
        client = self.app.test_client()
        n = 0
        while not stop.is_set():
            name = f"{self.prefix}-{n}"
            n += 1
            started = time.monotonic()
            response = client.post(f"{API}/clients", json={"name": name}, headers=self.headers)
            self.writes.append((started, time.monotonic()))
            if response.status_code == 201:
                self.acknowledged.append(name)
            else:
                self.failures.append(
                    (response.status_code, response.headers.get("Retry-After"), response.json)
                )
            listed = client.get(f"{API}/clients?limit=5", headers=self.headers)
            if listed.status_code == 200:
                self.reads_ok += 1
            else:
                self.failures.append((listed.status_code, listed.headers.get("Retry-After"), listed.json))

    def blocked_s(self, start: float, end: float) -> float:
        """The longest write that overlapped [start, end]: how long writes waited at most."""
        return max((e - s for s, e in self.writes if e >= start and s <= end), default=0.0)


def under_load(writers: list[Writer], action, *, settle_s: float = 0.3):
    """Run `action()` while the writers write; returns (its result, start, end)."""
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,)) for w in writers]
    for thread in threads:
        thread.start()
    try:
        time.sleep(settle_s)
        start = time.monotonic()
        result = action()
        end = time.monotonic()
        time.sleep(settle_s)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    return result, start, end


def client_names(engine, schema_name: str) -> list[str]:
    with engine.begin() as connection:
        set_tenant_search_path(connection, schema_name)
        return list(connection.execute(text("SELECT name FROM clients")).scalars())
