"""UTTT referee benchmark: 1,000 concurrent matches between bots at a set pace.

How to run (from the repository root)::

    nox -s bench -- --uttt            # 1,000 matches, 60 s measured; bench/results/uttt.md
    nox -s bench -- --uttt --quick    # 100 matches, 30 s; bench/results/uttt-quick.md

or ``python bench/uttt.py [--quick] [--matches N] [--rate R] [--seconds S]`` in the
bench virtualenv (``pip install -e '.[test]' psutil``).

Target (issue "Ultimate tic-tac-toe"): 1,000 concurrent matches between bots;
p99 move-to-update latency under 20 ms at 1,000 moves per second on SQLite.

The server is ``python -m duorelay`` (the UTTT service at ``ws://HOST:PORT/uttt``,
docs: /work/shared/design/UTTT.md) run through ``bench/experiments/timed_store.py``,
which counts the time spent in the store's transactions; a fresh process and a
fresh SQLite file under ``bench/results/`` per run; the websocket rate limit and
connection caps lifted (``servers.DUORELAY_ENV``) and the login rate limit raised
(``DUORELAY_LOGIN_RATE=1000000 DUORELAY_LOGIN_BURST=1000000``: every bot logs in
from 127.0.0.1). Password hashing: ``DUORELAY_PASSWORD_PROFILE=cheapest`` by
default (``--password-profile``), so that 2,000 registrations take seconds, not
minutes; this benchmark measures moves, ``bench/xo.py`` measures logins at the
default Argon2 cost.

The bots are ``bench/uttt_bots.py``: picows clients on uvloop, ``--bot-processes``
processes (default 2) started by ``servers.Workers``, both players of a match in
the same process. Steps:

1. ``2 x matches`` bots connect and log in with a password (registering their
   names), 20 at a time per process;
2. bot ``2k`` sends ``match_request`` naming bot ``2k+1``: exactly ``matches``
   matches; a finished match is followed by a new request of the same pair;
3. the players on turn move a random legal move each, each match moving once
   every ``matches / rate`` s (the matches spread evenly over that period), so the
   offered load is ``rate`` moves a second; ``warm-up`` s (full 10, quick 5),
   then the measured window (full 60 s, quick 30 s).

Figures of the window: moves confirmed per second (moves sent in the window
whose ``match_update`` reached the mover); move-to-update latency at the mover
(from sending ``move`` to receiving the ``match_update`` whose ``last_move`` is
that move; p50, p90, p99, max); server CPU per move (psutil: the server process's
user + system time over the window, every thread, divided by the moves);
database time per move (wall and CPU time inside the store's transactions,
counted in the server by ``timed_store.py``, over the moves; transactions per
move); bot and other CPU; late turns (the update that gives a bot its turn came
after its move was already due: the server is behind the offered pace, and the
match moves more slowly); server RSS. Nothing may go wrong: no bot error,
no server log line at WARNING or above; else the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import report  # noqa: E402
import turnbased  # noqa: E402
import uttt_bots  # noqa: E402
from santorini import bot_names, load_average, log_problems  # noqa: E402
from servers import RESULTS, ROOT, BenchError, Workers, log, wait_quiet  # noqa: E402
from turnbased import client_problems  # noqa: E402

TARGET_P99_MS = 20.0
TARGET_RATE = 1000.0


@dataclass(frozen=True)
class Plan:
    quick: bool
    matches: int = 1000
    rate: float = TARGET_RATE  # offered moves per second, all matches together
    warmup: float = 10.0
    seconds: float = 60.0
    bot_processes: int = 2
    login_concurrency: int = 20  # per bot process
    password_profile: str = "cheapest"

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(quick=True, matches=100, warmup=5.0, seconds=30.0)
        return cls(quick=False)


def run(plan: Plan) -> dict[str, Any]:
    tag = "uttt-quick" if plan.quick else "uttt"
    server = turnbased.start_server(
        tag,
        database_url=turnbased.sqlite_url(tag),
        probe_path="/uttt",
        env={"DUORELAY_PASSWORD_PROFILE": plan.password_profile},
    )
    bots: Workers | None = None
    try:
        bots = Workers(plan.bot_processes, target=uttt_bots.worker_main)
        wait_quiet(server, 10)
        rss0 = server.rss()
        names = bot_names(2 * plan.matches, prefix="ut")
        url = f"ws://127.0.0.1:{server.port}/uttt"
        log(f"uttt: {len(names)} bots log in")
        answers = bots.call(
            "login",
            [
                {"url": url, "names": part, "pw": f"pw-{i}", "concurrency": plan.login_concurrency}
                for i, part in enumerate(turnbased.split_pairs(names, plan.bot_processes))
            ],
            timeout=600,
        )
        logged_in = sum(a["logged_in"] for a in answers)
        login_s = max(a["seconds"] for a in answers)
        if logged_in != len(names):
            raise BenchError(f"only {logged_in} of {len(names)} bots logged in: {bots.errors}")
        log(f"uttt: {logged_in} bots logged in in {login_s:.1f} s; pairing")
        answers = bots.call("pair", [{"timeout": 60}] * plan.bot_processes, timeout=120)
        matches = sum(a["matches"] for a in answers)
        pair_s = max(a["seconds"] for a in answers)
        if matches != plan.matches:
            raise BenchError(f"only {matches} of {plan.matches} matches started: {bots.errors}")
        wait_quiet(server, 10)
        rss_matched = server.rss()
        played = turnbased.play(
            server,
            bots,
            period=plan.matches / plan.rate,
            warmup=plan.warmup,
            seconds=plan.seconds,
            what=f"uttt: {matches} matches; playing {plan.rate:g} moves/s",
            collect_timeout=60,
        )
        answers = played.answers
        figures: dict[str, Any] = {
            "matches": matches,
            "bots": logged_in,
            "offered_moves_per_s": plan.rate,
            "login_s": login_s,
            "logins_per_s": logged_in / login_s,
            "pair_s": pair_s,
            **played.figures(),
            "late_moves": sum(a["late"] for a in answers),
            "games_over": sum(a["games_over"] for a in answers),
            "rss_before_mb": rss0 / 2**20,
            "rss_matched_mb": rss_matched / 2**20,
            "rss_play_mb": played.rss / 2**20,
            "rss_per_bot_kb": (rss_matched - rss0) / logged_in / 1024,
            "errors": dict(bots.errors),
            "client_problems": client_problems(answers),
            "log_problems": log_problems(server)[:50],
        }
        return figures
    finally:
        if bots is not None:
            bots.close()
        server.stop()


def markdown(r: dict[str, Any], *, plan: Plan, command: str, loads: tuple[str, str]) -> str:
    machine = report.machine()
    p99, rate = r["latency_p99_ms"], r["moves_per_s"]
    met_latency = p99 < TARGET_P99_MS
    met_rate = rate >= 0.95 * TARGET_RATE
    verdict = "met" if met_latency and met_rate else "**not met**"
    out = [
        "# UTTT referee benchmark",
        "",
        f"Run: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, `{command}` "
        f"({'quick' if plan.quick else 'full'}), commit {machine['commit']}.",
        "",
        f"Machine: {machine['nproc']} cores ({machine['cpu_model']}), Linux "
        f"{machine['kernel']}, Python {machine['python']}; shared with other work "
        f"(load average 1, 5, 15 min: {loads[0]} before, {loads[1]} after; other CPU "
        f"during the window below). Server, bots and everything else share the cores.",
        "",
        f"Server: `python -m duorelay` (through `bench/experiments/timed_store.py`), "
        f"SQLite file, `DUORELAY_PASSWORD_PROFILE={plan.password_profile}`, "
        "`DUORELAY_LOGIN_RATE=1000000 DUORELAY_LOGIN_BURST=1000000`, websocket rate "
        f"limit and connection caps lifted. Bots: {plan.bot_processes} processes of "
        "picows clients on uvloop (`bench/uttt_bots.py`), random legal moves.",
        "",
        f"{r['matches']:,} concurrent matches ({r['bots']:,} bots, registered accounts), "
        f"offered {plan.rate:,.0f} moves/s (each match one move every "
        f"{plan.matches / plan.rate:g} s), {plan.warmup:g} s warm-up, "
        f"{r['window_s']:.1f} s measured.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| logins (registrations) | {r['bots']:,} in {r['login_s']:.1f} s "
        f"({r['logins_per_s']:,.0f}/s, {plan.password_profile} hashing) |",
        f"| pairing (match_request to match_update, every match) | {r['pair_s']:.2f} s |",
        f"| **moves/s confirmed** | **{rate:,.0f}** ({r['moves']:,} moves) |",
        f"| **move-to-update latency p50 / p90 / p99 / max, ms** | {r['latency_p50_ms']:.1f} "
        f"/ {r['latency_p90_ms']:.1f} / **{p99:.1f}** / {r['latency_max_ms']:.1f} |",
        f"| **server CPU per move** | **{r['server_cpu_us_per_move']:.0f} us** "
        f"(server at {r['server_cpu_pct']:.0f}% of one core) |",
        f"| **database time per move** (inside the store's transactions) | "
        f"**{r['db_wall_us_per_move']:.0f} us** wall, {r['db_cpu_us_per_move']:.0f} us CPU, "
        f"{r['db_transactions_per_move']:.2f} transactions per move |",
        f"| bot CPU per move | {r['bot_cpu_us_per_move']:.0f} us "
        f"({r['bot_cpu_pct']:.0f}% of one core) |",
        f"| other CPU (other processes on the machine) | {r['other_cpu_pct']:.0f}% |",
        f"| turns that came after the move was due (server behind the pace) | "
        f"{r['late_moves']:,} |",
        f"| games finished in the run | {r['games_over']:,} |",
        f"| server RSS before / with every match / after play, MB | {r['rss_before_mb']:.0f} / "
        f"{r['rss_matched_mb']:.0f} / {r['rss_play_mb']:.0f} "
        f"({r['rss_per_bot_kb']:.0f} KB per logged-in bot) |",
        f"| bot errors / server log problems | {sum(r['errors'].values())} / "
        f"{len(r['log_problems'])} |",
        f"| bot library problems (trio-websocket, client side; not errors) | "
        f"{sum(r['client_problems'].values())} |",
        "",
        f"Target (p99 under {TARGET_P99_MS:g} ms at {TARGET_RATE:,.0f} moves/s, "
        f"{1000 if not plan.quick else plan.matches:,} matches, SQLite): {verdict} "
        f"(p99 {p99:.1f} ms at {rate:,.0f} moves/s"
        + (
            "; a quick run has 100 matches, not 1,000)."
            if plan.quick or plan.matches < 1000
            else ")."
        ),
        "",
    ]
    problems = [f"- {k} x{v}" for k, v in r["errors"].items()] + [
        f"- server log: {line}" for line in r["log_problems"]
    ]
    if problems:
        out += ["Errors:", "", *problems[:30], ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(
        prog="python bench/uttt.py", description=__doc__.split("\n\n", 1)[0]
    )
    cli.add_argument("--quick", action="store_true", help="100 matches, 30 s")
    cli.add_argument("--matches", type=int, help="concurrent matches (full 1000, quick 100)")
    cli.add_argument("--rate", type=float, help="offered moves per second in total (1000)")
    cli.add_argument("--seconds", type=float, help="measured window (full 60, quick 30)")
    cli.add_argument("--bot-processes", type=int, help="bot processes (2)")
    cli.add_argument(
        "--password-profile",
        choices=("cheapest", "rfc9106-low-memory"),
        help="DUORELAY_PASSWORD_PROFILE of the server (cheapest)",
    )
    args = cli.parse_args(argv)
    plan = Plan.make(args.quick)
    for key in ("matches", "rate", "seconds", "bot_processes", "password_profile"):
        if getattr(args, key) is not None:
            plan = replace(plan, **{key: getattr(args, key)})
    loadgen.raise_nofile_limit()
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = report.command_line("bench/uttt.py", "--uttt")
    load_before = load_average()
    figures = run(plan)
    print(json.dumps({"scenario": "uttt", **figures}), flush=True)
    text = markdown(figures, plan=plan, command=command, loads=(load_before, load_average()))
    name = "uttt-quick" if plan.quick else "uttt"
    log(f"report: {report.publish(text, name).relative_to(ROOT)}")
    return 1 if figures["errors"] or figures["log_problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
