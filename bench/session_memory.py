"""What one idle connection's own machinery costs: a Session, its channels, its tasks.

``python bench/session_memory.py [--connections N]`` builds N sessions in one
trio run, over an idle in-memory transport (no Hypercorn, no sockets), under
``tracemalloc``, in three steps, and prints the Python heap each step adds per
connection, by the file that allocated it:

1. the :class:`~duorelay.core.session.Session` objects (with their outbox
   mailbox, token bucket and cancel scope);
2. running them: :meth:`Session.run` with a handler that waits in
   ``Session.receive``, i.e. the session's nursery, its writer task, the
   handler and the coroutine frames they wait in.

What the server adds on top (Hypercorn's connection task, h11 and wsproto
state, socket buffers) is measured by ``bench/run.py``'s idle scenario and
``bench/memory_profile.py``, with real connections.
"""

from __future__ import annotations

import argparse
import tracemalloc
from collections import Counter
from pathlib import Path

import trio
import trio.testing

from duorelay.core.session import Session
from duorelay.observability import Stats
from duorelay.settings import Settings
from duorelay.transport import Frame

SRC = str(Path(__file__).resolve().parent.parent / "src" / "duorelay")


class IdleTransport:
    """A client that connected and then sends nothing."""

    client = "memory:0"

    async def accept(self) -> bool:
        return True

    async def receive(self) -> Frame:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(self, frame: Frame) -> None:
        pass

    async def close(self, code: int, reason: str) -> None:
        pass

    async def drain(self, quiet: float) -> None:
        pass


async def idle(session: Session) -> None:
    await session.receive()


def where(filename: str) -> str:
    if filename.startswith(SRC):
        return "duorelay/" + filename[len(SRC) + 1 :]
    for package in ("trio", "outcome", "sniffio"):
        if f"/{package}/" in filename:
            return package
    return "other"


def grown(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int) -> list[str]:
    by: Counter[str] = Counter()
    for stat in after.compare_to(before, "filename"):
        by[where(stat.traceback[0].filename)] += stat.size_diff
    total = sum(by.values())
    lines = [f"  {total / n:8.0f} B per connection in all"]
    lines += [f"  {size / n:8.0f} B  {name}" for name, size in by.most_common() if size > 0]
    return lines


async def measure(n: int) -> None:
    settings = Settings()
    stats = Stats()
    tracemalloc.start(1)
    start = tracemalloc.take_snapshot()
    sessions = [Session(IdleTransport(), settings, stats) for _ in range(n)]
    built = tracemalloc.take_snapshot()
    async with trio.open_nursery() as nursery:
        for session in sessions:
            nursery.start_soon(session.run, idle)
        await trio.testing.wait_all_tasks_blocked()
        running = tracemalloc.take_snapshot()
        print(f"{n} idle sessions; Python heap per connection, by the file that allocated it")
        print("1. Session objects (outbox mailbox, token bucket, cancel scope):")
        print("\n".join(grown(start, built, n)))
        print("2. running them (session nursery, writer task, handler, their frames):")
        print("\n".join(grown(built, running, n)))
        nursery.cancel_scope.cancel()


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--connections", type=int, default=2000)
    trio.run(measure, cli.parse_args().connections)


if __name__ == "__main__":
    main()
