"""The load scenarios and how they are measured.

- :class:`Plan`: what one run measures, and for how long (full or quick);
- ``pingpong``, ``stream``, ``idle`` + ``fleet``: one server, one scenario, on
  fresh processes (:func:`run_pingpong`, :func:`run_stream`,
  :func:`run_idle_fleet`); :func:`pingpong_load` and :func:`stream_load` are
  the loads alone, shared with ``bench/scaleout.py``;
- measurement windows (:func:`measure_window`: server, load-generator and
  other CPU) and round-trip / latency percentiles (:func:`percentiles`);
- the profile runs: py-spy under pingpong (:func:`run_profile`) and
  tracemalloc of idle connections (``bench/memory_profile.py``);
- :func:`run_scenarios`, :func:`run_profiles`, :func:`run_memory`: every
  selected scenario on every selected server, as ``bench/run.py`` runs them.
"""

from __future__ import annotations

import json
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import memory_profile
import psutil
import pyspy_profile
import report
from report import Row
from servers import (
    QUIET_WINDOW,
    RESULTS,
    ROOT,
    SERVER_NAMES,
    BenchError,
    Relay,
    Workers,
    join_rooms,
    log,
    session,
)

SCENARIOS = ("pingpong", "stream", "idle", "fleet")


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


def run_scenarios(plan: Plan, servers: list[str], scenarios: list[str]) -> list[Row]:
    """Every selected scenario on every selected server; prints each row's JSON
    line as soon as it is measured."""
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
            report.emit(row)
            rows.append(row)
    if "stream" in scenarios:
        for size in plan.stream_sizes:
            label = report.size_label(size)
            row = Row("stream", label, {"rooms": plan.stream_rooms, "size": size})
            row.results = repeated(
                f"stream {label}", servers, plan.repeats, lambda n, s=size: run_stream(n, plan, s)
            )
            report.emit(row)
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
                report.emit(row)
                rows.append(row)
    return rows


def run_profiles(plan: Plan, servers: list[str]) -> list[dict[str, Any]]:
    """py-spy summaries of duorelay and raw-asgi (those selected) under pingpong."""
    profiles: list[dict[str, Any]] = []
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
    return profiles


def run_memory(plan: Plan, servers: list[str]) -> list[dict[str, Any]]:
    """tracemalloc of idle connections on each selected main server."""
    memory: list[dict[str, Any]] = []
    for name in [n for n in SERVER_NAMES if n in servers]:
        log(f"memory of {plan.memory_rooms * 2} idle connections on {name} (tracemalloc)")
        try:
            memory.append(memory_profile.profile(name, plan.memory_rooms, plan, RESULTS))
        except (BenchError, TimeoutError) as error:
            log(f"memory profile of {name} FAILED: {error}")
    if memory:
        print(json.dumps({"scenario": "memory", "results": memory}), flush=True)
    return memory
