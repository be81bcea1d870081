"""What ``bench/uttt.py`` and ``bench/xo.py`` share: the server, its database time,
the measurement window, percentiles, and the loop of a trio bot process.

- :func:`start_server`: ``python -m duorelay`` (through
  ``bench/experiments/timed_store.py``, which counts the time spent in the store)
  on a free port, with the rate limits and connection caps lifted
  (``servers.DUORELAY_ENV``), the login rate limit raised (:data:`LOGIN_ENV`) and
  a fresh database (a SQLite file under ``bench/results/``, or the URL given);
- :class:`Window`: server CPU, bot CPU, other CPU and database time between two
  instants;
- :func:`play`: the ``play`` command to every bot process, the :class:`Window`
  of its measured part and the bots' answers (:class:`Played`);
- :func:`split_pairs`: the bots' names in runs of whole pairs, one a process;
- :func:`run_trio_worker`: the command loop of a bot process started by
  ``servers.Workers``: one trio run per process, so the bots' connections live
  from one command to the next.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import scenarios
from experiments import timed_store
from servers import DUORELAY_ENV, RESULTS, Server, Workers, log, websocket_probe

BENCH = Path(__file__).resolve().parent
LOGIN_ENV = {"DUORELAY_LOGIN_RATE": "1000000", "DUORELAY_LOGIN_BURST": "1000000"}
"""The login rate limit (default 0.2 a second and a burst of 10 per address and per
name) would hold every bot back: they all log in from 127.0.0.1."""


def sqlite_url(tag: str) -> str:
    database = RESULTS / f"{tag}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{database}"


def start_server(
    tag: str, *, database_url: str, probe_path: str, env: dict[str, str] | None = None
) -> Server:
    """A fresh ``python -m duorelay`` (timed store) on a free port, ready once a
    websocket upgrade to ``probe_path`` answers 101."""
    times = RESULTS / f"{tag}.store-times"
    environment = {
        **DUORELAY_ENV,
        **LOGIN_ENV,
        "DUORELAY_DATABASE_URL": database_url,
        timed_store.VARIABLE: str(times),
        **(env or {}),
    }
    command = [
        sys.executable,
        str(BENCH / "experiments" / "timed_store.py"),
        "--bind",
        "127.0.0.1:{port}",
    ]

    def ready(server: Server) -> bool:
        return websocket_probe(server.port, probe_path, 1.0)

    server = Server("duorelay", RESULTS / "logs", tag, environment, command=command, ready=ready)
    server.store_times = times  # type: ignore[attr-defined]
    return server


def store_times(server: Server) -> tuple[int, float, float]:
    return timed_store.read(server.store_times)  # type: ignore[attr-defined]


@dataclass
class Window:
    """CPU and database time of a run between :meth:`start` and :meth:`stop`."""

    server: Server
    bots: Workers
    seconds: float = 0.0
    server_cpu: float = 0.0
    bots_cpu: float = 0.0
    other_cpu: float = 0.0
    transactions: int = 0
    db_wall: float = 0.0
    db_cpu: float = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0, self._bots0 = self.server.cpu(), self.bots.cpu()
        self._busy0 = scenarios.busy_cpu()
        self._db0 = store_times(self.server)

    def stop(self) -> None:
        self.seconds = time.monotonic() - self._t0
        self.server_cpu = self.server.cpu() - self._cpu0
        self.bots_cpu = self.bots.cpu() - self._bots0
        busy = scenarios.busy_cpu() - self._busy0
        self.other_cpu = max(0.0, busy - self.server_cpu - self.bots_cpu)
        count, wall, cpu = store_times(self.server)
        self.transactions = count - self._db0[0]
        self.db_wall = wall - self._db0[1]
        self.db_cpu = cpu - self._db0[2]

    def figures(self, per: int, unit: str) -> dict[str, float]:
        """The window's figures, per ``unit`` (``per`` of them in the window)."""
        per_unit = max(per, 1)
        return {
            "window_s": self.seconds,
            f"{unit}s_per_s": per / self.seconds,
            f"server_cpu_us_per_{unit}": 1e6 * self.server_cpu / per_unit,
            "server_cpu_pct": 100 * self.server_cpu / self.seconds,
            f"bot_cpu_us_per_{unit}": 1e6 * self.bots_cpu / per_unit,
            "bot_cpu_pct": 100 * self.bots_cpu / self.seconds,
            "other_cpu_pct": 100 * self.other_cpu / self.seconds,
            f"db_transactions_per_{unit}": self.transactions / per_unit,
            f"db_wall_us_per_{unit}": 1e6 * self.db_wall / per_unit,
            f"db_cpu_us_per_{unit}": 1e6 * self.db_cpu / per_unit,
        }


@dataclass
class Played:
    """What :func:`play` measured."""

    window: Window
    rss: int
    """The server's RSS right after the window."""
    answers: list[dict[str, Any]]
    """Every bot process's answer to ``play``."""

    @property
    def moves(self) -> int:
        return sum(a["moves"] for a in self.answers)

    def figures(self) -> dict[str, Any]:
        """The moves, the window's figures per move and the latency figures."""
        moves = self.moves
        return {
            "moves": moves,
            **self.window.figures(moves, "move"),
            **latency_figures([x for a in self.answers for x in a["latencies"]]),
        }


def play(
    server: Server,
    bots: Workers,
    *,
    period: float,
    warmup: float,
    seconds: float,
    what: str,
    collect_timeout: float,
) -> Played:
    """Send ``play`` to every bot process (each match or game moving once every
    ``period`` s, starting in 1 s), measure the :class:`Window` from ``warmup`` s
    after that start for ``seconds`` s, then collect the bots' answers. ``what``
    opens the log line."""
    start = time.monotonic() + 1.0
    begin = start + warmup
    end = begin + seconds
    log(f"{what} for {end - start:.0f} s")
    bots.send("play", [{"start": start, "begin": begin, "end": end, "period": period}] * len(bots))
    window = Window(server, bots)
    time.sleep(max(0.0, begin - time.monotonic()))
    window.start()
    time.sleep(max(0.0, end - time.monotonic()))
    window.stop()
    rss = server.rss()
    return Played(window, rss, bots.collect(timeout=collect_timeout))


def split_pairs(names: list[str], parts: int) -> list[list[str]]:
    """``names`` in ``parts`` runs of whole pairs (both bots of a match together)."""
    pairs = [names[i : i + 2] for i in range(0, len(names), 2)]
    return [[name for pair in pairs[p::parts] for name in pair] for p in range(parts)]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_figures(latencies: list[float], prefix: str = "latency") -> dict[str, float]:
    return {
        f"{prefix}_p50_ms": 1e3 * percentile(latencies, 50),
        f"{prefix}_p90_ms": 1e3 * percentile(latencies, 90),
        f"{prefix}_p99_ms": 1e3 * percentile(latencies, 99),
        f"{prefix}_max_ms": 1e3 * max(latencies, default=math.nan),
        f"{prefix}_samples": len(latencies),
    }


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def answer(
    handlers: dict[str, Handler], command: str, arg: dict[str, Any]
) -> dict[str, Any]:
    """The answer of ``command`` in a bot process (any event loop): its
    handler's dict, or ``{"fatal": ...}`` (the harness raises BenchError)."""
    handler = handlers.get(command)
    try:
        if handler is None:
            raise ValueError(f"unknown command {command!r}")
        return await handler(arg)
    except Exception as error:  # reported to the harness: BenchError
        return {"fatal": f"{type(error).__name__}: {error}"}


def run_trio_worker(pipe: Connection, make_handlers: Callable[[Any], dict[str, Handler]]) -> None:
    """The command loop of one bot process: ``make_handlers(nursery)`` gives the
    commands; each answers a dict (an exception: ``{"fatal": ...}``). ``exit``
    cancels every bot and ends the process."""
    import loadgen
    import trio

    loadgen.raise_nofile_limit()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            handlers = make_handlers(nursery)
            while True:
                command, arg = await trio.to_thread.run_sync(pipe.recv)
                if command == "exit":
                    nursery.cancel_scope.cancel()
                    with contextlib.suppress(OSError):
                        pipe.send({})
                    return
                pipe.send(await answer(handlers, command, arg))

    trio.run(main)


async def connect_websocket(parent: Any, url: str, problems: Any) -> Any:
    """A trio-websocket connection whose background tasks live in a nursery of
    their own, in a task of ``parent``: an error there (trio-websocket 0.12 can
    raise ``LocalProtocolError`` when a ping from the server crosses our close) ends
    that connection only; it is counted in ``problems``."""
    import trio
    from trio_websocket import connect_websocket_url

    async def hold(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        try:
            async with trio.open_nursery() as nursery:
                ws = await connect_websocket_url(nursery, url)
                started = True
                task_status.started(ws)
        except Exception as error:
            if not started:
                raise
            problems[f"trio-websocket: {type(error).__name__}: {error}"[:160]] += 1

    return await parent.start(hold)


def client_problems(answers: list[dict[str, Any]]) -> dict[str, int]:
    """The bots' own library problems (``connect_websocket``), summed over processes."""
    total: dict[str, int] = {}
    for answer in answers:
        for key, count in answer.get("client_problems", {}).items():
            total[key] = total.get(key, 0) + count
    return total
