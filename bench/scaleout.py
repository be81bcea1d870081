"""Scale-out benchmark: what a frame costs when the two seats are on two processes.

How to run (from the repository root; needs ``redis-server`` on PATH)::

    nox -s bench -- --scaleout            # about 5 minutes; bench/results/scaleout.md
    nox -s bench -- --scaleout --quick    # under a minute

or ``python bench/scaleout.py [--quick] [--repeats N]`` in the bench virtualenv.

Three set-ups of ``python -m duorelay`` (rate limit lifted, as in run.py), under
the load generator of run.py (2 picows processes; ``servers.py`` starts both, and the
loads are ``scenarios.py``'s):

- ``in-process``: one process, no Redis (the default backplane);
- ``same process + Redis``: one process with ``DUORELAY_REDIS_URL`` set, both
  seats on it: frames never touch Redis (the cost of having a backplane);
- ``two processes``: two processes on one Redis, seat 0 on the first and seat
  1 on the second: every frame goes reader -> Redis PUBLISH -> the other
  process's pub/sub -> its inbox -> pump -> outbox -> writer.

Scenarios: ``pingpong`` (1 and 50 rooms bouncing a 32-byte frame: round-trip
percentiles; the one-way latency a cross-process hop adds is half the
difference of round trips) and ``stream`` (10 rooms, one-way 1 KiB frames as fast
as TCP back-pressure allows, every frame checked). The figure the targets are
about is *server CPU per 1,000 relayed frames*: the CPU seconds of every
duorelay process (and, separately, of Redis) over the measured window, divided
by the frames relayed. The machine has 2 cores shared with the load generator,
so throughput across set-ups is not compared, CPU per frame is.

Targets (issue "Scale out"): a cross-process frame costs at most 2x the
duorelay CPU of a same-process frame, and adds at most 2 ms at p99.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import scenarios  # noqa: E402
import servers  # noqa: E402

NO_PERSISTENCE = ("--save", "", "--appendonly", "no")

SETUPS = ("in-process", "same process + Redis", "two processes")


class Cluster:
    """The duorelay processes of one set-up, and the Redis they share (if any).

    A :class:`servers.Relay` for :func:`servers.join_rooms`, :func:`servers.wait_quiet` and
    :func:`scenarios.measure_window`: ``url`` is the first process's, ``cpu()`` the
    CPU seconds of every duorelay process.
    """

    def __init__(self, setup: str, redis_url: str | None, tag: str) -> None:
        env = {"DUORELAY_REDIS_URL": redis_url} if redis_url else {}
        count = 2 if setup == "two processes" else 1
        self.name = "duorelay"
        self.servers = [
            servers.Server("duorelay", servers.RESULTS / "logs", f"{tag}-{index}", env)
            for index in range(count)
        ]
        self.url = self.servers[0].url
        self.seat1_url = self.servers[-1].url if count == 2 else None
        if redis_url:
            for server in self.servers:
                wait_for_line(server.log_path, b"backplane connected to ")

    def cpu(self) -> float:
        return sum(server.cpu() for server in self.servers)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def wait_for_line(path: Path, text: bytes, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while text not in path.read_bytes():
        if time.monotonic() > deadline:
            raise servers.BenchError(f"{text.decode()!r} never appeared in {path}")
        time.sleep(0.05)


class Redis:
    """A ``redis-server`` on a free port, without persistence, for the whole run."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("bench/scaleout.py: redis-server not found (apt-get install it)")
        self.port = servers.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.popen = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", *NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
        )
        self.process = psutil.Process(self.popen.pid)
        deadline = time.monotonic() + 10
        while not _accepts(self.port):
            if time.monotonic() > deadline:
                raise servers.BenchError("redis-server did not start")
            time.sleep(0.05)

    def cpu(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        self.popen.kill()
        self.popen.wait(10)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
        return True
    return False


@contextlib.contextmanager
def cluster_session(
    setup: str, redis: Redis, plan: scenarios.Plan, tag: str
) -> Iterator[tuple[Cluster, servers.Workers]]:
    cluster = Cluster(setup, redis.url if setup != "in-process" else None, tag)
    workers: servers.Workers | None = None
    try:
        workers = servers.Workers(plan.workers)
        yield cluster, workers
    finally:
        if workers is not None:
            workers.close()
        cluster.stop()


def measure(
    cluster: Cluster, redis: Redis, workers: servers.Workers, begin: float, end: float
) -> tuple[scenarios.Window, float]:
    """scenarios.measure_window over every duorelay process, plus Redis's CPU seconds."""
    redis0 = redis.cpu()
    window = scenarios.measure_window(cluster, workers, begin, end)
    return window, redis.cpu() - redis0


def figures(window: scenarios.Window, redis_cpu: float, frames: int) -> dict[str, float]:
    per_1000 = 1000 / frames if frames else float("nan")
    return {
        "duorelay_cpu_ms_per_1000": 1000 * window.server_cpu * per_1000,
        "redis_cpu_ms_per_1000": 1000 * redis_cpu * per_1000,
        "duorelay_cpu_pct": 100 * window.server_cpu / window.seconds,
        "other_cpu_pct": 100 * window.other_cpu / window.seconds,
    }


def run_pingpong(setup: str, redis: Redis, plan: scenarios.Plan, rooms: int) -> dict[str, Any]:
    tag = f"scaleout-pingpong{rooms}"
    with cluster_session(setup, redis, plan, tag) as (cluster, workers):
        servers.join_rooms(cluster, workers, rooms, plan, tag, cluster.seat1_url)
        results, (window, redis_cpu) = scenarios.pingpong_load(
            workers, plan, lambda begin, end: measure(cluster, redis, workers, begin, end)
        )
        frames = sum(result["frames"] for result in results)
        return {
            "frames_per_s": frames / plan.pingpong_seconds,
            **scenarios.percentiles([result["rtt_ns"] for result in results]),
            **figures(window, redis_cpu, frames),
            "errors": dict(workers.errors),
        }


def run_stream(setup: str, redis: Redis, plan: scenarios.Plan, size: int) -> dict[str, Any]:
    tag = f"scaleout-stream{size}"
    with cluster_session(setup, redis, plan, tag) as (cluster, workers):
        servers.join_rooms(cluster, workers, plan.stream_rooms, plan, tag, cluster.seat1_url)
        results, (window, redis_cpu) = scenarios.stream_load(
            workers, plan, size, lambda begin, end: measure(cluster, redis, workers, begin, end)
        )
        frames = sum(result["frames"] for result in results)
        sent = sum(result["sent"] for result in results)
        received = sum(result["received"] for result in results)
        return {
            "frames_per_s": frames / plan.stream_seconds,
            "lost": sent - received,
            **figures(window, redis_cpu, frames),
            "errors": dict(workers.errors),
        }


@dataclass
class Row:
    scenario: str
    label: str
    results: dict[str, dict[str, Any]]


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the median over repeats (errors and losses: summed)."""
    merged: dict[str, Any] = {}
    for key in runs[0]:
        values = [result[key] for result in runs]
        if key == "errors":
            merged[key] = {k: sum(v.get(k, 0) for v in values) for v in values for k in v}
        elif key == "lost":
            merged[key] = sum(values)
        else:
            merged[key] = statistics.median(values)
    return merged


def repeated(label: str, repeats: int, fn: Any) -> dict[str, dict[str, Any]]:
    """Each set-up ``repeats`` times, interleaved; the median of each figure."""
    runs: dict[str, list[dict[str, Any]]] = {setup: [] for setup in SETUPS}
    for attempt in range(repeats):
        for setup in SETUPS:
            servers.log(f"{label}: {setup} ({attempt + 1}/{repeats})")
            runs[setup].append(fn(setup))
    return {setup: median_of(results) for setup, results in runs.items()}


def markdown(rows: list[Row], plan: scenarios.Plan, command: str) -> str:
    lines = [
        "# Scale-out benchmark",
        "",
        f"Command: `{command}`; {plan.repeats} run(s) per set-up, median; "
        f"pingpong {plan.pingpong_seconds:g} s, stream {plan.stream_seconds:g} s measured.",
        "",
        "| scenario | set-up | frames/s | duorelay CPU ms / 1000 frames | Redis CPU ms / 1000"
        " | p50 RTT ms | p99 RTT ms | lost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for setup, result in row.results.items():
            lines.append(
                f"| {row.scenario} {row.label} | {setup} | {result['frames_per_s']:,.0f} "
                f"| {result['duorelay_cpu_ms_per_1000']:.1f} "
                f"| {result['redis_cpu_ms_per_1000']:.1f} "
                f"| {result.get('p50_ms', float('nan')):.2f} "
                f"| {result.get('p99_ms', float('nan')):.2f} "
                f"| {result.get('lost', '-')} |"
            )
    lines += ["", "Against the targets:", ""]
    for row in rows:
        same = row.results["same process + Redis"]
        cross = row.results["two processes"]
        ratio = cross["duorelay_cpu_ms_per_1000"] / same["duorelay_cpu_ms_per_1000"]
        line = (
            f"- {row.scenario} {row.label}: CPU per frame {ratio:.2f}x same-process (target <= 2x)"
        )
        if "p99_ms" in cross:
            added = (cross["p99_ms"] - same["p99_ms"]) / 2
            line += f"; added one-way p99 {added:.2f} ms (target <= 2 ms)"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="python bench/scaleout.py", description=__doc__.split("\n\n", 1)[0]
    )
    cli.add_argument("--quick", action="store_true", help="short version (under a minute)")
    cli.add_argument("--repeats", type=int, help="runs per set-up (full 3, quick 1)")
    args = cli.parse_args(argv)
    plan = scenarios.Plan.make(args.quick, 2)
    repeats = args.repeats or plan.repeats
    loadgen.raise_nofile_limit()
    servers.RESULTS.mkdir(parents=True, exist_ok=True)
    command = "python bench/scaleout.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    redis = Redis()
    rows: list[Row] = []
    try:
        for rooms in (1, 50):
            label = f"{rooms} room" + ("s" if rooms != 1 else "")
            results = repeated(
                f"pingpong {label}",
                repeats,
                lambda setup, r=rooms: run_pingpong(setup, redis, plan, r),
            )
            rows.append(Row("pingpong", label, results))
            print(json.dumps({"scenario": "pingpong", "rooms": rooms, "results": results}))
        results = repeated(
            "stream 1 KiB", repeats, lambda setup: run_stream(setup, redis, plan, 1024)
        )
        rows.append(Row("stream", "1 KiB", results))
        print(json.dumps({"scenario": "stream", "size": 1024, "results": results}))
    finally:
        redis.stop()
    name = "scaleout-quick" if args.quick else "scaleout"
    text = markdown(rows, dataclasses.replace(plan, repeats=repeats), command)
    (servers.RESULTS / f"{name}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
