"""What one Santorini event costs the store, piece by piece (docs/benchmarks.md,
"Santorini referee").

``python bench/experiments/santorini_store_cost.py MODE [N]`` writes N action
events (default 1500, after 100 to warm up) of one game into a fresh SQLite file
under ``bench/results/`` and prints the CPU (user, system) and wall time per event:

- ``default``: ``Recorder.event`` used directly, as the referee called it before
  its event log had a writer (``Store.run``: a worker thread, SQLAlchemy Core,
  one transaction per event, ``fdatasync`` at commit);
- ``normal``: the same with ``PRAGMA synchronous=NORMAL`` (no ``fdatasync`` per
  commit);
- ``inline``: the same SQLAlchemy transaction in the Trio thread (no thread hop);
- ``raw``: the stdlib ``sqlite3`` module, the same row (data as ``json.dumps``),
  one transaction with ``fdatasync``: no SQLAlchemy, no thread.
"""

from __future__ import annotations

import json
import resource
import sqlite3
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import trio

from duorelay.referee.record import Recorder, _now
from duorelay.store import gateway
from duorelay.store.gateway import Store
from duorelay.store.schema import match_events

RESULTS = Path(__file__).resolve().parent.parent / "results"
BOARD = [
    [0, 1, 2, 0, 0, 0],
    ["0ab1", 0, 0, 0, 0, "0cd2"],
    [0] * 6,
    [0] * 6,
    [0] * 6,
    ["0ab2", 0, 0, 0, 0, "0cd1"],
]
DATA = {"player": "ab", "action": ["ab1", "EAST", "PUT", "EAST", "PUT"], "board": BOARD, "ms": 0}


def cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def synchronous_normal() -> None:
    pragmas = gateway._sqlite_pragmas

    def patched(connection: Any, record: Any) -> None:
        pragmas(connection, record)
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    gateway._sqlite_pragmas = patched


def fresh_database(mode: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"store-cost-{mode}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


async def main(mode: str, count: int) -> None:
    path = fresh_database(mode)
    if mode == "normal":
        synchronous_normal()
    store = Store(f"sqlite:///{path}")
    await store.migrate()
    recorder = Recorder(store)
    match_id = uuid.uuid4().hex
    await recorder.game_started(match_id, None, ["ab", "cd"], 1, 1)
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")

    async def event(seq: int) -> None:
        if mode in ("default", "normal"):
            await recorder.event(match_id, seq, "action", DATA)
        elif mode == "inline":
            with store.engine.begin() as connection:
                connection.execute(
                    match_events.insert().values(
                        match_id=match_id, seq=seq, kind="action", at=_now(), data=DATA
                    )
                )
        elif mode == "raw":
            raw.execute("BEGIN")
            raw.execute(
                "INSERT INTO match_events (match_id, seq, kind, at, data) VALUES (?, ?, ?, ?, ?)",
                (match_id, seq, "action", _now().isoformat(), json.dumps(DATA)),
            )
            raw.execute("COMMIT")
        else:
            raise SystemExit(f"unknown mode {mode!r}")

    for seq in range(1, 101):
        await event(seq)
    (user0, system0), wall0 = cpu(), time.perf_counter()
    for seq in range(101, 101 + count):
        await event(seq)
    (user1, system1), wall1 = cpu(), time.perf_counter()
    print(
        f"{mode:8s} user {1e6 * (user1 - user0) / count:5.0f} us  "
        f"system {1e6 * (system1 - system0) / count:5.0f} us  "
        f"wall {1e6 * (wall1 - wall0) / count:5.0f} us per event"
    )
    raw.close()
    store.close()


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1500)
