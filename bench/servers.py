"""The processes of a benchmark run: the servers under test and the load generator.

- :class:`Server`: one relay process on a free loopback port (duorelay, the
  raw-ASGI and python-websockets baselines, the experiments), started and
  probed until it answers a websocket upgrade, killed at the end;
- :class:`Workers`: the load generator's processes (``bench/loadgen.py``),
  driven one command at a time over a pipe;
- :func:`session`: a fresh server and fresh workers for one measurement;
- :func:`join_rooms`, :func:`wait_quiet`: seat both players of N rooms on a
  :class:`Relay` (a server, or the processes of a cluster in
  ``bench/scaleout.py``) and wait for it to go quiet.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import loadgen
import psutil

if TYPE_CHECKING:
    from scenarios import Plan

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"

DUORELAY_ENV = {
    "DUORELAY_MAX_RATE": "1000000",
    "DUORELAY_MAX_BURST": "1000000",
    "DUORELAY_MAX_CONNECTIONS": "100000",
    "DUORELAY_MAX_CONNECTIONS_PER_ADDRESS": "100000",  # every load generator is on 127.0.0.1
}
SERVER_NAMES = ("duorelay", "raw-asgi", "websockets")
# On request only (--servers): raw ASGI without pings and read timeout, raw ASGI with
# duorelay's garbage-collector settings, websockets on uvloop, and duorelay with the
# changes proposed in docs/benchmarks.md applied from outside
# (bench/experiments/duorelay_proposed.py).
EXTRA_SERVERS = ("raw-asgi-bare", "raw-asgi-gc", "websockets-uvloop", "duorelay-proposed")


class BenchError(Exception):
    """A run could not be measured (a server or a worker failed)."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def websocket_probe(port: int, path: str, timeout: float) -> bool:
    """Whether a websocket upgrade to ``path`` gets ``101`` within ``timeout`` s."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer and len(answer) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
            return answer.startswith(b"HTTP/1.1 101")
    except OSError:
        return False


class Server:
    """One relay process under test, on a free loopback port."""

    def __init__(
        self,
        name: str,
        logs: Path,
        tag: str,
        env_extra: dict[str, str] | None = None,
        *,
        command: list[str] | None = None,
        stdin: bytes | None = None,
        ready: Callable[[Server], bool] | None = None,
    ) -> None:
        """Start ``name`` and wait (30 s at most) until ``ready(self)`` (default: it
        answers a websocket upgrade on ``/ws``).

        ``command`` replaces the command of ``name``, ``stdin`` is written to its
        standard input (then closed); ``{port}`` in either is this server's port.
        """
        self.name = name
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        bind = f"127.0.0.1:{self.port}"
        env = dict(os.environ, **(env_extra or {}))
        experiments = BENCH / "experiments"
        if command is not None:
            command = [part.replace("{port}", str(self.port)) for part in command]
        elif name == "duorelay":
            command = [sys.executable, "-m", "duorelay", "--bind", bind]
            env.update(DUORELAY_ENV)
        elif name == "duorelay-proposed":
            script = experiments / "duorelay_proposed.py"
            command = [sys.executable, str(script), "--bind", bind]
            env.update(DUORELAY_ENV)
        elif name.startswith("traced-"):
            traced = str(experiments / "traced_server.py")
            command = [sys.executable, traced, name.removeprefix("traced-"), "--bind", bind]
            env.update(DUORELAY_ENV)
        elif name in ("raw-asgi", "raw-asgi-bare", "raw-asgi-gc"):
            command = [
                sys.executable,
                str(BENCH / "baselines" / "raw_asgi_relay.py"),
                "--bind",
                bind,
            ]
            if name == "raw-asgi-bare":
                command.append("--no-keepalive")
            if name == "raw-asgi-gc":
                command.append("--tune-gc")
        elif name in ("websockets", "websockets-uvloop"):
            command = [
                sys.executable,
                str(BENCH / "baselines" / "websockets_relay.py"),
                "--bind",
                bind,
            ]
            if name == "websockets-uvloop":
                command.append("--uvloop")
        else:
            raise ValueError(name)
        self.command = command
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{tag}-{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=None if stdin is None else subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if stdin is not None:
            assert self.popen.stdin is not None
            self.popen.stdin.write(stdin.replace(b"{port}", str(self.port).encode()))
            self.popen.stdin.close()
        self.process = psutil.Process(self.popen.pid)
        if ready is None:

            def ready(server: Server) -> bool:
                return websocket_probe(server.port, "/ws", 1.0)

        deadline = time.monotonic() + 30
        while not ready(self):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BenchError(f"{name} did not start; see {self.log_path}")
            time.sleep(0.1)

    def cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def stop(self) -> None:
        """Kill the server: its shutdown is not measured, and duorelay's graceful one
        waits up to 3 s for Hypercorn's ping tasks."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self._log.close()


# ---------------------------------------------------------------- workers


class Workers:
    """The load generator's processes, driven one command at a time."""

    def __init__(
        self, count: int, target: Callable[[Connection, int], None] = loadgen.worker_main
    ) -> None:
        """``count`` processes running ``target(pipe, index)`` (default: the load
        generator; ``bench/santorini_bots.py`` for the Santorini bots)."""
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        for index in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=target, args=(child, index), name=f"loadgen-{index}")
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)
        self.ps = [psutil.Process(process.pid) for process in self.processes]
        self.errors: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.pipes)

    def send(self, command: str, args: list[dict[str, Any]]) -> None:
        for pipe, arg in zip(self.pipes, args, strict=True):
            pipe.send((command, arg))

    def collect(self, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        results = []
        for index, pipe in enumerate(self.pipes):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise BenchError(f"load generator {index} did not answer within {timeout:.0f} s")
            result = pipe.recv()
            if "fatal" in result:
                raise BenchError(f"load generator {index}: {result['fatal']}")
            self.errors.update(result.pop("errors", {}))
            results.append(result)
        return results

    def call(
        self, command: str, args: list[dict[str, Any]], timeout: float
    ) -> list[dict[str, Any]]:
        self.send(command, args)
        return self.collect(timeout)

    def cpu(self) -> float:
        total = 0.0
        for process in self.ps:
            times = process.cpu_times()
            total += times.user + times.system
        return total

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("exit", {}))
        for pipe in self.pipes:
            with contextlib.suppress(OSError, EOFError):
                if pipe.poll(5):
                    pipe.recv()
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)


@contextlib.contextmanager
def session(server_name: str, plan: Plan, tag: str) -> Iterator[tuple[Server, Workers]]:
    server = Server(server_name, RESULTS / "logs", tag)
    workers: Workers | None = None
    try:
        workers = Workers(plan.workers)
        yield server, workers
    finally:
        if workers is not None:
            workers.close()
        server.stop()


QUIET_WINDOW = 0.3


class Relay(Protocol):
    """What :func:`join_rooms`, :func:`wait_quiet` and ``scenarios.measure_window``
    measure: a :class:`Server`, or the processes of a cluster (bench/scaleout.py):
    its ``name``, the ``url`` seats connect to, and the CPU seconds its processes
    have used."""

    name: str
    url: str

    def cpu(self) -> float: ...


def wait_quiet(server: Relay, limit: float, busy_pct: float = 5.0) -> float:
    """Wait until the server has used under ``busy_pct`` % CPU for 0.3 s (at most
    ``limit`` s: it may still be working through the joins); returns seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        cpu0 = server.cpu()
        time.sleep(QUIET_WINDOW)
        if (server.cpu() - cpu0) / QUIET_WINDOW * 100 < busy_pct:
            break
    return time.monotonic() - started


def join_rooms(
    server: Relay,
    workers: Workers,
    rooms: int,
    plan: Plan,
    prefix: str,
    seat1_url: str | None = None,
) -> dict[str, float]:
    """Connect both seats of ``rooms`` rooms and complete the handshake.

    Seat 0 of room i goes to worker i mod P and seat 1 to worker (i+1) mod P.
    Seats 1 connect to ``seat1_url`` if given (another process of a cluster;
    ``server`` then stands for every process: its ``cpu()`` is theirs).
    All seats 0 connect first, then all seats 1; after each phase the harness
    waits for the server to go quiet (it may still be reading joins), then
    runs the ``ready``/``ok`` handshake. Returns the wall time of each step.
    """
    count = len(workers)
    names = [f"{prefix}-{i}" for i in range(rooms)]
    timing: dict[str, float] = {}
    for seat in (0, 1):
        per_worker: list[list[tuple[str, int]]] = [[] for _ in range(count)]
        for i, name in enumerate(names):
            per_worker[(i + seat) % count].append((name, seat))
        args = [
            {
                "url": seat1_url if seat and seat1_url else server.url,
                "seats": seats,
                "concurrency": plan.connect_concurrency,
                "limit": 10.0,
            }
            for seats in per_worker
        ]
        started = time.monotonic()
        results = workers.call("connect", args, timeout=30 + rooms / 50)
        timing[f"connect_seat{seat}_s"] = time.monotonic() - started
        failed = sum(result["failed"] for result in results)
        if failed:
            raise BenchError(f"{failed} connections to {server.name} failed")
        timing[f"quiet_seat{seat}_s"] = wait_quiet(server, 30 + rooms / 100)
    started = time.monotonic()
    timing["ready_sent"] = 0
    for _ in range(5):
        results = workers.call("handshake", [{"wait": 2.0}] * count, timeout=30)
        timing["ready_sent"] += sum(result["ready_sent"] for result in results)
        missing = sum(result["missing"] for result in results)
        if not missing:
            break
        # Answers may still be on their way through a slow server: let it finish.
        wait_quiet(server, 30 + rooms / 100)
        results = workers.call("handshake", [{"wait": 0.0, "send": False}] * count, timeout=30)
        missing = sum(result["missing"] for result in results)
        if not missing:
            break
    timing["handshake_s"] = time.monotonic() - started
    if missing:
        raise BenchError(f"{missing} seats on {server.name} never saw their peer")
    wait_quiet(server, 30 + rooms / 100)
    return timing
