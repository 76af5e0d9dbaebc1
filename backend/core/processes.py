"""Worker processes that die with the process that started them.

A pool's workers (concurrent.futures over multiprocessing) live on when their parent is killed
with SIGKILL: nothing runs in the parent to stop them, they are children of the fork server
rather than of the parent (so PR_SET_PDEATHSIG on them would watch the wrong process), and each
holds the write end of its own task queue, so it never sees that queue close. They then sit
under PID 1, holding the caller's stdout and, mid-migration, a database transaction.

`ParentLifeline` gives them an end that does close: the parent keeps the only write end of a
pipe, each worker gets the read end (passed through the pool's `initargs`) and a daemon thread
that blocks on it. When the parent dies, however it dies, the kernel closes the write end, the
read returns end-of-file and the worker exits at once (`os._exit`: the database sees its
connection close and rolls the open transaction back)."""

from __future__ import annotations

import multiprocessing
import os
import threading
from multiprocessing.connection import Connection

# The exit status of a worker whose parent died (EX_SOFTWARE of sysexits.h: no caller left).
ORPHANED_EXIT = 70


class ParentLifeline:
    """Create before the pool, pass `worker_end` in `initargs` to `watch_parent` (the pool's
    initializer), and `close()` only after the pool has shut down."""

    def __init__(self) -> None:
        self.worker_end, self._parent_end = multiprocessing.Pipe(duplex=False)

    def close(self) -> None:
        self._parent_end.close()
        self.worker_end.close()


def watch_parent(worker_end: Connection) -> None:
    """A pool initializer: exit this worker as soon as the parent's end of the lifeline closes."""
    threading.Thread(target=_wait_for_parent, args=(worker_end,), name="parent-lifeline", daemon=True).start()


def _wait_for_parent(worker_end: Connection) -> None:
    try:
        while True:
            worker_end.recv_bytes()  # the parent never writes: this returns only at its end
    except (EOFError, OSError):
        os._exit(ORPHANED_EXIT)
