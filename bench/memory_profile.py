"""Where the memory of an idle connection goes: tracemalloc, by package.

Starts a relay under ``tracemalloc`` (``bench/experiments/traced_server.py``),
snapshots it, joins ``rooms`` rooms (two idle connections each), waits for the
server to go quiet, snapshots again, and charges the difference to the package
of the file that allocated each block. RSS grows by more than tracemalloc sees:
the allocator's own overhead and fragmentation, and C allocations that bypass
Python's allocator. Kernel socket buffers are not in RSS at all.
"""

from __future__ import annotations

import os
import signal
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import pyspy_profile
from servers import Server, Workers, join_rooms


def _snapshot(pid: int, path: Path, timeout: float = 60.0) -> tracemalloc.Snapshot:
    if path.exists():
        path.unlink()
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no tracemalloc snapshot at {path}")
        time.sleep(0.1)
    return tracemalloc.Snapshot.load(str(path))


def profile(kind: str, rooms: int, plan: Any, results: Path) -> dict[str, Any]:
    """Idle-connection memory of server ``kind`` with ``rooms`` joined rooms."""
    target = results / f"memory-{kind}.snapshot"
    server = Server(f"traced-{kind}", results / "logs", "memory", {"BENCH_SNAPSHOT": str(target)})
    workers = None
    try:
        workers = Workers(plan.workers)
        time.sleep(1.0)
        rss0 = server.rss()
        first = _snapshot(server.popen.pid, target)
        join_rooms(server, workers, rooms, plan, "memory")
        time.sleep(1.0)
        rss1 = server.rss()
        second = _snapshot(server.popen.pid, target)
    finally:
        if workers is not None:
            workers.close()
        server.stop()
    connections = 2 * rooms
    by_package: Counter[str] = Counter()
    for stat in second.compare_to(first, "filename"):
        by_package[pyspy_profile.category(stat.traceback[0].filename)] += stat.size_diff
    total = sum(by_package.values())
    return {
        "server": kind,
        "connections": connections,
        "rss_kb_per_conn": (rss1 - rss0) / connections / 1024,
        "traced_kb_per_conn": total / connections / 1024,
        "packages": [
            (name, size / connections / 1024) for name, size in by_package.most_common() if size
        ],
    }
