"""duorelay benchmarks: the relay against two baselines, in one run.

How to run (from the repository root)::

    nox -s bench                 # the full suite (about 14 minutes), updates docs/benchmarks.md
    nox -s bench -- --quick      # a short version (under 2 minutes), report in bench/results/

or, in any virtualenv with ``pip install -e . picows uvloop websockets psutil py-spy``::

    python bench/run.py [--quick] [--servers duorelay,raw-asgi] [--scenarios pingpong,idle]

Servers, each started by this harness as its own process on a free loopback
port, one fresh process per scenario:

- ``duorelay``: ``python -m duorelay`` with its default Hypercorn settings, the
  rate limit and connection caps lifted (``DUORELAY_MAX_RATE``,
  ``DUORELAY_MAX_BURST``, ``DUORELAY_MAX_CONNECTIONS``,
  ``DUORELAY_MAX_CONNECTIONS_PER_ADDRESS``), logs to a file;
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

This file is the command line; the work is in ``servers.py`` (the processes),
``scenarios.py`` (the loads and their measurement) and ``report.py`` (the output).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import report
import scenarios
from scenarios import SCENARIOS, Plan
from servers import EXTRA_SERVERS, RESULTS, ROOT, SERVER_NAMES, log


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
    selected = [name for name in args.scenarios.split(",") if name]
    for name in servers:
        if name not in SERVER_NAMES + EXTRA_SERVERS:
            cli.error(f"unknown server {name!r}; choose from {', '.join(SERVER_NAMES)}")
    for name in selected:
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
    command = report.command_line("bench/run.py")
    rows = scenarios.run_scenarios(plan, servers, selected)
    profiles = scenarios.run_profiles(plan, servers) if profile else []
    memory = scenarios.run_memory(plan, servers) if profile else []

    wall = time.monotonic() - started
    text = report.render(
        rows,
        plan=plan,
        machine=report.machine(),
        command=command,
        wall_seconds=wall,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        profiles=profiles,
        memory=memory,
    )
    out = report.save(rows, text, args.name or ("quick" if plan.quick else "full"))
    log(f"report: {out.relative_to(ROOT)}")
    if docs:
        report.update_docs(report.DOCS, text)
        log(f"report written into {report.DOCS.relative_to(ROOT)}")
    log(f"wall time {wall:.0f} s")
    failed = [r for r in rows for res in r.results.values() if "failed" in res]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
