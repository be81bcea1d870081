"""Run a relay under ``tracemalloc``; SIGUSR1 writes a snapshot to ``$BENCH_SNAPSHOT``.

``python bench/experiments/traced_server.py duorelay|raw-asgi|websockets --bind H:P``.
Used by ``bench/memory_profile.py`` to see which package holds the memory of
an idle connection. One frame per allocation: each allocation is charged to
the file that made it.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import tracemalloc
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent


def snapshot(signum: int, frame: object) -> None:
    path = os.environ["BENCH_SNAPSHOT"]
    tracemalloc.take_snapshot().dump(path + ".tmp")
    os.replace(path + ".tmp", path)


def main() -> None:
    kind, args = sys.argv[1], sys.argv[2:]
    tracemalloc.start(1)
    signal.signal(signal.SIGUSR1, snapshot)
    if kind == "duorelay":
        sys.argv = ["duorelay", *args]
        runpy.run_module("duorelay", run_name="__main__")
    elif kind == "raw-asgi":
        sys.argv = ["raw_asgi_relay.py", *args]
        runpy.run_path(str(BENCH / "baselines" / "raw_asgi_relay.py"), run_name="__main__")
    elif kind == "websockets":
        sys.argv = ["websockets_relay.py", *args]
        runpy.run_path(str(BENCH / "baselines" / "websockets_relay.py"), run_name="__main__")
    else:
        raise SystemExit(f"unknown server {kind!r}")


if __name__ == "__main__":
    main()
