"""duorelay benchmarks: the relay against two baselines, in one run.

How to run (from the repository root)::

    nox -s bench                 # the full suite (about 14 minutes), updates docs/benchmarks.md
    nox -s bench -- --quick      # a short version (under 2 minutes), report in bench/results/

or, in any virtualenv with ``pip install -e . picows uvloop websockets psutil py-spy``::

    python bench/run.py [--quick] [--servers duorelay,raw-asgi] [--scenarios pingpong,idle]

Servers, each started by this harness as its own process on a free loopback
port, one fresh process per scenario:

- ``duorelay``: ``python -m duorelay`` with its default Hypercorn settings, the
  rate limit and connection cap lifted (``DUORELAY_MAX_RATE``,
  ``DUORELAY_MAX_BURST``, ``DUORELAY_MAX_CONNECTIONS``), logs to a file;
- ``raw-asgi``: ``bench/baselines/raw_asgi_relay.py``, the same relay rules as
  a bare ASGI app on Hypercorn's trio worker: the ceiling of the stack;
- ``websockets``: ``bench/baselines/websockets_relay.py``, the same rules on
  python-websockets (asyncio): what a Python developer would write instead.

The load generator (``bench/loadgen.py``) is ``--workers`` processes (default 2)
of picows connections on uvloop, never in a server's process; the two seats of
a room sit in different workers. Scenarios:

- ``pingpong``: N rooms (1, 50, 500); seat 0 sends a 32-byte frame, seat 1
  bounces it, seat 0 sends the next on its return: relayed frames/s (both
  directions) and p50/p99/p999 round-trip time;
- ``stream``: 10 rooms, each a one-way stream of 32 B, 1 KiB or 64 KiB frames
  as fast as TCP back-pressure allows; frames/s and MB/s, every frame checked
  for order, size and content, and the total checked at the end;
- ``idle``: 10,000 joined connections (5,000 rooms) that send nothing: server
  RSS per connection and connection set-up rate (TCP + websocket handshake +
  join; at most 32 handshakes in flight per worker);
- ``fleet``: the same 10,000 connections, each sending one 32-byte frame per
  second at its own phase: p50/p99/p999 one-way latency, server CPU %, and
  every frame accounted for.

Each scenario prints one JSON line (all servers' figures and duorelay's ratios)
and adds a row to the Markdown report, written to ``bench/results/`` and, for a
full run, into ``docs/benchmarks.md`` between its ``bench:begin``/``bench:end``
markers. The full run also profiles duorelay under pingpong with py-spy
(``--no-profile`` skips it). Server CPU and RSS are read with psutil; the
machine has few cores shared by the server and the load generator, so the
report gives server CPU per frame next to every throughput figure.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import json
import multiprocessing
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import memory_profile  # noqa: E402
import pyspy_profile  # noqa: E402
import report  # noqa: E402

RESULTS = BENCH / "results"
DOCS = ROOT / "docs" / "benchmarks.md"

DUORELAY_ENV = {
    "DUORELAY_MAX_RATE": "1000000",
    "DUORELAY_MAX_BURST": "1000000",
    "DUORELAY_MAX_CONNECTIONS": "100000",
}
SERVER_NAMES = ("duorelay", "raw-asgi", "websockets")
# On request only (--servers): raw ASGI without pings and read timeout, raw ASGI with
# duorelay's garbage-collector settings, websockets on uvloop, and duorelay with the
# changes proposed in docs/benchmarks.md applied from outside
# (bench/experiments/duorelay_proposed.py).
EXTRA_SERVERS = ("raw-asgi-bare", "raw-asgi-gc", "websockets-uvloop", "duorelay-proposed")
SCENARIOS = ("pingpong", "stream", "idle", "fleet")


class BenchError(Exception):
    """A run could not be measured (a server or a worker failed)."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    """What one run measures, and for how long."""

    quick: bool
    workers: int
    pingpong_rooms: tuple[int, ...] = (1, 50, 500)
    pingpong_warm: float = 1.0
    pingpong_seconds: float = 8.0
    stream_sizes: tuple[int, ...] = (32, 1024, 65536)
    stream_rooms: int = 10
    stream_warm: float = 1.0
    stream_seconds: float = 6.0
    idle_rooms: int = 5000
    idle_settle: float = 2.0
    idle_seconds: float = 3.0
    fleet_rate: float = 1.0
    fleet_warm: float = 3.0
    fleet_seconds: float = 20.0
    repeats: int = 3  # pingpong and stream: runs per server, interleaved; the median is kept
    connect_concurrency: int = 32
    profile_seconds: float = 20.0
    profile_rooms: int = 50
    memory_rooms: int = 1000

    @classmethod
    def make(cls, quick: bool, workers: int) -> Plan:
        if not quick:
            return cls(quick=False, workers=workers)
        return cls(
            quick=True,
            workers=workers,
            repeats=1,
            pingpong_warm=0.5,
            pingpong_seconds=1.2,
            stream_warm=0.5,
            stream_seconds=1.2,
            idle_rooms=500,
            idle_settle=0.5,
            idle_seconds=1.0,
            fleet_warm=1.0,
            fleet_seconds=3.0,
        )


# ---------------------------------------------------------------- servers


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
        self, name: str, logs: Path, tag: str, env_extra: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/ws"
        bind = f"127.0.0.1:{self.port}"
        env = dict(os.environ, **(env_extra or {}))
        experiments = BENCH / "experiments"
        if name == "duorelay":
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
            command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.process = psutil.Process(self.popen.pid)
        deadline = time.monotonic() + 30
        while not websocket_probe(self.port, "/ws", 1.0):
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

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        for index in range(count):
            parent, child = context.Pipe()
            process = context.Process(
                target=loadgen.worker_main, args=(child, index), name=f"loadgen-{index}"
            )
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
    """What the helpers below measure: a :class:`Server`, or the processes of a
    cluster (bench/scaleout.py): its ``name``, the ``url`` seats connect to, and
    the CPU seconds its processes have used."""

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


@dataclass
class Window:
    """Server and load-generator CPU seconds over a measurement window."""

    server_cpu: float = 0.0
    client_cpu: float = 0.0
    seconds: float = 0.0
    other_cpu: float = 0.0  # every other process on the machine: noise if high


def busy_cpu() -> float:
    """CPU seconds the machine's processes have used, all cores (interrupts excluded:
    the loopback traffic's own softirq time lands there), plus hypervisor steal."""
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.steal)


def measure_window(server: Relay, workers: Workers, begin: float, end: float) -> Window:
    """Sleep until ``begin``, then sample CPU at ``begin`` and ``end``."""
    delay = begin - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    server0, client0, busy0, t0 = server.cpu(), workers.cpu(), busy_cpu(), time.monotonic()
    delay = end - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    server1, client1, busy1, t1 = server.cpu(), workers.cpu(), busy_cpu(), time.monotonic()
    server_cpu, client_cpu = server1 - server0, client1 - client0
    other = max(0.0, (busy1 - busy0) - server_cpu - client_cpu)
    return Window(server_cpu, client_cpu, t1 - t0, other)


def percentiles(raw: list[bytes]) -> dict[str, float]:
    """p50/p99/p999 (nearest rank) in ms of arrays of nanoseconds."""
    values = array("q")
    for chunk in raw:
        values.frombytes(chunk)
    ordered = sorted(values)
    if not ordered:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "p999_ms": float("nan")}

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    return {
        "p50_ms": rank(0.50),
        "p99_ms": rank(0.99),
        "p999_ms": rank(0.999),
        "max_ms": ordered[-1] / 1e6,
        "samples": len(ordered),
    }


# ---------------------------------------------------------------- scenarios


Measure = Callable[[float, float], Any]
"""``measure(begin, end)``: sample CPU over the measured window (sleeps until ``end``)."""


def pingpong_load(
    workers: Workers, plan: Plan, measure: Measure
) -> tuple[list[dict[str, Any]], Any]:
    """Run the pingpong load on joined rooms; the workers' results and ``measure``'s."""
    start = time.monotonic() + 0.3
    end = start + plan.pingpong_warm + plan.pingpong_seconds
    args = {"start": start, "warm": plan.pingpong_warm, "duration": plan.pingpong_seconds}
    workers.send("pingpong", [{**args, "size": 32}] * len(workers))
    measured = measure(start + plan.pingpong_warm, end)
    return workers.collect(timeout=plan.pingpong_seconds + 30), measured


def stream_load(
    workers: Workers, plan: Plan, size: int, measure: Measure
) -> tuple[list[dict[str, Any]], Any]:
    """Run the stream load of ``size``-byte frames on joined rooms; the workers'
    results and ``measure``'s."""
    start = time.monotonic() + 0.3
    end = start + plan.stream_warm + plan.stream_seconds
    args = {
        "start": start,
        "warm": plan.stream_warm,
        "duration": plan.stream_seconds,
        "size": size,
        "window": stream_window(size),
        "drain": 20.0,
    }
    workers.send("stream", [args] * len(workers))
    measured = measure(start + plan.stream_warm, end)
    return workers.collect(timeout=plan.stream_seconds + 60), measured


def run_pingpong(server_name: str, plan: Plan, rooms: int) -> dict[str, Any]:
    tag = f"pingpong{rooms}"
    with session(server_name, plan, tag) as (server, workers):
        join_rooms(server, workers, rooms, plan, tag)
        results, window = pingpong_load(
            workers, plan, lambda begin, end: measure_window(server, workers, begin, end)
        )
        frames = sum(result["frames"] for result in results)
        return {
            "frames_per_s": frames / plan.pingpong_seconds,
            **percentiles([result["rtt_ns"] for result in results]),
            **cpu_figures(window, frames),
            "errors": dict(workers.errors),
        }


def run_stream(server_name: str, plan: Plan, size: int) -> dict[str, Any]:
    tag = f"stream{size}"
    with session(server_name, plan, tag) as (server, workers):
        join_rooms(server, workers, plan.stream_rooms, plan, tag)
        results, window = stream_load(
            workers, plan, size, lambda begin, end: measure_window(server, workers, begin, end)
        )
        frames = sum(result["frames"] for result in results)
        sent = sum(result["sent"] for result in results)
        received = sum(result["received"] for result in results)
        return {
            "frames_per_s": frames / plan.stream_seconds,
            "mb_per_s": frames * size / plan.stream_seconds / 1e6,
            "frames_checked": received,
            "lost": sent - received,
            **cpu_figures(window, frames),
            "errors": dict(workers.errors),
        }


def stream_window(size: int) -> int:
    """Frames a stream sender may have unacknowledged: 1 MiB, 16 to 1024 frames."""
    return max(16, min(1024, 2**20 // size))


def run_idle_fleet(server_name: str, plan: Plan) -> dict[str, dict[str, Any]]:
    """Both the idle and the fleet scenario, on the same connections."""
    rooms = plan.idle_rooms
    connections = 2 * rooms
    with session(server_name, plan, "idle-fleet") as (server, workers):
        rss0 = server.rss()
        timing = join_rooms(server, workers, rooms, plan, "fleet")
        connect_s = timing["connect_seat0_s"] + timing["connect_seat1_s"]
        settle = sum(max(0.0, timing[f"quiet_seat{seat}_s"] - QUIET_WINDOW) for seat in (0, 1))
        time.sleep(plan.idle_settle)
        begin = time.monotonic()
        window = measure_window(server, workers, begin, begin + plan.idle_seconds)
        rss1 = server.rss()
        idle = {
            "connections": connections,
            "rss_per_conn_kb": (rss1 - rss0) / connections / 1024,
            "rss_before_mb": rss0 / 2**20,
            "rss_after_mb": rss1 / 2**20,
            "setup_per_s": connections / connect_s,
            "handshake_s": timing["handshake_s"],
            "settle_s": settle,
            "ready_sent": timing["ready_sent"],
            "idle_cpu_pct": 100 * window.server_cpu / window.seconds,
            "other_cpu_pct": 100 * window.other_cpu / window.seconds,
            "errors": dict(workers.errors),
        }
        workers.errors.clear()
        start = time.monotonic() + 0.5
        args = {
            "start": start,
            "warm": plan.fleet_warm,
            "duration": plan.fleet_seconds,
            "rate": plan.fleet_rate,
            "size": 32,
            "drain": 20.0,
        }
        workers.send("fleet", [args] * len(workers))
        window = measure_window(
            server, workers, start + plan.fleet_warm, start + plan.fleet_warm + plan.fleet_seconds
        )
        results = workers.collect(timeout=plan.fleet_warm + plan.fleet_seconds + 60)
        sent = sum(result["sent"] for result in results)
        received = sum(result["received"] for result in results)
        fleet = {
            "connections": connections,
            **percentiles([result["latency_ns"] for result in results]),
            "server_cpu_pct": 100 * window.server_cpu / window.seconds,
            "client_cpu_pct": 100 * window.client_cpu / window.seconds,
            "other_cpu_pct": 100 * window.other_cpu / window.seconds,
            "sent": sent,
            "lost": sent - received,
            "offered_per_s": connections * plan.fleet_rate,
            "delivered_per_s": sum(result["delivered"] for result in results) / plan.fleet_seconds,
            "send_late_p99_ms": max(result["send_late_p99_ms"] for result in results),
            "rss_mb": server.rss() / 2**20,
            "errors": dict(workers.errors),
        }
        return {"idle": idle, "fleet": fleet}


def cpu_figures(window: Window, frames: int) -> dict[str, float]:
    return {
        "server_cpu_pct": 100 * window.server_cpu / window.seconds,
        "server_cpu_us_per_frame": 1e6 * window.server_cpu / frames if frames else float("nan"),
        "client_cpu_pct": 100 * window.client_cpu / window.seconds,
        "other_cpu_pct": 100 * window.other_cpu / window.seconds,
    }


# ---------------------------------------------------------------- profile


def run_profile(server_name: str, plan: Plan) -> dict[str, Any] | None:
    """py-spy on a relay under pingpong: where the server's time goes."""
    rooms = plan.profile_rooms
    tag = f"profile-pingpong{rooms}"
    output = RESULTS / f"{tag}-{server_name}.pyspy.txt"
    with session(server_name, plan, tag) as (server, workers):
        join_rooms(server, workers, rooms, plan, tag)
        start = time.monotonic() + 0.5
        seconds = plan.profile_seconds
        args = {"start": start, "warm": 0.0, "duration": seconds + 1, "size": 32}
        workers.send("pingpong", [args] * len(workers))
        cpu0 = server.cpu()
        try:
            spy = pyspy_profile.record(server.popen.pid, output, start, seconds)
        finally:
            results = workers.collect(timeout=seconds + 30)
        cpu = server.cpu() - cpu0
        frames = sum(result["frames"] for result in results)
        if spy is None:
            return None
        summary = pyspy_profile.summarize(output, ROOT)
        summary["frames_per_s"] = frames / (seconds + 1)
        summary["cpu_us_per_frame"] = 1e6 * cpu / frames if frames else float("nan")
        summary["rooms"] = rooms
        summary["server"] = server_name
        summary["raw_file"] = str(output.relative_to(ROOT))
        return summary


# ---------------------------------------------------------------- driver


@dataclass
class Row:
    """One scenario variant: every server's figures."""

    scenario: str
    variant: str
    params: dict[str, Any]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


def guarded(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except BenchError as error:
        log(f"{name}: FAILED: {error}")
        return {"failed": str(error)}


def repeated(
    label: str, servers: list[str], repeats: int, fn: Callable[[str], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Run ``fn`` for every server ``repeats`` times, interleaved (so a slow minute
    of the machine hits every server alike); keep each server's median run by
    frames/s, with every run's frames/s in ``runs``."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    for attempt in range(repeats):
        for name in servers:
            suffix = f" (run {attempt + 1}/{repeats})" if repeats > 1 else ""
            log(f"{label} on {name}{suffix}")
            runs[name].append(guarded(name, lambda n=name: fn(n)))
    results = {}
    for name, attempts in runs.items():
        good = [run for run in attempts if "failed" not in run]
        if not good:
            results[name] = attempts[0]
            continue
        good.sort(key=lambda run: run["frames_per_s"])
        median = dict(good[(len(good) - 1) // 2])
        median["runs"] = [round(run["frames_per_s"]) for run in good]
        results[name] = median
    return results


def emit(row: Row) -> None:
    line = {
        "scenario": row.scenario,
        "variant": row.variant,
        "params": row.params,
        "results": row.results,
        "ratios": report.ratios(row),
    }
    print(json.dumps(line, default=_json_default), flush=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value))


def machine() -> dict[str, Any]:
    cpu_model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in (
        "duorelay",
        "trio",
        "hypercorn",
        "quart",
        "quart-trio",
        "wsproto",
        "h11",
        "websockets",
        "picows",
        "uvloop",
        "psutil",
        "py-spy",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "-"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit + (" (src/ modified)" if dirty else ""),
    }


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="python bench/run.py",
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_argument("--quick", action="store_true", help="short version (under 2 minutes)")
    cli.add_argument("--servers", default=",".join(SERVER_NAMES), help="comma-separated subset")
    cli.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset")
    cli.add_argument("--workers", type=int, default=2, help="load-generator processes (2)")
    cli.add_argument(
        "--repeats", type=int, help="pingpong and stream runs per server (full 3, quick 1)"
    )
    cli.add_argument(
        "--name", help="report name in bench/results/ (default: full or quick)", default=None
    )
    cli.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile duorelay with py-spy (default: on for a full run)",
    )
    cli.add_argument(
        "--docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the report into docs/benchmarks.md (default: on for a full run)",
    )
    args = cli.parse_args(argv)
    servers = [name for name in args.servers.split(",") if name]
    scenarios = [name for name in args.scenarios.split(",") if name]
    for name in servers:
        if name not in SERVER_NAMES + EXTRA_SERVERS:
            cli.error(f"unknown server {name!r}; choose from {', '.join(SERVER_NAMES)}")
    for name in scenarios:
        if name not in SCENARIOS:
            cli.error(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    plan = Plan.make(args.quick, max(1, args.workers))
    if args.repeats:
        plan = dataclasses.replace(plan, repeats=max(1, args.repeats))
    profile = args.profile if args.profile is not None else not plan.quick
    docs = args.docs if args.docs is not None else not plan.quick

    loadgen.raise_nofile_limit()  # inherited by the servers
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if os.environ.get("NOX_CURRENT_SESSION"):
        command = "nox -s bench" + (" -- " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "")
    else:
        command = shlex.join(["python", "bench/run.py", *sys.argv[1:]])
    rows: list[Row] = []

    if "pingpong" in scenarios:
        for rooms in plan.pingpong_rooms:
            label = f"{rooms} room" + ("s" if rooms != 1 else "")
            row = Row("pingpong", label, {"rooms": rooms, "size": 32})
            row.results = repeated(
                f"pingpong {label}",
                servers,
                plan.repeats,
                lambda n, r=rooms: run_pingpong(n, plan, r),
            )
            emit(row)
            rows.append(row)
    if "stream" in scenarios:
        for size in plan.stream_sizes:
            label = report.size_label(size)
            row = Row("stream", label, {"rooms": plan.stream_rooms, "size": size})
            row.results = repeated(
                f"stream {label}", servers, plan.repeats, lambda n, s=size: run_stream(n, plan, s)
            )
            emit(row)
            rows.append(row)
    if "idle" in scenarios or "fleet" in scenarios:
        connections = 2 * plan.idle_rooms
        idle = Row("idle", f"{connections} conns", {"connections": connections})
        fleet = Row(
            "fleet",
            f"{plan.idle_rooms} rooms",
            {"connections": connections, "rate_per_conn": plan.fleet_rate, "size": 32},
        )
        for name in servers:
            log(f"idle + fleet, {connections} connections, on {name}")
            try:
                both = run_idle_fleet(name, plan)
            except BenchError as error:
                log(f"{name}: FAILED: {error}")
                both = {"idle": {"failed": str(error)}, "fleet": {"failed": str(error)}}
            idle.results[name] = both["idle"]
            fleet.results[name] = both["fleet"]
        for row in (idle, fleet):
            if row.scenario in scenarios:
                emit(row)
                rows.append(row)

    profiles: list[dict[str, Any]] = []
    if profile:
        for name in [n for n in ("duorelay", "raw-asgi") if n in servers]:
            log(f"profiling {name} under pingpong ({plan.profile_rooms} rooms) with py-spy")
            try:
                summary = run_profile(name, plan)
            except BenchError as error:
                log(f"profile of {name} FAILED: {error}")
                continue
            if summary is None:
                log("profile: py-spy unavailable or refused; skipped")
                break
            print(json.dumps({"scenario": "profile", **summary}), flush=True)
            profiles.append(summary)

    memory: list[dict[str, Any]] = []
    if profile:
        for name in [n for n in SERVER_NAMES if n in servers]:
            log(f"memory of {plan.memory_rooms * 2} idle connections on {name} (tracemalloc)")
            try:
                memory.append(memory_profile.profile(name, plan.memory_rooms, plan, RESULTS))
            except (BenchError, TimeoutError) as error:
                log(f"memory profile of {name} FAILED: {error}")
        if memory:
            print(json.dumps({"scenario": "memory", "results": memory}), flush=True)

    wall = time.monotonic() - started
    text = report.render(
        rows,
        plan=plan,
        machine=machine(),
        command=command,
        wall_seconds=wall,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        profiles=profiles,
        memory=memory,
    )
    kind = args.name or ("quick" if plan.quick else "full")
    out = RESULTS / f"{kind}.md"
    out.write_text(text)
    (RESULTS / f"{kind}.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "scenario": r.scenario,
                    "variant": r.variant,
                    "params": r.params,
                    "results": r.results,
                    "ratios": report.ratios(r),
                },
                default=_json_default,
            )
            + "\n"
            for r in rows
        )
    )
    log(f"report: {out.relative_to(ROOT)}")
    if docs:
        report.update_docs(DOCS, text)
        log(f"report written into {DOCS.relative_to(ROOT)}")
    log(f"wall time {wall:.0f} s")
    failed = [r for r in rows for res in r.results.values() if "failed" in res]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
