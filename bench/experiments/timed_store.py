"""``python -m duorelay`` with the time spent in the database counted, from outside.

``bench/uttt.py`` and ``bench/xo.py`` run this instead of ``python -m duorelay``
to report the database time per move: every transaction of the store
(``duorelay.store.gateway.Store._transaction``, the one code path of
``Store.run``: open a connection from the pool, ``BEGIN``, the caller's
statements, ``COMMIT``) is timed in the worker thread that runs it. Migrations
are not counted, nor the wait for a worker thread (the store's capacity limiter).

The totals live in a small file (``DUORELAY_BENCH_STORE_TIMES``) that the
harness reads at any moment with :func:`read`: three little-endian numbers,
``transactions`` (int64), ``wall`` and ``cpu`` seconds (float64; ``cpu`` is the
worker thread's CPU time, so ``wall - cpu`` is waiting: for ``fdatasync``, a
lock, PostgreSQL's answer). Writes are serialized by a lock and a sequence
number, so a read never sees half an update.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

LAYOUT = struct.Struct("<qqdd")  # sequence, transactions, wall s, cpu s
VARIABLE = "DUORELAY_BENCH_STORE_TIMES"


def read(path: Path) -> tuple[int, float, float]:
    """``(transactions, wall s, cpu s)`` so far, from the file of a running server."""
    with path.open("rb") as file:
        while True:
            data = file.read(LAYOUT.size)
            file.seek(0)
            again = file.read(LAYOUT.size)
            file.seek(0)
            if data == again and len(data) == LAYOUT.size:
                _, count, wall, cpu = LAYOUT.unpack(data)
                return count, wall, cpu


def install(path: Path) -> None:
    from duorelay.store import gateway

    path.write_bytes(b"\0" * LAYOUT.size)
    handle = path.open("r+b")
    shared = mmap.mmap(handle.fileno(), LAYOUT.size)
    lock = threading.Lock()
    totals = [0, 0, 0.0, 0.0]
    original = gateway.Store._transaction

    def timed(self: Any, fn: Any) -> Any:
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            return original(self, fn)
        finally:
            wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
            with lock:
                totals[0] += 1
                totals[1] += 1
                totals[2] += wall
                totals[3] += cpu
                LAYOUT.pack_into(shared, 0, *totals)

    gateway.Store._transaction = timed  # type: ignore[method-assign]


if __name__ == "__main__":
    install(Path(os.environ[VARIABLE]))
    import duorelay.app  # noqa: F401  (creates the app from the environment, as main() does)
    from duorelay.cli import main

    sys.exit(main(sys.argv[1:]))
