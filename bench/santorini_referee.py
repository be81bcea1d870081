"""What the Santorini referee itself costs per move, apart from the TCP transport.

The issue's target is "the referee adds under 200 µs CPU per move".
``bench/santorini.py`` measures the whole server process (TCP sessions, the
kernel's ``send`` and ``epoll``, the referee, the store). This measures the
referee alone: the real :class:`~duorelay.referee.tournament.Tournament`
(its :class:`~duorelay.referee.santorini.Series`, the rules, the
:class:`~duorelay.referee.players.Asker` with its time limit per call, the
:class:`~duorelay.referee.record.Recorder` and its writer) on the real SQLite
store (a fresh file, WAL, ``synchronous=FULL``, as the server), against
in-process players that answer at once through the same player interface
(:class:`~duorelay.referee.players.RemotePlayer` and its connection's outbox),
without sockets:

- a player's *connection* is an outbox (a trio memory channel, as a session's)
  and a task that reads it, as a session's writer and reader would: it
  decodes each request, computes the instant bot's reply
  (``santorini_bots.instant_action``, the built-in good bot's placements),
  encodes it, and hands it over as the server's reader does: ``wire.loads``
  of the text, then ``RemotePlayer.deliver``.
- the bot's own share (decoding the request, choosing, encoding the reply) is
  timed with ``time.thread_time`` and subtracted; the server-side decoding of
  the reply stays in.

CPU is ``time.process_time()`` (every thread: the store's worker threads
too) over ``tournaments`` round robins of 10 players (45 best-of-3 series
each), after the store's migrations; per move (placements and actions
answered). One process per run (``python bench/santorini_referee.py
[--no-store] [--tournaments N]``: one JSON line on stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from santorini_bots import instant_action  # noqa: E402

from duorelay.protocols import santorini as wire  # noqa: E402
from duorelay.referee.players import RemotePlayer  # noqa: E402
from duorelay.referee.record import Recorder  # noqa: E402
from duorelay.referee.tournament import Tournament  # noqa: E402
from duorelay.services.santorini_clients import good_place  # noqa: E402
from duorelay.store.gateway import SQLITE_SYNCHRONOUS, Store, Synchronous  # noqa: E402

PLAYERS = 10
TIME_PER_CALL = 1.2  # the server's default (docs/santorini.md section 5)
OUTBOX = 16


class Connection:
    """A player's connection without a socket: the outbox and its closing."""

    def __init__(self) -> None:
        self.outbox, self.receive = trio.open_memory_channel[str](OUTBOX)

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        self.outbox.close()


class Player:
    """An instant bot on the far side of a :class:`Connection`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.connection = Connection()
        self.remote = RemotePlayer(name, self.connection)  # type: ignore[arg-type]
        self.moves = 0
        self.bot_seconds = 0.0
        self.results: object = None

    async def run(self) -> None:
        """Read the outbox until it is closed; answer each request at once."""
        clock = time.thread_time
        async for frame in self.connection.receive:
            began = clock()
            value = wire.loads(frame)
            message = wire.classify(value)
            reply: str | None = None
            if isinstance(message, wire.PlacementRequest):
                place = good_place(message.workers)
                reply = wire.encode([place.x, place.y])
            elif isinstance(message, wire.TakeTurn):
                reply = wire.encode(instant_action(value, self.name))  # type: ignore[arg-type]
            elif isinstance(message, wire.Results):
                self.results = value
            elif isinstance(message, wire.PlayingAs):
                self.name = message.name
            self.bot_seconds += clock() - began
            if reply is not None:
                self.moves += 1
                self.remote.deliver(wire.loads(reply))  # what the server's reader does


async def round_robins(store: Store | None, tournaments: int) -> dict[str, Any]:
    recorder = Recorder(store)
    moves = 0
    bot_seconds = 0.0
    cpu = wall = system = main = 0.0
    for number in range(tournaments):
        players = [Player(f"bot{chr(ord('a') + i)}") for i in range(PLAYERS)]
        began_cpu, began_wall = time.process_time(), time.perf_counter()
        began_system, began_main = os.times().system, time.thread_time()
        async with trio.open_nursery() as nursery:
            for player in players:
                nursery.start_soon(player.run)
            tournament = Tournament(
                [p.remote for p in players], time_per_call=TIME_PER_CALL, recorder=recorder
            )
            results = await tournament.run()
        cpu += time.process_time() - began_cpu
        system += os.times().system - began_system
        main += time.thread_time() - began_main
        wall += time.perf_counter() - began_wall
        if len(results) != PLAYERS * (PLAYERS - 1) // 2 or any(p.results is None for p in players):
            raise RuntimeError(f"tournament {number}: not every player got every result")
        if any(len(r) == 3 for r in wire.results_message(results)):
            raise RuntimeError(f"tournament {number}: an irregular result")
        moves += sum(p.moves for p in players)
        bot_seconds += sum(p.bot_seconds for p in players)
    return {
        "moves": moves,
        "referee_cpu_us_per_move": 1e6 * (cpu - bot_seconds) / moves,
        "bot_cpu_us_per_move": 1e6 * bot_seconds / moves,
        "total_cpu_us_per_move": 1e6 * cpu / moves,
        "system_cpu_us_per_move": 1e6 * system / moves,
        "store_threads_cpu_us_per_move": 1e6 * (cpu - main) / moves,
        "moves_per_s": moves / wall,
        "transactions": recorder.batches,
        "writes": recorder.writes,
    }


async def main_async(
    use_store: bool, tournaments: int, synchronous: Synchronous = SQLITE_SYNCHRONOUS
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'referee.db'}"
        store = Store(url, synchronous) if use_store else None
        try:
            if store is not None:
                await store.migrate()
            figures = await round_robins(store, tournaments)
            if store is not None:
                figures["stored_moves"] = await store.run(
                    lambda c: c.exec_driver_sql(
                        "SELECT count(*) FROM match_events WHERE kind != 'outcome'"
                    ).scalar_one()
                )
                if figures["stored_moves"] != figures["moves"]:
                    raise RuntimeError("stored moves differ from moves played")
            return figures
        finally:
            if store is not None:
                store.close()


def main(argv: list[str] | None = None) -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    cli.add_argument("--no-store", action="store_true", help="no event log (store=None)")
    cli.add_argument("--tournaments", type=int, default=3, help="round robins of 10 (3)")
    cli.add_argument(
        "--synchronous",
        choices=["full", "normal"],
        default=SQLITE_SYNCHRONOUS,
        help="the store's DUORELAY_SQLITE_SYNCHRONOUS (default: the server's default)",
    )
    args = cli.parse_args(argv)
    figures = trio.run(main_async, not args.no_store, args.tournaments, args.synchronous)
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
