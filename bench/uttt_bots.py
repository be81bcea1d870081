"""Ultimate tic-tac-toe bots for ``bench/uttt.py``: many websocket clients
(picows on uvloop, as the relay's load generator) in one process, playing random
legal moves at a set pace.

One process (:func:`worker_main`, started by ``servers.Workers``) holds the bots
of whole matches: bot ``2k`` challenges bot ``2k+1`` by name, so both players of
a match live here. Commands over the pipe, one at a time, each answered with a
dict:

- ``login`` ``{"url", "names", "pw", "concurrency"}``: connect one bot per name
  to ``ws://HOST:PORT/uttt`` and send ``login`` (a registered account: a
  password registers the name; ``concurrency`` logins at a time, since each
  costs the server an Argon2 hash); answers ``logged_in``, ``seconds``;
- ``pair`` ``{"timeout"}``: every even bot sends ``match_request`` naming the next
  bot; answers once every bot has seen the ``match_update`` of its match:
  ``matches``, ``seconds``;
- ``play`` ``{"start", "begin", "end", "period"}`` (``time.monotonic()``
  instants, shared by every process on Linux): from ``start``, the player on
  turn of each match moves ``period`` s after the previous move of that match
  was due, or at once if its turn came later than that (the first moves of the
  matches spread over one period), so the offered load is ``matches / period``
  moves a second; a finished match is replaced by a
  new ``match_request`` of the same pair. Until ``end``; answers ``moves``
  (moves sent in [``begin``, ``end``) and confirmed), ``latencies`` (their
  move-to-update latency: from sending ``move`` to receiving the
  ``match_update`` whose ``last_move`` is that move, at the mover), ``late``
  (turns that came, in the window, after the move was already due: the server
  fell behind the pace, and that match moves more slowly than offered), ``games_over``, ``errors``;
- ``close``; ``exit``.

A move is a random legal move computed from the ``match_state`` of the last
``match_update`` (:func:`legal_moves`: the sub-board of the last move's cell
unless it is decided, then any undecided one; its empty cells).

The bots were trio-websocket clients until 2026-11-27: they used about 550 µs
of CPU per move, on the cores the server runs on; picows callbacks use a
fraction of that (docs/benchmarks.md, "UTTT referee").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import turnbased
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

TEXT = WSMsgType.TEXT
CLOSE = WSMsgType.CLOSE

Cell = tuple[int, int, int, int]  # sub_x, sub_y, x, y


def legal_moves(state: dict[str, Any]) -> list[Cell]:
    """The legal moves of the player on turn in a ``match_state`` (docs: UTTT.md, Rules)."""
    if state["game_over"]:
        return []
    cells, boards, last = state["complete_field"], state["global_field"], state["last_move"]
    if last is not None and boards[int(last["y"])][int(last["x"])] == 0:
        open_boards = [(int(last["x"]), int(last["y"]))]
    else:
        open_boards = [(sx, sy) for sy in range(3) for sx in range(3) if boards[sy][sx] == 0]
    return [
        (sx, sy, x, y)
        for sx, sy in open_boards
        for y in range(3)
        for x in range(3)
        if cells[sy * 3 + y][sx * 3 + x] == 0
    ]


@dataclass(eq=False)
class Pair:
    """The two bots of a match, its current match and its pace."""

    index: int
    bots: list[Bot] = field(default_factory=list)
    match: str | None = None
    state: dict[str, Any] | None = None  # the last match_state of the current match
    due: float = 0.0  # when the last move of the current match was due
    matched: asyncio.Event = field(default_factory=asyncio.Event)


class Bot(WSListener):  # type: ignore[misc]
    """One player's connection: picows calls :meth:`on_ws_frame` for each message."""

    def __init__(self, name: str, pair: Pair, fleet: Fleet) -> None:
        self.name = name
        self.pair = pair
        self.fleet = fleet
        self.transport: WSTransport | None = None
        self.pending: dict[str, tuple[Cell, float]] = {}
        self.login_answer: asyncio.Future[dict[str, Any]] | None = None

    def send(self, kind: str, data: Any) -> None:
        if self.transport is not None:
            self.transport.send(TEXT, json.dumps({"type": kind, "data": data}).encode())

    # picows callbacks

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == CLOSE:
            transport.disconnect()
            return
        if frame.msg_type != TEXT:
            return
        message = json.loads(frame.get_payload_as_bytes())
        kind, data = message.get("type"), message.get("data")
        errors = self.fleet.errors
        if kind == "match_update":
            self.update(data)
        elif kind == "login_response":
            if self.login_answer is not None and not self.login_answer.done():
                self.login_answer.set_result(data)
        elif kind in ("error", "move_response"):
            errors[f"{kind}: {str(data)[:120]}"] += 1
        elif kind == "match_request_response" and not data.get("success"):
            errors[f"match_request refused: {data.get('msg')}"] += 1

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.transport = None
        if self.login_answer is not None and not self.login_answer.done():
            self.login_answer.set_exception(ConnectionError("closed before login_response"))
        elif not self.fleet.closing:
            self.fleet.errors["connection closed by the server"] += 1

    # the game

    def update(self, data: dict[str, Any]) -> None:
        now = time.monotonic()
        match, state = data["id"], data["match_state"]
        fleet, pair = self.fleet, self.pair
        sent = self.pending.pop(match, None)
        if sent is not None:
            cell, at = sent
            last = state["last_move"]
            if last is not None and cell == tuple(
                int(last[k]) for k in ("sub_x", "sub_y", "x", "y")
            ):
                if fleet.begin <= at < fleet.end:
                    fleet.moves += 1
                    fleet.latencies.append(now - at)
            else:
                self.pending[match] = sent  # an update of something else: keep waiting
        if state["game_over"]:
            if self is pair.bots[0] and match == pair.match:
                fleet.games_over += 1
                pair.match = pair.state = None
                if fleet.playing:
                    self.challenge()
            return
        if pair.match != match:
            pair.match = match
        if match == pair.match and self is pair.bots[0]:
            pair.state = state
            pair.matched.set()
        if state["active_player"] == self.name and fleet.playing and match == pair.match:
            self.turn(match, state, now)

    def challenge(self) -> None:
        self.send("match_request", {"player": self.pair.bots[1].name})

    def turn(self, match: str, state: dict[str, Any], came: float) -> None:
        """This bot's turn came at ``came``: move when it is due."""
        fleet, pair = self.fleet, self.pair
        due = max(pair.due + fleet.period, came)
        if came > pair.due + fleet.period and fleet.begin <= came < fleet.end:
            fleet.late += 1  # the turn came after the move was due: the server is behind
        pair.due = due
        fleet.loop.call_later(max(0.0, due - time.monotonic()), self.move, match, state)

    def move(self, match: str, state: dict[str, Any]) -> None:
        fleet = self.fleet
        if not fleet.playing or match != self.pair.match:
            return
        choices = legal_moves(state)
        if not choices:
            fleet.errors["no legal move on my turn"] += 1
            return
        cell = random.choice(choices)
        self.pending[match] = (cell, time.monotonic())
        sx, sy, x, y = cell
        self.send("move", {"id": match, "sub_x": sx, "sub_y": sy, "x": x, "y": y})


class Fleet:
    """The bots of one process."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.bots: list[Bot] = []
        self.pairs: list[Pair] = []
        self.errors: Counter[str] = Counter()
        self.closing = False
        self.playing = False
        self.begin = self.end = self.period = 0.0
        self.moves = self.late = self.games_over = 0
        self.latencies: list[float] = []

    async def login(self, arg: dict[str, Any]) -> dict[str, Any]:
        names: list[str] = arg["names"]
        semaphore = asyncio.Semaphore(arg["concurrency"])
        started = time.monotonic()
        for index in range(0, len(names) - 1, 2):
            pair = Pair(index // 2)
            pair.bots = [Bot(names[index], pair, self), Bot(names[index + 1], pair, self)]
            self.pairs.append(pair)
            self.bots += pair.bots
        logged_in = 0

        async def log_in(bot: Bot) -> None:
            nonlocal logged_in
            async with semaphore:
                bot.login_answer = self.loop.create_future()
                try:
                    await ws_connect(lambda: bot, arg["url"], enable_auto_pong=True)
                    bot.send("login", {"name": bot.name, "pw": arg["pw"]})
                    answer = await bot.login_answer
                except Exception as error:  # refused, reset, closed
                    self.errors[f"login: {type(error).__name__}: {error}"[:160]] += 1
                    return
                finally:
                    bot.login_answer = None
            if not answer.get("success"):
                self.errors[f"login refused: {answer.get('msg')}"] += 1
                return
            logged_in += 1

        await asyncio.gather(*(log_in(bot) for bot in self.bots))
        return {"logged_in": logged_in, "seconds": time.monotonic() - started}

    async def pair(self, arg: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        for pair in self.pairs:
            pair.bots[0].challenge()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(pair.matched.wait() for pair in self.pairs)), arg["timeout"]
            )
        matches = sum(pair.matched.is_set() for pair in self.pairs)
        return {"matches": matches, "seconds": time.monotonic() - started}

    async def play(self, arg: dict[str, Any]) -> dict[str, Any]:
        start, self.begin, self.end = arg["start"], arg["begin"], arg["end"]
        self.period = arg["period"]
        self.moves = self.late = self.games_over = 0
        self.latencies = []
        count = max(len(self.pairs), 1)
        for pair in self.pairs:
            # the first move of pair i is due at start + i / count periods
            pair.due = start + self.period * (pair.index / count - 1)
        self.playing = True
        for pair in self.pairs:
            state = pair.state
            if state is not None and pair.match is not None:
                mover = pair.bots[0] if state["active_player"] == pair.bots[0].name else None
                mover = mover or pair.bots[1]
                mover.turn(pair.match, state, start)
        await asyncio.sleep(max(0.0, self.end - time.monotonic()))
        self.playing = False
        await asyncio.sleep(min(2.0, 2 * self.period))  # answers to the last moves
        return {
            "moves": self.moves,
            "latencies": self.latencies,
            "late": self.late,
            "games_over": self.games_over,
            "errors": dict(self.errors),
            "client_problems": {},
        }

    async def close(self, _arg: dict[str, Any]) -> dict[str, Any]:
        self.closing = True
        for bot in self.bots:
            if bot.transport is not None:
                bot.transport.send_close()
                bot.transport.disconnect()
        return {}


async def _serve(pipe: Connection) -> None:
    """The command loop: each command answers a dict (an exception: ``{"fatal": ...}``)."""
    loop = asyncio.get_running_loop()
    fleet = Fleet(loop)
    handlers = {"login": fleet.login, "pair": fleet.pair, "play": fleet.play, "close": fleet.close}
    while True:
        command, arg = await loop.run_in_executor(None, pipe.recv)
        if command == "exit":
            fleet.closing = True
            for bot in fleet.bots:
                if bot.transport is not None:
                    bot.transport.disconnect(graceful=False)
            with contextlib.suppress(OSError):
                pipe.send({})
            return
        pipe.send(await turnbased.answer(handlers, command, arg))


def worker_main(pipe: Connection, index: int) -> None:
    """The entry point of one bot process (``servers.Workers``, spawn)."""
    import loadgen
    import uvloop

    loadgen.raise_nofile_limit()
    uvloop.run(_serve(pipe))
