"""Instant Santorini bots for ``bench/santorini.py``: many bots in one process.

A bot answers each request at once with a legal move, so that the referee, not
the bots, sets the pace: placements are the built-in good bot's
(:func:`duorelay.services.santorini_clients.good_place`); an action is
:func:`instant_action`, a scan of the board as sent (the built-in
``good_action`` rebuilds the game state and lists every legal move: about 170 µs
a turn against about 10 µs here). Messages are read with the protocol's own
sans-IO stream and classifier (:mod:`duorelay.protocols.santorini`).

One process (:func:`worker_main`, started by ``servers.Workers``) holds many
bots on blocking sockets multiplexed with :mod:`selectors` (no event loop
library: less CPU per message than trio). Commands over the pipe, one at a
time, each answered with a dict:

- ``register`` ``{"port", "names"}``: connect one bot per name, in order, and
  send its name (registration order is that order);
- ``play`` ``{"until"}``: answer requests until every bot has its Results or
  its connection ended, or until ``time.monotonic() >= until`` (then the bots
  stay connected): ``moves`` answered (placements + actions), ``results`` per
  bot, ``ended`` (connections that ended without Results), ``errors``;
- ``close``: close every bot's connection; ``exit``.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from duorelay.games.santorini import SIZE
from duorelay.protocols import santorini as wire
from duorelay.services.santorini_clients import good_place

NEIGHBOURS = ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1))
EAST_WEST = {-1: "WEST", 0: "PUT", 1: "EAST"}
NORTH_SOUTH = {-1: "NORTH", 0: "PUT", 1: "SOUTH"}
READ_SIZE = 65536


def instant_action(board: list[list[int | str]], me: str) -> list[str] | str:
    """A winning move if there is one, else the first legal move-and-build
    (worker 1 first, neighbours from the north-west), else giving up (``me``).
    ``board`` is the take-turn message as decoded JSON (rows may be ragged)."""
    heights = [[0] * SIZE for _ in range(SIZE)]
    occupied: set[tuple[int, int]] = set()
    mine: dict[str, tuple[int, int]] = {}
    for y, row in enumerate(board):
        for x, cell in enumerate(row):
            if isinstance(cell, str):
                heights[y][x] = int(cell[0])
                occupied.add((x, y))
                if cell[1:-1] == me:
                    mine[cell[1:]] = (x, y)
            else:
                heights[y][x] = cell
    first: list[str] | None = None
    for worker in sorted(mine):
        x, y = mine[worker]
        for dx, dy in NEIGHBOURS:
            nx, ny = x + dx, y + dy
            if not (0 <= nx < SIZE and 0 <= ny < SIZE) or (nx, ny) in occupied:
                continue
            height = heights[ny][nx]
            if height > 3 or height > heights[y][x] + 1:
                continue
            if height == 3:
                return [worker, EAST_WEST[dx], NORTH_SOUTH[dy]]
            if first is not None:
                continue
            for bx, by in NEIGHBOURS:
                tx, ty = nx + bx, ny + by
                if (
                    0 <= tx < SIZE
                    and 0 <= ty < SIZE
                    and heights[ty][tx] < 4
                    and ((tx, ty) == (x, y) or (tx, ty) not in occupied)
                ):
                    build = [EAST_WEST[bx], NORTH_SOUTH[by]]
                    first = [worker, EAST_WEST[dx], NORTH_SOUTH[dy], *build]
                    break
    return first if first is not None else me


class Bot:
    """One connected bot: its socket, its reader, what it was told."""

    def __init__(self, name: str, sock: socket.socket) -> None:
        self.name = name
        self.sock = sock
        self.values = wire.JsonStream(READ_SIZE)
        self.results: list[list[str]] | None = None
        self.ended = False

    def reply(self, value: object) -> bytes | None:
        """The reply to one server message (``None``: no reply)."""
        message = wire.classify(value)
        if isinstance(message, wire.PlayingAs):
            self.name = message.name
        elif isinstance(message, wire.PlacementRequest):
            place = good_place(message.workers)
            return f"[{place.x},{place.y}]\n".encode()
        elif isinstance(message, wire.TakeTurn):
            assert isinstance(value, list)
            return wire.encode(instant_action(value, self.name)).encode()
        elif isinstance(message, wire.Results):
            self.results = wire.results_message(message.results)
        return None


class Bots:
    """The bots of one process."""

    def __init__(self) -> None:
        self.bots: list[Bot] = []
        self.selector = selectors.DefaultSelector()
        self.errors: Counter[str] = Counter()

    def register(self, port: int, names: list[str]) -> dict[str, Any]:
        for name in names:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(wire.encode(name).encode())
            bot = Bot(name, sock)
            self.bots.append(bot)
            self.selector.register(sock, selectors.EVENT_READ, bot)
        return {"connected": len(names)}

    def play(self, until: float) -> dict[str, Any]:
        moves = 0
        live = sum(1 for bot in self.bots if not bot.ended)
        while live and time.monotonic() < until:
            for key, _ in self.selector.select(timeout=min(0.1, until - time.monotonic())):
                bot: Bot = key.data
                try:
                    data = bot.sock.recv(READ_SIZE)
                except OSError as error:
                    self.errors[f"recv: {error}"] += 1
                    data = b""
                bot.values.receive_data(data)
                try:
                    while (value := bot.values.next_value()) is not wire.NEED_DATA:
                        if value is wire.END:
                            self._end(bot)
                            live -= 1
                            break
                        answer = bot.reply(value)
                        if answer is not None:
                            bot.sock.sendall(answer)
                            moves += 1
                except (wire.SantoriniError, OSError) as error:
                    self.errors[f"{type(error).__name__}: {error}"] += 1
                    self._end(bot)
                    live -= 1
        results = [bot.results for bot in self.bots]
        ended = sum(1 for bot in self.bots if bot.ended and bot.results is None)
        if ended:
            self.errors["connection ended without Results"] += ended
        irregular = sum(
            1 for bot in self.bots for r in bot.results or [] if len(r) == 3 and r[1] == bot.name
        )
        if irregular:
            self.errors["a bot lost as irregular"] += irregular
        errors, self.errors = dict(self.errors), Counter()
        return {"moves": moves, "results": results, "ended": ended, "errors": errors}

    def _end(self, bot: Bot) -> None:
        if not bot.ended:
            bot.ended = True
            self.selector.unregister(bot.sock)
            bot.sock.close()

    def close(self) -> dict[str, Any]:
        for bot in self.bots:
            self._end(bot)
        self.bots = []
        return {}


def worker_main(pipe: Connection, index: int) -> None:
    """The entry point of one bot process (``servers.Workers``, spawn)."""
    import loadgen

    loadgen.raise_nofile_limit()
    bots = Bots()
    while True:
        command, arg = pipe.recv()
        try:
            if command == "register":
                pipe.send(bots.register(arg["port"], arg["names"]))
            elif command == "play":
                pipe.send(bots.play(arg["until"]))
            elif command == "close":
                pipe.send(bots.close())
            elif command == "exit":
                with contextlib.suppress(OSError):
                    bots.close()
                pipe.send({})
                return
            else:
                pipe.send({"fatal": f"unknown command {command!r}"})
        except Exception as error:  # reported to the harness, which raises BenchError
            pipe.send({"fatal": f"{type(error).__name__}: {error}"})
