"""Wait for something another process or thread does (a notification, a restart)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# Far below the access cache's 300 s TTL: an answer that changes within this bound was
# invalidated, not expired.
DEFAULT_WITHIN_S = 5.0


def eventually(probe: Callable[[], T], done: Callable[[T], bool], within_s: float = DEFAULT_WITHIN_S) -> T:
    """Call `probe` until `done(result)` or `within_s` passed; return the last result."""
    deadline = time.monotonic() + within_s
    while True:
        result = probe()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.05)
