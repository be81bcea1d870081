"""Santorini referee benchmark: what a move costs the server, and what a bot costs it.

How to run (from the repository root)::

    nox -s bench -- --santorini            # about 4 minutes; bench/results/santorini.md
    nox -s bench -- --santorini --quick    # under a minute

or ``python bench/santorini.py [--quick] [--repeats N] [--no-profile]`` in the bench
virtualenv (``pip install -e . psutil py-spy``).

The server is ``python -m duorelay santorini`` in repeat mode (so that it outlives
a tournament and psutil can read its CPU and RSS), a fresh process per run, with
its event log in a fresh SQLite file under ``bench/results/`` (or ``--no-store``);
everything else default (time per call 1.2 s, the rate limit of 200 values/s per
connection). The bots are ``bench/santorini_bots.py``: instant bots (a legal move
at once, about 10 µs of bot CPU per turn), all in one process of their own,
started by ``servers.Workers``.

- ``round robin``: 10 bots register (``DUORELAY_SANTORINI_MAX_PLAYERS=10`` ends the
  registration at once) and play the round robin (45 best-of-3 series); then 10
  more, for ``tournaments`` tournaments per run (full 3, quick 1). Wall time of a
  tournament: from the first connection to the last bot's Results. Moves:
  placements + actions answered by the bots (checked against the rows of
  ``match_events`` with the store). Server CPU per move: the server process's
  CPU time (every thread: the store's worker threads too) from before the first
  registration until it is quiet after the last tournament, over the moves; so it
  includes registrations, the tournament and game rows, and closing the
  connections. Run with the store and with ``--no-store``, ``repeats`` times
  each, interleaved, median of each figure.
- ``100 bots``: 100 bots register (max players 101, so the lobby stays open) and
  wait in the lobby: RSS then; after ``waiting for`` (5 s) without a new player
  the server starts their round robin (4,950 series), played for ``crowd_seconds``
  (full 15, quick 4): moves/s, CPU per move and RSS with 100 connections in a
  tournament. RSS per bot = (RSS then - RSS before any bot) / 100. With the
  store and with ``--no-store`` (there the referee is fast enough that a player
  replies more than 200 times a second). Nothing may go wrong: no bot sees its
  connection end or an error, no server log line at WARNING or above, no
  ``misbehaved``; else the exit status is 1.
- ``profile`` (full run; ``--profile`` to force): py-spy (``pyspy_profile.py``)
  on the server with the store and with ``--no-store``, during back-to-back round
  robins of 10 bots.
- ``referee alone``: ``bench/santorini_referee.py`` (a fresh process per run):
  the real tournament, series, rules and event log (SQLite store, or none)
  against in-process instant players that answer through the same player
  interface without sockets; the referee's CPU per move with the players'
  own share taken out. What "the referee adds", apart from the TCP transport;
  reported beside the whole server's figure, not instead of it.
- ``--experiments``: the round robin also on
  ``DUORELAY_SQLITE_SYNCHRONOUS=normal`` (SQLite ``synchronous=NORMAL``)
  and ``bench/experiments/santorini_no_game_wait.py`` (no wait for the commit
  at a game's end).

Target (issue "Santorini tournaments over TCP"): the referee adds under 200 µs of
server CPU per move.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import pyspy_profile  # noqa: E402
import report  # noqa: E402
import santorini_bots  # noqa: E402
import scenarios  # noqa: E402
from servers import RESULTS, ROOT, BenchError, Server, Workers, log, wait_quiet  # noqa: E402

TARGET_US = 200.0
ROUND_ROBIN_BOTS = 10
CROWD_BOTS = 100
LOG_PROBLEMS = (b"[WARNING]", b"[ERROR]", b"[CRITICAL]", b"Traceback", b"misbehaved")


@dataclass(frozen=True)
class Plan:
    quick: bool
    repeats: int = 3
    tournaments: int = 3  # round robins of 10 bots per run
    crowd_wait: float = 5.0  # the server's "waiting for" in the 100-bot run
    crowd_seconds: float = 15.0
    profile_seconds: float = 15.0
    tournament_timeout: float = 300.0

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(quick=True, repeats=1, tournaments=1, crowd_seconds=4.0)
        return cls(quick=False)


def bot_names(count: int, prefix: str = "bot") -> list[str]:
    """``count`` distinct names of ``^[a-z]+$``: ``bota``, ``botb``, ... ``botba``, ..."""
    names = []
    for index in range(count):
        letters = ""
        while True:
            letters = chr(ord("a") + index % 26) + letters
            index //= 26
            if not index:
                break
        names.append(prefix + letters)
    return names


MODES = {
    "store": "SQLite store",
    "no-store": "--no-store",
    "sync-normal": "SQLite, DUORELAY_SQLITE_SYNCHRONOUS=normal",
    "no-game-wait": "SQLite, no wait at a game's end (experiment)",
}
"""How the server keeps its event log: the default SQLite store, none, or
(``--experiments``) the store with ``DUORELAY_SQLITE_SYNCHRONOUS=normal`` or
without the wait at a game's end."""


def start_server(tag: str, *, mode: str, max_players: int, waiting_for: float) -> Server:
    """``python -m duorelay santorini`` in repeat mode on a free port; ready once it
    logs that it listens (after the store's migrations)."""
    env = {"DUORELAY_SANTORINI_MAX_PLAYERS": str(max_players)}
    command = [sys.executable, "-m", "duorelay", "santorini"]
    if mode == "sync-normal":
        env["DUORELAY_SQLITE_SYNCHRONOUS"] = "normal"
    if mode == "no-game-wait":
        command = [sys.executable, str(BENCH / "experiments" / "santorini_no_game_wait.py")]
    if mode == "no-store":
        command.append("--no-store")
    else:
        database = RESULTS / f"{tag}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        env["DUORELAY_DATABASE_URL"] = f"sqlite:///{database}"
    config = {"min players": 2, "port": 0, "waiting for": waiting_for, "repeat": 1}
    stdin = json.dumps(config).replace('"port": 0', '"port": {port}').encode()

    def ready(server: Server) -> bool:
        return b"santorini: listening on" in server.log_path.read_bytes()

    return Server(
        "duorelay-santorini", RESULTS / "logs", tag, env, command=command, stdin=stdin, ready=ready
    )


def started_bots() -> Workers:
    """One bot process, answering (its imports done, so its CPU counts bots only)."""
    bots = Workers(1, target=santorini_bots.worker_main)
    bots.call("close", [{}], timeout=60)
    return bots


def log_problems(server: Server) -> list[str]:
    """The server's log lines at WARNING or above, tracebacks, misbehaving players."""
    return [
        line.decode(errors="replace")[:300]
        for line in server.log_path.read_bytes().splitlines()
        if any(marker in line for marker in LOG_PROBLEMS)
    ]


def stored_moves(server: Server) -> int:
    """Placement and action rows in the server's event log."""
    with sqlite3.connect(RESULTS / f"{server_tag(server)}.db") as db:
        (count,) = db.execute(
            "SELECT count(*) FROM match_events WHERE kind IN ('placement', 'action')"
        ).fetchone()
    return int(count)


def server_tag(server: Server) -> str:
    return server.log_path.stem.removesuffix("-duorelay-santorini")


# ---------------------------------------------------------------- round robin


def run_round_robin(plan: Plan, mode: str, attempt: int) -> dict[str, Any]:
    tag = f"santorini-rr-{mode}-{attempt}"
    load = load_average()
    server = start_server(tag, mode=mode, max_players=ROUND_ROBIN_BOTS, waiting_for=60)
    bots: Workers | None = None
    try:
        bots = started_bots()
        wait_quiet(server, 10)
        names = bot_names(ROUND_ROBIN_BOTS)
        series = ROUND_ROBIN_BOTS * (ROUND_ROBIN_BOTS - 1) // 2
        cpu0, bots_cpu0, busy0 = server.cpu(), bots.cpu(), scenarios.busy_cpu()
        started = time.monotonic()
        moves = 0
        walls = []
        for _ in range(plan.tournaments):
            begin = time.monotonic()
            bots.call("register", [{"port": server.port, "names": names}], timeout=30)
            until = time.monotonic() + plan.tournament_timeout
            (played,) = bots.call("play", [{"until": until}], timeout=plan.tournament_timeout + 30)
            walls.append(time.monotonic() - begin)
            bots.call("close", [{}], timeout=30)
            moves += played["moves"]
            got = [len(r) for r in played["results"] if r is not None]
            if len(got) != ROUND_ROBIN_BOTS or set(got) != {series}:
                raise BenchError(f"{tag}: not every bot got {series} results: {got}")
        wall = time.monotonic() - started
        wait_quiet(server, 10)
        cpu = server.cpu() - cpu0
        bots_cpu = bots.cpu() - bots_cpu0
        other = max(0.0, scenarios.busy_cpu() - busy0 - cpu - bots_cpu)
        figures: dict[str, Any] = {
            "tournaments": plan.tournaments,
            "moves": moves,
            "tournament_wall_s": statistics.median(walls),
            "moves_per_s": moves / sum(walls),
            "server_cpu_us_per_move": 1e6 * cpu / moves,
            "server_cpu_pct": 100 * cpu / wall,
            "bot_cpu_us_per_move": 1e6 * bots_cpu / moves,
            "other_cpu_pct": 100 * other / wall,
            "rss_mb": server.rss() / 2**20,
            "errors": dict(bots.errors),
            "log_problems": log_problems(server),
            "load_average": load,
        }
        if mode != "no-store":
            stored = stored_moves(server)
            figures["stored_moves"] = stored
            database = RESULTS / f"{tag}.db"
            size = sum(
                Path(f"{database}{suffix}").stat().st_size
                for suffix in ("", "-wal")
                if Path(f"{database}{suffix}").exists()
            )
            figures["db_bytes_per_move"] = size / moves
            if stored != moves:
                figures["errors"]["stored moves differ from moves played"] = abs(stored - moves)
        return figures
    finally:
        if bots is not None:
            bots.close()
        server.stop()


# ---------------------------------------------------------------- referee alone


def run_referee(plan: Plan, mode: str, attempt: int) -> dict[str, Any]:
    """``bench/santorini_referee.py`` in a fresh process: its JSON line, plus the
    load average before it."""
    command = [sys.executable, str(BENCH / "santorini_referee.py")]
    command += ["--tournaments", str(plan.tournaments)]
    if mode == "no-store":
        command.append("--no-store")
    load = load_average()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode:
        raise BenchError(f"santorini_referee.py failed: {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.splitlines()[-1])
    figures["server_cpu_us_per_move"] = figures["referee_cpu_us_per_move"]  # for repeated()
    figures["load_average"] = load
    figures.update(errors={}, log_problems=[])
    return figures


# ---------------------------------------------------------------- 100 bots


def wait_for_log(server: Server, text: bytes, count: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while server.log_path.read_bytes().count(text) < count:
        if server.popen.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"{count}x {text.decode()!r} never appeared in {server.log_path}")
        time.sleep(0.05)


def run_crowd(plan: Plan, mode: str, attempt: int) -> dict[str, Any]:
    """100 bots: in the lobby, then in their tournament."""
    tag = f"santorini-crowd-{mode}-{attempt}"
    server = start_server(tag, mode=mode, max_players=CROWD_BOTS + 1, waiting_for=plan.crowd_wait)
    bots: Workers | None = None
    try:
        bots = started_bots()
        wait_quiet(server, 10)
        rss0 = server.rss()
        started = time.monotonic()
        bots.call("register", [{"port": server.port, "names": bot_names(CROWD_BOTS)}], 30)
        wait_for_log(server, b" registered player=", CROWD_BOTS, plan.crowd_wait)
        registered_s = time.monotonic() - started
        wait_quiet(server, 1.0)
        rss_lobby = server.rss()
        # The tournament starts `crowd_wait` s after the last registration.
        until = time.monotonic() + plan.crowd_wait + 10 + plan.crowd_seconds
        bots.send("play", [{"until": until}])
        wait_for_log(server, b" starts: ", 1, plan.crowd_wait + 10)
        begin = time.monotonic()
        cpu0, busy0, bots_cpu0 = server.cpu(), scenarios.busy_cpu(), bots.cpu()
        (played,) = bots.collect(timeout=plan.crowd_wait + 10 + plan.crowd_seconds + 30)
        seconds = time.monotonic() - begin
        cpu, bots_cpu = server.cpu() - cpu0, bots.cpu() - bots_cpu0
        other = max(0.0, scenarios.busy_cpu() - busy0 - cpu - bots_cpu)
        rss_play = server.rss()
        problems = log_problems(server)  # before the bots leave (they would misbehave)
        moves = played["moves"]
        return {
            "bots": CROWD_BOTS,
            "registration_s": registered_s,
            "rss_before_mb": rss0 / 2**20,
            "rss_lobby_mb": rss_lobby / 2**20,
            "rss_tournament_mb": rss_play / 2**20,
            "rss_per_bot_lobby_kb": (rss_lobby - rss0) / CROWD_BOTS / 1024,
            "rss_per_bot_kb": (rss_play - rss0) / CROWD_BOTS / 1024,
            "moves": moves,
            "moves_per_s": moves / seconds,
            "server_cpu_us_per_move": 1e6 * cpu / moves if moves else float("nan"),
            "server_cpu_pct": 100 * cpu / seconds,
            "other_cpu_pct": 100 * other / seconds,
            "still_connected": CROWD_BOTS - played["ended"],
            "errors": dict(bots.errors),
            "log_problems": problems,
        }
    finally:
        if bots is not None:
            bots.close()
        server.stop()


# ---------------------------------------------------------------- profile


def run_profile(plan: Plan, mode: str) -> dict[str, Any] | None:
    """py-spy on the server during back-to-back round robins of 10 bots: the bots
    play in their own process while py-spy (in a thread of this one) records."""
    tag = f"santorini-profile-{mode}"
    output = RESULTS / f"{tag}.pyspy.txt"
    server = start_server(tag, mode=mode, max_players=ROUND_ROBIN_BOTS, waiting_for=60)
    bots: Workers | None = None
    try:
        bots = started_bots()
        wait_quiet(server, 10)
        names = [{"port": server.port, "names": bot_names(ROUND_ROBIN_BOTS)}]
        start = time.monotonic() + 0.5
        stop = start + plan.profile_seconds
        recorded: list[Path | None] = []
        spy = threading.Thread(
            target=lambda: recorded.append(
                pyspy_profile.record(server.popen.pid, output, start, plan.profile_seconds)
            )
        )
        spy.start()
        cpu0, moves = server.cpu(), 0
        while time.monotonic() < stop:
            bots.call("register", names, timeout=30)
            (played,) = bots.call("play", [{"until": stop + 30}], timeout=plan.tournament_timeout)
            bots.call("close", [{}], timeout=30)
            moves += played["moves"]
        cpu = server.cpu() - cpu0
        spy.join()
        if not recorded or recorded[0] is None:
            return None
        summary = pyspy_profile.summarize(output, ROOT)
        summary["moves"] = moves
        summary["cpu_us_per_move"] = 1e6 * cpu / moves
        summary["raw_file"] = str(output.relative_to(ROOT))
        summary["mode"] = MODES[mode]
        return summary
    finally:
        if bots is not None:
            bots.close()
        server.stop()


# ---------------------------------------------------------------- driver


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per number, the median over runs; errors and log problems of every run."""
    merged: dict[str, Any] = {}
    for key in runs[0]:
        values = [run[key] for run in runs]
        if key == "errors":
            merged[key] = {k: sum(v.get(k, 0) for v in values) for v in values for k in v}
        elif key == "log_problems":
            merged[key] = [line for value in values for line in value]
        elif key == "load_average":
            merged[key] = values
        else:
            merged[key] = statistics.median(values)
    merged["runs"] = len(runs)
    return merged


def repeated(label: str, repeats: int, fns: dict[str, Callable[[int], dict[str, Any]]]):
    """Each variant ``repeats`` times, interleaved; the median of each figure, and
    each run's CPU per move."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in fns}
    for attempt in range(repeats):
        for name, fn in fns.items():
            log(f"{label}: {name} ({attempt + 1}/{repeats})")
            runs[name].append(fn(attempt))
            print(json.dumps({"scenario": label, "variant": name, **runs[name][-1]}), flush=True)
    results = {}
    for name, attempts in runs.items():
        merged = median_of(attempts)
        merged["cpu_us_per_move_runs"] = [
            round(run["server_cpu_us_per_move"], 1) for run in attempts
        ]
        results[name] = merged
    return results


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def markdown(
    round_robin: dict[str, dict[str, Any]],
    referee: dict[str, dict[str, Any]],
    crowd: dict[str, dict[str, Any]],
    profiles: list[dict[str, Any]],
    *,
    plan: Plan,
    command: str,
    loads: tuple[str, str],
    wall: float,
) -> str:
    machine = report.machine()
    out = [
        "# Santorini referee benchmark",
        "",
        f"Run: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, `{command}` "
        f"({'quick' if plan.quick else 'full'}), wall time {wall / 60:.1f} min, "
        f"commit {machine['commit']}; {plan.repeats} run(s) per variant, interleaved, "
        f"median of each figure; {plan.tournaments} round robin(s) of "
        f"{ROUND_ROBIN_BOTS} bots per run.",
        "",
        f"Machine: {machine['nproc']} cores ({machine['cpu_model']}), Linux "
        f"{machine['kernel']}, Python {machine['python']}; load average (1, 5, 15 min) "
        f"{loads[0]} before, {loads[1]} after.",
        "",
        "### Round robin of 10 instant bots",
        "",
        "| event log | moves per round robin | wall time per round robin s | moves/s "
        "| server CPU us/move (each run) | server CPU % | bot CPU us/move | other CPU % "
        "| DB bytes/move | errors | load average before each run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in round_robin.items():
        errors = sum(r["errors"].values()) + len(r["log_problems"])
        runs = ", ".join(f"{v:.0f}" for v in r["cpu_us_per_move_runs"])
        db = f"{r['db_bytes_per_move']:.0f}" if "db_bytes_per_move" in r else "-"
        out.append(
            f"| {name} | {r['moves'] / r['tournaments']:,.0f} | {r['tournament_wall_s']:.2f} "
            f"| {r['moves_per_s']:,.0f} | **{r['server_cpu_us_per_move']:.0f}** ({runs}) "
            f"| {r['server_cpu_pct']:.0f} | {r['bot_cpu_us_per_move']:.0f} "
            f"| {r['other_cpu_pct']:.0f} | {db} | {errors} | {'; '.join(r['load_average'])} |"
        )
    store, bare = round_robin.get("SQLite store"), round_robin.get("--no-store")
    out.append("")
    if store and bare:
        cost = store["server_cpu_us_per_move"] - bare["server_cpu_us_per_move"]
        out.append(
            f"The event log costs {cost:.0f} us of server CPU per move "
            f"({store['server_cpu_us_per_move']:.0f} against "
            f"{bare['server_cpu_us_per_move']:.0f})."
        )
        for name, r in round_robin.items():
            verdict = "met" if r["server_cpu_us_per_move"] < TARGET_US else "**missed**"
            out.append(
                f"Target (under {TARGET_US:.0f} us of server CPU per move), {name}: {verdict}."
            )
        out.append("")
    out += [
        "### The referee alone: in-process players, no sockets (bench/santorini_referee.py)",
        "",
        "| event log | referee CPU us/move (each run) | of it, store threads | players' own "
        "us/move (taken out) | moves/s | transactions | load average before each run |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in referee.items():
        runs = ", ".join(f"{v:.0f}" for v in r["cpu_us_per_move_runs"])
        out.append(
            f"| {name} | **{r['referee_cpu_us_per_move']:.0f}** ({runs}) "
            f"| {r['store_threads_cpu_us_per_move']:.0f} | {r['bot_cpu_us_per_move']:.0f} "
            f"| {r['moves_per_s']:,.0f} | {r['transactions']:.0f} "
            f"| {'; '.join(r['load_average'])} |"
        )
    out.append("")
    for name, r in referee.items():
        verdict = "met" if r["referee_cpu_us_per_move"] < TARGET_US else "**missed**"
        out.append(
            f"Target (under {TARGET_US:.0f} us per move), the referee alone, {name}: {verdict}."
        )
    out.append("")
    rows = [
        ("registration of 100 bots, s", "registration_s", 2),
        ("RSS before any bot, MB", "rss_before_mb", 1),
        ("RSS with 100 bots in the lobby, MB", "rss_lobby_mb", 1),
        ("RSS with 100 bots in the tournament, MB", "rss_tournament_mb", 1),
        ("**RSS per bot in the lobby, KB**", "rss_per_bot_lobby_kb", 1),
        ("**RSS per bot in the tournament, KB**", "rss_per_bot_kb", 1),
        (f"moves/s in the tournament ({plan.crowd_seconds:g} s)", "moves_per_s", 0),
        ("server CPU per move, us", "server_cpu_us_per_move", 0),
        ("server CPU %", "server_cpu_pct", 0),
        ("other CPU %", "other_cpu_pct", 0),
        ("bots still connected at the end", "still_connected", 0),
    ]
    out += [
        f"### {CROWD_BOTS} connected bots",
        "",
        "| figure | " + " | ".join(crowd) + " |",
        "|---|" + "---|" * len(crowd),
    ]
    for label, key, decimals in rows:
        cells = [f"{r[key]:,.{decimals}f}" for r in crowd.values()]
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = [f"{sum(r['errors'].values())} / {len(r['log_problems'])}" for r in crowd.values()]
    out += ["| bot errors / server log problems | " + " | ".join(cells) + " |", ""]
    problems = [
        f"- {name}: {line}"
        for name, r in [*round_robin.items(), *((f"100 bots, {n}", r) for n, r in crowd.items())]
        for line in [*(f"{k} x{v}" for k, v in r["errors"].items()), *r["log_problems"]]
    ]
    if problems:
        out += ["Errors:", "", *problems[:20], ""]
    for p in profiles:
        out += [
            f"### Profile: round robins of 10 bots, {p['mode']}, py-spy --native "
            f"({p['samples']:,} samples, {p['moves']:,} moves, "
            f"{p['cpu_us_per_move']:.0f} us of CPU per move under the profiler)",
            "",
            "Shares are of the samples of threads py-spy saw as active; in this container "
            "it counts threads blocked in `fdatasync`, on a lock or in `epoll_wait` as "
            "active, so those rows are waiting, not CPU.",
            "",
            "| where (self time) | share |",
            "|---|---|",
        ]
        out += [f"| {name} | {share:.1f}% |" for name, share in p["categories"]]
        out += ["", "| function (self time) | share |", "|---|---|"]
        out += [f"| `{name}` | {share}% |" for name, share in p["top_self"]]
        out += ["", "| our line (inclusive) | share |", "|---|---|"]
        out += [f"| `{name}` | {share}% |" for name, share in p["ours_lines_inclusive"]]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="python bench/santorini.py", description=__doc__.split("\n\n", 1)[0]
    )
    cli.add_argument("--quick", action="store_true", help="short version (under a minute)")
    cli.add_argument("--repeats", type=int, help="runs per variant (full 3, quick 1)")
    cli.add_argument(
        "--experiments",
        action="store_true",
        help="also the round robin with DUORELAY_SQLITE_SYNCHRONOUS=normal and on "
        "santorini_no_game_wait.py",
    )
    cli.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="py-spy on the server (default: on for a full run)",
    )
    args = cli.parse_args(argv)
    plan = Plan.make(args.quick)
    if args.repeats:
        plan = dataclasses.replace(plan, repeats=max(1, args.repeats))
    profile = args.profile if args.profile is not None else not plan.quick
    loadgen.raise_nofile_limit()
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = report.command_line("bench/santorini.py", "--santorini")
    load_before = load_average()
    started = time.monotonic()
    modes = ["store", "no-store"] + (["sync-normal", "no-game-wait"] if args.experiments else [])
    round_robin = repeated(
        "round robin",
        plan.repeats,
        {MODES[m]: lambda attempt, m=m: run_round_robin(plan, m, attempt) for m in modes},
    )
    referee = repeated(
        "referee alone",
        plan.repeats,
        {MODES[m]: lambda a, m=m: run_referee(plan, m, a) for m in ("store", "no-store")},
    )
    crowd = repeated(
        "100 bots",
        plan.repeats,
        {MODES[m]: lambda a, m=m: run_crowd(plan, m, a) for m in ("store", "no-store")},
    )
    profiles = []
    for mode in ("store", "no-store") if profile else ():
        log(f"profiling the server ({MODES[mode]}) for {plan.profile_seconds:g} s with py-spy")
        summary = run_profile(plan, mode)
        if summary is None:
            log("profile: py-spy unavailable or refused; skipped")
            break
        print(json.dumps({"scenario": "profile", **summary}), flush=True)
        profiles.append(summary)
    wall = time.monotonic() - started
    text = markdown(
        round_robin,
        referee,
        crowd,
        profiles,
        plan=plan,
        command=command,
        loads=(load_before, load_average()),
        wall=wall,
    )
    name = "santorini-quick" if plan.quick else "santorini"
    out = report.publish(text, name)
    log(f"report: {out.relative_to(ROOT)}; wall time {wall:.0f} s")
    failed = any(
        r["errors"] or r["log_problems"] for r in [*round_robin.values(), *crowd.values()]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
