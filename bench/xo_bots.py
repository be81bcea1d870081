"""XO game bots for ``bench/xo.py``: many players in one process, over the HTTP API
(httpx) and the websocket ``/ws`` (trio-websocket), at a set pace.

One process (:func:`worker_main`, started by ``servers.Workers``) holds whole
games: player ``2k`` creates each game of pair ``k`` and player ``2k+1`` joins it,
both in this process. Commands over the pipe, one at a time, each answered with
a dict:

- ``signup`` ``{"base", "names", "password", "concurrency"}``: ``POST
  /auth/signup`` then ``POST /auth/login`` and ``GET /players/me`` per name,
  ``concurrency`` at a time; answers ``players``, ``seconds``;
- ``logins`` ``{"base", "names", "password", "until"}``: one client per name logs
  in (``POST /auth/login``) again and again until ``time.monotonic() >= until``;
  answers ``logins``, ``latencies`` (request to response);
- ``games`` ``{"base", "timeout"}``: a game per pair (:meth:`Pair.new_game`):
  ``POST /game/``, ``POST /game/connect``, both ``GET /auth/intratoken/{game}``,
  both open ``/ws`` and ``authorize``, ``GET /game/fetch/{game}`` for
  ``game_init`` (its ``starter`` moves first: X); answers ``games``, ``seconds``;
- ``play`` ``{"start", "begin", "end", "period"}`` (``time.monotonic()``
  instants): each pair moves once every ``period`` s (the pairs spread over one
  period): the player on turn sends a ``command`` (``move``, a random empty
  cell, the next sequence) and reads its socket until the reply; the latency is
  from sending the command to receiving the ``broadcast`` of that move (which
  precedes the reply), at the sender; then the opponent's socket must show the
  same broadcast. A finished game (a line of 4 or a full board, as the server's
  ``game_over`` says) is followed by a new one. Answers ``moves`` (confirmed,
  sent in [``begin``, ``end``)), ``latencies``, ``games_over``, ``games_started``,
  ``errors``;
- ``close``; ``exit``.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import httpx
import trio
import turnbased
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
)

MESSAGE_TIMEOUT = 30.0


class GameError(Exception):
    """A game went wrong; the message says how (counted, then a new game)."""


async def sleep_until(instant: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``instant`` (trio's clock has an offset)."""
    await trio.sleep(max(0.0, instant - time.monotonic()))


@dataclass(eq=False)
class Player:
    name: str
    token: str = ""
    uuid: str = ""
    ws: WebSocketConnection | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def receive(self) -> Any:
        """The next message: a reply (a JSON string holding an object) decoded twice."""
        assert self.ws is not None
        with trio.fail_after(MESSAGE_TIMEOUT):
            message = json.loads(await self.ws.get_message())
        if isinstance(message, str):
            message = json.loads(message)
        return message


def check(response: httpx.Response, what: str) -> Any:
    if response.status_code != 200:
        raise GameError(f"{what}: HTTP {response.status_code} {response.text[:100]}")
    return response.json()


def winner(board: dict[tuple[int, int], str], width: int, height: int, line: int) -> bool:
    """Whether some mark has ``line`` in a row, column or diagonal."""
    for (x, y), mark in board.items():
        for dx, dy in ((1, 0), (0, 1), (1, 1), (1, -1)):
            if all(board.get((x + dx * i, y + dy * i)) == mark for i in range(1, line)):
                return True
    return False


@dataclass(eq=False)
class Pair:
    index: int
    players: list[Player]
    fleet: Fleet
    game: str = ""
    sequence: int = 0
    board: dict[tuple[int, int], str] = field(default_factory=dict)
    mover: int = 0  # index in players of the one on turn
    size: tuple[int, int, int] = (6, 6, 4)
    due: float = 0.0

    async def new_game(self) -> None:
        """Create, join and open a game; both players authorized on ``/ws``."""
        fleet = self.fleet
        for player in self.players:
            if player.ws is not None:
                await player.ws.aclose()
                player.ws = None
        creator, opponent = self.players
        created = check(await fleet.http.post("/game/", headers=creator.auth), "POST /game/")
        self.game = created.get("game_uuid") or created["uuid"]
        check(
            await fleet.http.post(
                "/game/connect", json={"uuid": self.game}, headers=opponent.auth
            ),
            "POST /game/connect",
        )
        for player in self.players:
            token = check(
                await fleet.http.get(f"/auth/intratoken/{self.game}", headers=player.auth),
                "GET /auth/intratoken",
            )["access_token"]
            player.ws = await turnbased.connect_websocket(
                fleet.nursery, fleet.ws_url, fleet.closing_problems
            )
            await player.ws.send_message(
                json.dumps({"type": "authorize", "data": {"token": token}})
            )
            reply = await player.receive()
            while reply.get("type") == "broadcast":
                reply = await player.receive()
            if not reply.get("ok"):
                raise GameError(f"authorize: {reply.get('error')}")
        events = check(
            await fleet.http.get(f"/game/fetch/{self.game}", headers=creator.auth),
            "GET /game/fetch",
        )
        init = next(e for e in events if e["name"] == "game_init")
        params = init["params"]
        self.size = (params["grid_width"], params["grid_height"], params["winning_line_length"])
        starter = params.get("starter") or params["initiator"]
        self.mover = 0 if _same(starter, creator.uuid) else 1
        self.sequence = max(e["sequence"] for e in events)
        self.board = {}
        fleet.games_started += 1

    async def move(self) -> bool:
        """One move by the player on turn; whether the game goes on."""
        fleet = self.fleet
        mover, other = self.players[self.mover], self.players[1 - self.mover]
        width, height, line = self.size
        empty = [(x, y) for x in range(width) for y in range(height) if (x, y) not in self.board]
        x, y = random.choice(empty)
        sequence = self.sequence + 1
        command = {
            "game_uuid": self.game,
            "name": "move",
            "sequence": sequence,
            "player_uuid": mover.uuid,
            "timestamp": datetime.now(UTC).isoformat(),
            "params": {"player": mover.uuid, "cell": [x, y]},
        }
        assert mover.ws is not None
        sent = time.monotonic()
        await mover.ws.send_message(json.dumps({"type": "command", "data": command}))
        seen = None
        over = False
        while True:
            message = await mover.receive()
            if message.get("type") == "broadcast":
                event = message["data"]
                if event["name"] == "move" and event["sequence"] == sequence:
                    seen = time.monotonic()
                over = over or event["name"] == "game_over"
                self.sequence = max(self.sequence, event["sequence"])
                continue
            break  # the reply
        if not message.get("ok") or seen is None:
            error = str(message.get("error"))
            if not self.board and seen is None and self.mover == 0:
                self.mover = 1  # the first move: maybe the other one starts
                return True
            raise GameError(f"move refused: {error[:100]}")
        if fleet.begin <= sent < fleet.end:
            fleet.moves += 1
            fleet.latencies.append(seen - sent)
        while True:  # the opponent sees the same move
            message = await other.receive()
            if message.get("type") == "broadcast":
                if message["data"]["name"] == "game_over":
                    over = True
                if message["data"]["sequence"] == sequence:
                    break
        self.board[(x, y)] = "XO"[self.mover]
        self.mover = 1 - self.mover
        if not over and (
            winner(self.board, width, height, line) or len(self.board) == width * height
        ):
            # the game_over broadcast may follow the reply: read it
            message = await mover.receive()
            over = message.get("type") == "broadcast" and message["data"]["name"] == "game_over"
            if not over:
                raise GameError("no game_over after the last move")
        return not over

    async def play(self) -> None:
        fleet = self.fleet
        while fleet.playing:
            due = max(self.due + fleet.period, time.monotonic())
            self.due = due
            await sleep_until(due)
            if not fleet.playing:
                return
            try:
                if await self.move():
                    continue
                fleet.games_over += 1
            except (GameError, ConnectionClosed, HandshakeError, httpx.HTTPError) as error:
                fleet.errors[f"{type(error).__name__}: {error}"[:160]] += 1
            except trio.TooSlowError:
                fleet.errors[f"no answer within {MESSAGE_TIMEOUT:g} s"] += 1
            await self.replace_game()

    async def replace_game(self) -> None:
        """A new game for the pair; on failure, counted and tried again a second later."""
        fleet = self.fleet
        while fleet.playing:
            try:
                await self.new_game()
                return
            except (GameError, ConnectionClosed, HandshakeError, httpx.HTTPError) as error:
                fleet.errors[f"new game: {type(error).__name__}: {error}"[:160]] += 1
            except trio.TooSlowError:
                fleet.errors[f"new game: no answer within {MESSAGE_TIMEOUT:g} s"] += 1
            await trio.sleep(1.0)


def _same(a: str, b: str) -> bool:
    return a.replace("-", "").lower() == b.replace("-", "").lower()


class Fleet:
    """The players of one process."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.http: httpx.AsyncClient = httpx.AsyncClient()
        self.ws_url = ""
        self.players: list[Player] = []
        self.pairs: list[Pair] = []
        self.errors: Counter[str] = Counter()
        self.closing_problems: Counter[str] = Counter()  # of trio-websocket, not the server
        self.playing = False
        self.begin = self.end = self.period = 0.0
        self.moves = self.games_over = self.games_started = 0
        self.latencies: list[float] = []

    def handlers(self) -> dict[str, Any]:
        return {
            "signup": self.signup,
            "logins": self.logins,
            "games": self.games,
            "play": self.play,
            "close": self.close,
        }

    def connect(self, base: str) -> None:
        if str(self.http.base_url) != base:
            # Idle connections are dropped after 2 s, before Hypercorn closes them (its
            # keep_alive_timeout is 5 s): else a request sent on a connection the server
            # is closing fails ("Server disconnected without sending a response").
            limits = httpx.Limits(
                max_connections=200, max_keepalive_connections=200, keepalive_expiry=2.0
            )
            self.http = httpx.AsyncClient(base_url=base, timeout=120.0, limits=limits)
            self.ws_url = base.replace("http://", "ws://") + "/ws"

    async def login(self, player: Player, password: str) -> None:
        form = {"username": player.name, "password": password}
        token = check(await self.http.post("/auth/login", data=form), "POST /auth/login")
        player.token = token["access_token"]

    async def signup(self, arg: dict[str, Any]) -> dict[str, Any]:
        self.connect(arg["base"])
        started = time.monotonic()
        names, password = arg["names"], arg["password"]
        self.players = [Player(name) for name in names]
        self.pairs = [
            Pair(i // 2, self.players[i : i + 2], self) for i in range(0, len(names) - 1, 2)
        ]
        limiter = trio.CapacityLimiter(arg["concurrency"])
        done = 0

        async def sign_up(player: Player) -> None:
            nonlocal done
            async with limiter:
                try:
                    form = {"username": player.name, "password": password}
                    check(await self.http.post("/auth/signup", data=form), "POST /auth/signup")
                    await self.login(player, password)
                    me = check(await self.http.get("/players/me", headers=player.auth), "me")
                    player.uuid = me["uuid"]
                    done += 1
                except (GameError, httpx.HTTPError) as error:
                    self.errors[f"signup: {type(error).__name__}: {error}"[:160]] += 1

        async with trio.open_nursery() as nursery:
            for player in self.players:
                nursery.start_soon(sign_up, player)
        return {"players": done, "seconds": time.monotonic() - started}

    async def logins(self, arg: dict[str, Any]) -> dict[str, Any]:
        self.connect(arg["base"])
        latencies: list[float] = []

        async def client(name: str) -> None:
            player = Player(name)
            while time.monotonic() < arg["until"]:
                sent = time.monotonic()
                try:
                    await self.login(player, arg["password"])
                except (GameError, httpx.HTTPError) as error:
                    self.errors[f"login: {type(error).__name__}: {error}"[:160]] += 1
                    continue
                latencies.append(time.monotonic() - sent)

        async with trio.open_nursery() as nursery:
            for name in arg["names"]:
                nursery.start_soon(client, name)
        return {"logins": len(latencies), "latencies": latencies, "errors": dict(self.errors)}

    async def games(self, arg: dict[str, Any]) -> dict[str, Any]:
        self.connect(arg["base"])
        started = time.monotonic()
        limiter = trio.CapacityLimiter(arg.get("concurrency", 20))
        ready = 0

        async def start(pair: Pair) -> None:
            nonlocal ready
            async with limiter:
                try:
                    await pair.new_game()
                    ready += 1
                except (
                    GameError,
                    ConnectionClosed,
                    HandshakeError,
                    httpx.HTTPError,
                    trio.TooSlowError,
                ) as error:
                    self.errors[f"new game: {type(error).__name__}: {error}"[:160]] += 1

        with trio.move_on_after(arg["timeout"]):
            async with trio.open_nursery() as nursery:
                for pair in self.pairs:
                    nursery.start_soon(start, pair)
        return {"games": ready, "seconds": time.monotonic() - started}

    async def play(self, arg: dict[str, Any]) -> dict[str, Any]:
        start, self.begin, self.end = arg["start"], arg["begin"], arg["end"]
        self.period = arg["period"]
        self.moves = self.games_over = self.games_started = 0
        self.latencies = []
        count = max(len(self.pairs), 1)
        self.playing = True
        async with trio.open_nursery() as nursery:
            for pair in self.pairs:
                pair.due = start + self.period * (pair.index / count - 1)
                nursery.start_soon(pair.play)
            await sleep_until(self.end)
            self.playing = False
            nursery.cancel_scope.deadline = trio.current_time() + 10  # moves under way
        return {
            "moves": self.moves,
            "latencies": self.latencies,
            "games_over": self.games_over,
            "games_started": self.games_started,
            "errors": dict(self.errors),
            "client_problems": dict(self.closing_problems),
        }

    async def close(self, _arg: dict[str, Any]) -> dict[str, Any]:
        for player in self.players:
            if player.ws is not None:
                await player.ws.aclose()
        await self.http.aclose()
        return {}


def worker_main(pipe: Connection, index: int) -> None:
    """The entry point of one bot process (``servers.Workers``, spawn)."""
    import turnbased

    turnbased.run_trio_worker(pipe, lambda nursery: Fleet(nursery).handlers())
