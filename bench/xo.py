"""XO game service benchmark: logins per second, and 500 concurrent games.

How to run (from the repository root)::

    nox -s bench -- --xo                    # SQLite and PostgreSQL; bench/results/xo.md
    nox -s bench -- --xo --quick            # 100 games, shorter windows; xo-quick.md
    nox -s bench -- --xo --postgres none    # SQLite only
    nox -s bench -- --xo --postgres postgresql+psycopg://user@host:5432/db

or ``python bench/xo.py [...]`` in the bench virtualenv (``pip install -e '.[test]'
psutil httpx``).

Target (issue "XO game service"): logins per second (Argon2 cost stated), moves
per second and p99 command-to-broadcast latency at 500 concurrent games, on
SQLite and on PostgreSQL.

The server is ``python -m duorelay`` (the XO API and ``/ws``, docs:
/work/shared/design/XOGAME.md) run through ``bench/experiments/timed_store.py``
(counts the time spent in the store's transactions); a fresh process and a fresh
database per run: a SQLite file under ``bench/results/``, or a new database on
PostgreSQL: ``--postgres auto`` (the default) starts a throwaway cluster from
Debian's binaries (``bench/pgcluster.py``: durability at PostgreSQL's defaults,
fsync on, unlike the test cluster), ``--postgres URL`` creates databases on that
server, ``--postgres none`` skips it. Rate limits and connection caps lifted
(``servers.DUORELAY_ENV``), login rate limit raised
(``DUORELAY_LOGIN_RATE=1000000 DUORELAY_LOGIN_BURST=1000000``: every client is
127.0.0.1). The bots are ``bench/xo_bots.py`` (httpx and trio-websocket,
``--bot-processes`` processes, default 2).

Per database:

- ``logins``: the default password profile (``rfc9106-low-memory``: Argon2id
  t=3, 64 MiB, p=4). ``--login-clients`` accounts (default 4) sign up, then each
  client logs in (``POST /auth/login``) again and again, one request at a time,
  for the window (full 20 s, quick 8 s): logins/s, latency p50/p99, server CPU
  and database time per login.
- ``games``: ``DUORELAY_PASSWORD_PROFILE=cheapest`` (so that 1,000 sign-ups take
  seconds; the logins run measures the real cost). ``2 x games`` accounts sign
  up and log in; each pair creates a game (``POST /game/``), the other joins
  (``POST /game/connect``), both get their per-game token, open ``/ws`` and
  authorize; then each game moves once every ``games / rate`` s (``--rate``,
  default 500 moves/s: one move a second per game), a random empty cell with
  the next sequence; a finished game is replaced by a new one (the HTTP calls
  and the new sockets are part of the load). Warm-up (full 10 s, quick 5 s),
  then the window (full 60 s, quick 20 s): moves confirmed per second, latency
  from sending the ``command`` to receiving the ``broadcast`` of that move at
  the sender (p50, p90, p99, max), server CPU and database time per move, games
  finished and started.

Nothing may go wrong: no bot error, no server log line at WARNING or above;
else the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
import pgcluster  # noqa: E402
import report  # noqa: E402
import turnbased  # noqa: E402
import xo_bots  # noqa: E402
from santorini import bot_names, load_average, log_problems  # noqa: E402
from servers import RESULTS, ROOT, BenchError, Server, Workers, log, wait_quiet  # noqa: E402
from turnbased import client_problems  # noqa: E402

DEFAULT_PROFILE = "rfc9106-low-memory"


@dataclass(frozen=True)
class Plan:
    quick: bool
    games: int = 500
    rate: float = 500.0  # offered moves per second, all games together
    warmup: float = 10.0
    seconds: float = 60.0
    login_clients: int = 4
    login_seconds: float = 20.0
    bot_processes: int = 2

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(
                quick=True, games=100, rate=100.0, warmup=5.0, seconds=20.0, login_seconds=8.0
            )
        return cls(quick=False)


class Databases:
    """Fresh database URLs: SQLite files, and PostgreSQL if asked for."""

    def __init__(self, postgres: str) -> None:
        self.cluster: pgcluster.Cluster | None = None
        self.postgres_url: str | None = None
        self.postgres_note = ""
        self.count = 0
        if postgres == "none":
            self.postgres_note = "PostgreSQL not run (--postgres none)."
        elif postgres == "auto":
            try:
                self.cluster = pgcluster.Cluster()
                self.cluster.start()
                self.postgres_note = (
                    f"PostgreSQL {self.cluster.version()}: a throwaway cluster on this "
                    "machine (bench/pgcluster.py), durability at the defaults (fsync on)."
                )
            except (pgcluster.Unavailable, RuntimeError) as error:
                if self.cluster is not None:
                    self.cluster.stop()
                self.cluster = None
                self.postgres_note = f"PostgreSQL not run: {error}"
                log(self.postgres_note)
        else:
            self.postgres_url = postgres
            self.postgres_note = "PostgreSQL: the server given with --postgres."

    @property
    def kinds(self) -> list[str]:
        return ["SQLite"] + (["PostgreSQL"] if self.cluster or self.postgres_url else [])

    def fresh(self, kind: str, tag: str) -> str:
        self.count += 1
        if kind == "SQLite":
            return turnbased.sqlite_url(tag)
        name = f"duorelay_bench_{self.count}"
        if self.cluster is not None:
            return self.cluster.create_database(name)
        assert self.postgres_url is not None
        return pgcluster.fresh_database(self.postgres_url, name)

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


def start_server(databases: Databases, kind: str, run: str, password_profile: str) -> Server:
    """The server of one run (``logins`` or ``games``) on a fresh ``kind`` database."""
    tag = f"xo-{run}-{kind.lower()}"
    return turnbased.start_server(
        tag,
        database_url=databases.fresh(kind, tag),
        probe_path="/ws",
        env={"DUORELAY_PASSWORD_PROFILE": password_profile},
    )


def run_logins(plan: Plan, databases: Databases, kind: str) -> dict[str, Any]:
    server = start_server(databases, kind, "logins", DEFAULT_PROFILE)
    bots: Workers | None = None
    try:
        bots = Workers(1, target=xo_bots.worker_main)
        base = f"http://127.0.0.1:{server.port}"
        names = bot_names(plan.login_clients, prefix="login")
        (signed,) = bots.call(
            "signup",
            [{"base": base, "names": names, "password": "pw-login", "concurrency": 4}],
            timeout=300,
        )
        if signed["players"] != len(names):
            raise BenchError(f"xo logins: sign-up failed: {bots.errors}")
        wait_quiet(server, 10)
        start = time.monotonic() + 0.5
        end = start + plan.login_seconds
        bots.send("logins", [{"base": base, "names": names, "password": "pw-login", "until": end}])
        window = turnbased.Window(server, bots)
        time.sleep(max(0.0, start - time.monotonic()))
        window.start()
        (answer,) = bots.collect(timeout=plan.login_seconds + 300)
        window.stop()
        logins = answer["logins"]
        return {
            "database": kind,
            "clients": plan.login_clients,
            "signup_s_each": signed["seconds"] / len(names),
            "logins": logins,
            **window.figures(logins, "login"),
            **turnbased.latency_figures(answer["latencies"]),
            "errors": dict(bots.errors),
            "log_problems": log_problems(server)[:50],
        }
    finally:
        if bots is not None:
            bots.close()
        server.stop()


def run_games(plan: Plan, databases: Databases, kind: str) -> dict[str, Any]:
    server = start_server(databases, kind, "games", "cheapest")
    bots: Workers | None = None
    try:
        bots = Workers(plan.bot_processes, target=xo_bots.worker_main)
        base = f"http://127.0.0.1:{server.port}"
        names = bot_names(2 * plan.games, prefix="xo")
        parts = turnbased.split_pairs(names, plan.bot_processes)
        log(f"xo games ({kind}): {len(names)} accounts sign up")
        answers = bots.call(
            "signup",
            [
                {"base": base, "names": part, "password": "pw-xo", "concurrency": 20}
                for part in parts
            ],
            timeout=600,
        )
        players = sum(a["players"] for a in answers)
        signup_s = max(a["seconds"] for a in answers)
        if players != len(names):
            raise BenchError(f"xo: only {players} of {len(names)} signed up: {bots.errors}")
        log(f"xo games ({kind}): {players} signed up in {signup_s:.1f} s; starting games")
        answers = bots.call("games", [{"base": base, "timeout": 300}] * len(bots), timeout=400)
        games = sum(a["games"] for a in answers)
        games_s = max(a["seconds"] for a in answers)
        if games != plan.games:
            raise BenchError(f"xo: only {games} of {plan.games} games started: {bots.errors}")
        wait_quiet(server, 10)
        rss_ready = server.rss()
        played = turnbased.play(
            server,
            bots,
            period=plan.games / plan.rate,
            warmup=plan.warmup,
            seconds=plan.seconds,
            what=f"xo games ({kind}): {games} games; {plan.rate:g} moves/s",
            collect_timeout=120,
        )
        answers = played.answers
        figures = {
            "database": kind,
            "games": games,
            "offered_moves_per_s": plan.rate,
            "signup_s": signup_s,
            "games_setup_s": games_s,
            **played.figures(),
            "games_over": sum(a["games_over"] for a in answers),
            "games_started": sum(a["games_started"] for a in answers),
            "rss_ready_mb": rss_ready / 2**20,
            "rss_play_mb": played.rss / 2**20,
            "errors": dict(bots.errors),
            "client_problems": client_problems(answers),
            "log_problems": log_problems(server)[:50],
        }
        return figures
    finally:
        if bots is not None:
            bots.close()
        server.stop()


def markdown(
    logins: list[dict[str, Any]],
    games: list[dict[str, Any]],
    *,
    plan: Plan,
    command: str,
    loads: tuple[str, str],
    postgres_note: str,
    wall: float,
) -> str:
    machine = report.machine()
    out = [
        "# XO game service benchmark",
        "",
        f"Run: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, `{command}` "
        f"({'quick' if plan.quick else 'full'}), wall time {wall / 60:.1f} min, "
        f"commit {machine['commit']}.",
        "",
        f"Machine: {machine['nproc']} cores ({machine['cpu_model']}), Linux "
        f"{machine['kernel']}, Python {machine['python']}; shared with other work "
        f"(load average 1, 5, 15 min: {loads[0]} before, {loads[1]} after; other CPU "
        "per window below). Server, bots, PostgreSQL and everything else share the cores.",
        "",
        "Server: `python -m duorelay` (through `bench/experiments/timed_store.py`), "
        "`DUORELAY_LOGIN_RATE=1000000 DUORELAY_LOGIN_BURST=1000000`, websocket rate "
        f"limit and connection caps lifted. SQLite: a file. {postgres_note} Bots: "
        f"`bench/xo_bots.py` (httpx, trio-websocket), {plan.bot_processes} processes "
        "for the games, 1 for the logins.",
        "",
        f"### Logins: Argon2id {DEFAULT_PROFILE} (t=3, 64 MiB, p=4), "
        f"{plan.login_clients} clients logging in back to back, {plan.login_seconds:g} s",
        "",
        "| database | logins/s | latency p50 / p99 ms | server CPU per login ms "
        "| server CPU % | DB time per login ms | other CPU % | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in logins:
        out.append(
            f"| {r['database']} | **{r['logins_per_s']:.1f}** | {r['latency_p50_ms']:.0f} / "
            f"{r['latency_p99_ms']:.0f} | {r['server_cpu_us_per_login'] / 1e3:.1f} "
            f"| {r['server_cpu_pct']:.0f} | {r['db_wall_us_per_login'] / 1e3:.2f} "
            f"| {r['other_cpu_pct']:.0f} | {sum(r['errors'].values()) + len(r['log_problems'])} |"
        )
    out += [
        "",
        f"### {plan.games:,} concurrent games, offered {plan.rate:,.0f} moves/s "
        f"(one move every {plan.games / plan.rate:g} s per game), "
        f"{plan.warmup:g} s warm-up, {plan.seconds:g} s measured",
        "",
        "Accounts signed up with `DUORELAY_PASSWORD_PROFILE=cheapest`. Latency: "
        "`command` sent to the `broadcast` of that move received by the sender.",
        "",
        "| figure | " + " | ".join(r["database"] for r in games) + " |",
        "|---|" + "---|" * len(games),
    ]
    rows = [
        ("sign-up + login of every account, s", lambda r: f"{r['signup_s']:.1f}"),
        ("every game created, joined, authorized, s", lambda r: f"{r['games_setup_s']:.1f}"),
        ("**moves/s confirmed**", lambda r: f"**{r['moves_per_s']:,.0f}** ({r['moves']:,})"),
        (
            "**latency p50 / p90 / p99 / max, ms**",
            lambda r: (
                f"{r['latency_p50_ms']:.1f} / {r['latency_p90_ms']:.1f} / "
                f"**{r['latency_p99_ms']:.1f}** / {r['latency_max_ms']:.0f}"
            ),
        ),
        (
            "server CPU per move (game setups included), us",
            lambda r: f"{r['server_cpu_us_per_move']:.0f} ({r['server_cpu_pct']:.0f}% of a core)",
        ),
        (
            "database time per move, wall / CPU us (transactions per move)",
            lambda r: (
                f"{r['db_wall_us_per_move']:.0f} / {r['db_cpu_us_per_move']:.0f} "
                f"({r['db_transactions_per_move']:.2f})"
            ),
        ),
        ("bot CPU %", lambda r: f"{r['bot_cpu_pct']:.0f}"),
        ("other CPU % (other processes)", lambda r: f"{r['other_cpu_pct']:.0f}"),
        (
            "games finished / started in the run",
            lambda r: f"{r['games_over']} / {r['games_started']}",
        ),
        (
            "server RSS ready / after play, MB",
            lambda r: f"{r['rss_ready_mb']:.0f} / {r['rss_play_mb']:.0f}",
        ),
        (
            "bot errors / server log problems",
            lambda r: f"{sum(r['errors'].values())} / {len(r['log_problems'])}",
        ),
        (
            "bot library problems (trio-websocket, client side; not errors)",
            lambda r: f"{sum(r['client_problems'].values())}",
        ),
    ]
    for label, cell in rows:
        out.append(f"| {label} | " + " | ".join(cell(r) for r in games) + " |")
    out.append("")
    problems = [
        f"- {r['database']} {what}: {line}"
        for what, runs in (("logins", logins), ("games", games))
        for r in runs
        for line in [*(f"{k} x{v}" for k, v in r["errors"].items()), *r["log_problems"]]
    ]
    if problems:
        out += ["Errors:", "", *problems[:30], ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python bench/xo.py", description=__doc__.split("\n\n")[0])
    cli.add_argument("--quick", action="store_true", help="100 games, shorter windows")
    cli.add_argument(
        "--postgres",
        default="auto",
        help="auto (a throwaway cluster, the default), none, or a postgresql+psycopg:// URL",
    )
    cli.add_argument("--games", type=int, help="concurrent games (full 500, quick 100)")
    cli.add_argument("--rate", type=float, help="offered moves per second (full 500, quick 100)")
    cli.add_argument("--seconds", type=float, help="measured window of the games")
    cli.add_argument("--login-clients", type=int, help="clients logging in at once (4)")
    cli.add_argument("--login-seconds", type=float, help="window of the logins")
    cli.add_argument("--bot-processes", type=int, help="bot processes for the games (2)")
    cli.add_argument("--no-logins", action="store_true", help="skip the logins runs")
    args = cli.parse_args(argv)
    plan = Plan.make(args.quick)
    for key in ("games", "rate", "seconds", "login_clients", "login_seconds", "bot_processes"):
        if getattr(args, key) is not None:
            plan = replace(plan, **{key: getattr(args, key)})
    loadgen.raise_nofile_limit()
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = report.command_line("bench/xo.py", "--xo")
    load_before = load_average()
    started = time.monotonic()
    databases = Databases(args.postgres)
    logins: list[dict[str, Any]] = []
    games: list[dict[str, Any]] = []
    try:
        for kind in databases.kinds:
            if not args.no_logins:
                log(f"xo logins on {kind}")
                logins.append(run_logins(plan, databases, kind))
                print(json.dumps({"scenario": "xo logins", **logins[-1]}), flush=True)
            log(f"xo games on {kind}")
            result = run_games(plan, databases, kind)
            print(json.dumps({"scenario": "xo games", **result}), flush=True)
            games.append(result)
    finally:
        databases.close()
    text = markdown(
        logins,
        games,
        plan=plan,
        command=command,
        loads=(load_before, load_average()),
        postgres_note=databases.postgres_note,
        wall=time.monotonic() - started,
    )
    name = "xo-quick" if plan.quick else "xo"
    log(f"report: {report.publish(text, name).relative_to(ROOT)}")
    failed = any(r["errors"] or r["log_problems"] for r in [*logins, *games])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
