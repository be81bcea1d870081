"""The Santorini observers: JSON API, live feeds, slow spectators, restarts.

The real app on real Hypercorn (``start_server``) runs the Santorini service
beside the relay (``santorini_port=0``) on a SQLite file; players are the
built-in bots over TCP, paced by the test where it matters (:class:`Paced`
answers only when allowed: no sleeps); spectators are real websocket clients.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import wsproto.events as ws_events
from trio_websocket import ConnectionClosed, WebSocketConnection

from conftest import RawClient, Server, StartServer, closed_with, http_get, settle
from duorelay.games import santorini as rules
from duorelay.games.base import Player
from duorelay.protocols import santorini as wire
from duorelay.referee.spectators import SpectatorHub
from duorelay.services.santorini_clients import Bot, Kind
from duorelay.services.santorini_web import OFF

EMPTY = [[0] * 6 for _ in range(6)]


class Paced(Bot):
    """A good bot that holds every reply until the test allows it.

    ``requests`` counts the requests it was asked so far (it holds the last
    one until allowed); :meth:`allow` lets ``count`` more replies go,
    :meth:`let_go` all of them.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.requests = 0
        self.allowed: int | None = 0
        self._lot = trio.lowlevel.ParkingLot()

    async def register(self, stream: trio.SocketStream) -> None:
        await Bot.send(self, stream, self.name)

    async def send(self, stream: trio.SocketStream, value: object) -> None:
        self.requests += 1
        self._lot.unpark_all()
        while self.allowed == 0:
            await self._lot.park()
        if self.allowed is not None:
            self.allowed -= 1
        await super().send(stream, value)

    def allow(self, count: int = 1) -> None:
        assert self.allowed is not None
        self.allowed += count
        self._lot.unpark_all()

    def let_go(self) -> None:
        self.allowed = None
        self._lot.unpark_all()

    async def holding(self, request: int) -> None:
        """Wait until the bot holds its ``request``-th request (1-based)."""
        while self.requests < request:
            await self._lot.park()


class Dawdler(Bot):
    """Plays long games: never climbs, takes the first move-and-build; gives up
    when it has none."""

    def turn(self, request: wire.TakeTurn) -> object:
        board = request.board
        opponent = next(name[:-1] for name, _ in board.workers if name[:-1] != self.name)
        state = rules.state_from_board(board, (self.name, opponent), Player.FIRST)
        moves = [m for m in rules.legal_moves(state) if isinstance(m, rules.MoveBuild)]
        return wire.encode_action(moves[0] if moves else rules.GiveUp(self.name))


class PacedDawdler(Paced, Dawdler):
    """Paced, then long games."""


async def start_santorini(
    start_server: StartServer, tmp_path: Path, players: int = 2, **overrides: Any
) -> Server:
    server: Server = await start_server(
        santorini_port=0,
        santorini_max_players=players,
        santorini_time_per_call=60.0,
        database_url=f"sqlite:///{tmp_path / 'observers.db'}",
        **overrides,
    )
    return server


def santorini_port(server: Server) -> int:
    assert server.app.santorini is not None and server.app.santorini.address is not None
    return server.app.santorini.address[1]


async def register(server: Server, bots: Iterable[Bot], nursery: trio.Nursery) -> None:
    """Register ``bots`` in order, then let each play in ``nursery`` until its end."""
    for bot in bots:
        stream = await trio.open_tcp_stream("127.0.0.1", santorini_port(server))
        await bot.register(stream)
        await settle()
        nursery.start_soon(_play, bot, stream)


async def _play(bot: Bot, stream: trio.SocketStream) -> None:
    async with stream:
        await bot.play(stream)


async def get_json(server: Server, path: str) -> tuple[int, Any]:
    status, headers, body = await http_get(server, path)
    assert headers["content-type"] == "application/json"
    return status, json.loads(body)


async def tournaments_over(server: Server, count: int) -> None:
    santorini = server.app.santorini
    assert santorini is not None
    while santorini.tournaments < count:
        await settle()


def without_times(value: Any) -> Any:
    """``value`` with every ``*_at`` field checked to be an ISO time (or null) and removed."""
    if isinstance(value, list):
        return [without_times(item) for item in value]
    if isinstance(value, dict):
        kept = {}
        for key, item in value.items():
            if key.endswith("_at"):
                assert item is None or item.endswith("+00:00"), (key, item)
            else:
                kept[key] = without_times(item)
        return kept
    return value


async def messages_until_close(ws: WebSocketConnection) -> tuple[list[Any], tuple[int, str]]:
    frames = []
    try:
        while True:
            frames.append(json.loads(await ws.get_message()))
    except ConnectionClosed as closed:
        assert closed.reason is not None
        return frames, (closed.reason.code, closed.reason.reason or "")


def board_after(events: list[dict[str, Any]], players: tuple[str, str]) -> list[list[Any]]:
    moves: list[rules.Move] = []
    for event in events:
        if event["kind"] == "placement":
            moves.append(wire.decode_place(event["place"]))
        elif event["kind"] == "action":
            moves.append(wire.decode_action(event["action"]))
    return rules.encode_board(rules.replay(*players, moves))


# -- the API ---------------------------------------------------------------------------


async def test_the_api_of_a_finished_tournament(start_server: StartServer, tmp_path: Path) -> None:
    server = await start_santorini(start_server, tmp_path, players=3)
    mallory, alpha, bravo = Bot("mallory", Kind.BREAKER), Bot("alpha"), Bot("bravo")
    async with trio.open_nursery() as nursery:
        await register(server, [mallory, alpha, bravo], nursery)
    await tournaments_over(server, 1)
    results = [["alpha", "mallory", "irregular"], ["bravo", "alpha"]]
    tournament = {
        "id": 1,
        "status": "over",
        "players": ["mallory", "alpha", "bravo"],
        "schedule": [["mallory", "alpha"], ["mallory", "bravo"], ["alpha", "bravo"]],
        "results": results,
    }
    status, body = await get_json(server, "/santorini/api/tournaments")
    assert status == 200
    assert without_times(body) == {"tournaments": [tournament]}
    assert body["tournaments"][0]["finished_at"] is not None

    status, body = await get_json(server, "/santorini/api/tournaments/1")
    assert status == 200
    games = body["games"]
    assert without_times(body) == {
        **tournament,
        "games": [
            {
                "id": games[0]["id"],
                "players": ["mallory", "alpha"],
                "status": "over",
                "result": {
                    "winner": "alpha",
                    "loser": "mallory",
                    "ending": "irregular",
                    "reason": "alpha2 is not your worker",
                    "series": 1,
                    "game": 1,
                },
            },
            *(
                {
                    "id": games[n]["id"],
                    "players": ["alpha", "bravo"],
                    "status": "over",
                    "result": {
                        "winner": "bravo",
                        "loser": "alpha",
                        "ending": "climb",
                        "series": 3,
                        "game": n,
                    },
                }
                for n in (1, 2)
            ),
        ],
    }

    status, game = await get_json(server, f"/santorini/api/games/{games[0]['id']}")
    assert status == 200
    ms = [event.pop("ms") for event in game["events"][:4]]
    assert all(isinstance(value, int) and value >= 0 for value in ms)
    assert without_times(game) == {
        "id": games[0]["id"],
        "tournament": 1,
        "players": ["mallory", "alpha"],
        "status": "over",
        "result": games[0]["result"],
        "events": [
            {
                "kind": "placement",
                "seq": 1,
                "player": "mallory",
                "worker": "mallory1",
                "place": [0, 0],
            },
            {
                "kind": "placement",
                "seq": 2,
                "player": "alpha",
                "worker": "alpha1",
                "place": [5, 5],
            },
            {
                "kind": "placement",
                "seq": 3,
                "player": "mallory",
                "worker": "mallory2",
                "place": [0, 5],
            },
            {
                "kind": "placement",
                "seq": 4,
                "player": "alpha",
                "worker": "alpha2",
                "place": [5, 0],
            },
            {"kind": "outcome", "seq": 5, **games[0]["result"]},
        ],
    }
    # A game of turns: each action's board is the replay of the events before it.
    _, game = await get_json(server, f"/santorini/api/games/{games[1]['id']}")
    events = game["events"]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert events[-1] == {"kind": "outcome", "seq": len(events), **games[1]["result"]}
    for n, event in enumerate(events):
        if event["kind"] == "action":
            assert event["board"] == board_after(events[: n + 1], ("alpha", "bravo"))


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/santorini/api/tournaments/2", "no tournament 2"),
        ("/santorini/api/tournaments/0", "no tournament '0': an id is a number"),
        ("/santorini/api/tournaments/abc", "no tournament 'abc': an id is a number"),
        ("/santorini/api/tournaments/1/x", "no tournament '1/x': an id is a number"),
        ("/santorini/api/tournaments/9999999999", "no tournament '9999999999': an id is a number"),
        ("/santorini/api/games/" + "a" * 32, "no game " + "a" * 32),
        (
            "/santorini/api/games/" + "A" * 32,
            f"no game {'A' * 32!r}: an id is 32 lowercase hex characters",
        ),
        ("/santorini/api/games/x", "no game 'x': an id is 32 lowercase hex characters"),
        ("/santorini/api/games/%2e%2e", "no game '..': an id is 32 lowercase hex characters"),
        ("/santorini/api/", "no such endpoint: see docs/santorini.md, Observers"),
        ("/santorini/api/nothing/here", "no such endpoint: see docs/santorini.md, Observers"),
    ],
)
async def test_unknown_and_malformed_ids_are_404_with_a_body(
    start_server: StartServer, tmp_path: Path, path: str, error: str
) -> None:
    server = await start_santorini(start_server, tmp_path)
    status, body = await get_json(server, path)
    assert (status, body) == (404, {"error": error})


async def test_no_database_no_api(start_server: StartServer, tmp_path: Path) -> None:
    """A database that cannot be opened: the API and the feeds say the archive
    is off; the page and the relay serve on."""
    server = await start_server(database_url=f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    status, body = await get_json(server, "/santorini/api/tournaments")
    assert (status, body) == (404, {"error": OFF})
    async with server.connect("/santorini/live/" + "a" * 32) as ws:
        assert await closed_with(ws) == (4404, OFF)
    # The page itself is static: it says so when the API does.
    status, headers, page = await http_get(server, "/santorini/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'src="/static/santorini/santorini.js"' in page


async def test_a_server_without_the_service_serves_the_stored_tournaments(
    start_server: StartServer, tmp_path: Path
) -> None:
    # `python -m duorelay santorini` stored a tournament; the web server started
    # later on the same database, without a Santorini port, lists and replays it.
    playing = await start_santorini(start_server, tmp_path)
    async with trio.open_nursery() as nursery:
        await register(playing, [Bot("alpha"), Bot("bravo")], nursery)
    await tournaments_over(playing, 1)
    _, played = await get_json(playing, "/santorini/api/tournaments/1")
    archive = await start_server(database_url=f"sqlite:///{tmp_path / 'observers.db'}")
    assert archive.app.santorini is None
    assert await get_json(archive, "/santorini/api/tournaments/1") == (200, played)
    game = played["games"][0]["id"]
    status, body = await get_json(archive, f"/santorini/api/games/{game}")
    assert status == 200 and body["events"][-1]["kind"] == "outcome"


async def test_an_empty_store_lists_nothing(start_server: StartServer, tmp_path: Path) -> None:
    server = await start_santorini(start_server, tmp_path)
    assert await get_json(server, "/santorini/api/tournaments") == (200, {"tournaments": []})


# -- the live feeds -----------------------------------------------------------------------


async def test_live_feed_full_state_then_each_event(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_santorini(start_server, tmp_path)
    alpha, bravo = Paced("alpha"), Bot("bravo")
    async with server.connect("/santorini/live") as lobby, trio.open_nursery() as nursery:
        await settle()  # the tournaments feed is subscribed
        await register(server, [alpha, bravo], nursery)
        await alpha.holding(1)  # game 1 started; alpha holds its first placement
        assert json.loads(await lobby.get_message()) == {
            "kind": "tournament-start",
            "tournament": 1,
            "players": ["alpha", "bravo"],
            "schedule": [["alpha", "bravo"]],
        }
        start = json.loads(await lobby.get_message())
        match = start.pop("match")
        assert start == {
            "kind": "game-start",
            "tournament": 1,
            "players": ["alpha", "bravo"],
            "series": 1,
            "game": 1,
        }
        _, body = await get_json(server, "/santorini/api/tournaments/1")
        assert without_times(body["games"]) == [
            {"id": match, "players": ["alpha", "bravo"], "status": "live", "result": None}
        ]
        assert body["status"] == "live" and body["results"] is None
        async with server.connect(f"/santorini/live/{match}") as first:
            assert json.loads(await first.get_message()) == {
                "kind": "state",
                "match": match,
                "tournament": 1,
                "players": ["alpha", "bravo"],
                "status": "live",
                "seq": 0,
                "board": EMPTY,
                "result": None,
            }
            alpha.allow()  # alpha places; bravo answers at once
            await alpha.holding(2)
            seen = [json.loads(await first.get_message()) for _ in range(2)]
            assert [(e["kind"], e["seq"], e["worker"], e["place"]) for e in seen] == [
                ("placement", 1, "alpha1", [0, 0]),
                ("placement", 2, "bravo1", [5, 5]),
            ]
            async with server.connect(f"/santorini/live/{match}") as second:
                board = [row[:] for row in EMPTY]
                board[0][0], board[5][5] = "0alpha1", "0bravo1"
                assert json.loads(await second.get_message()) == {
                    "kind": "state",
                    "match": match,
                    "tournament": 1,
                    "players": ["alpha", "bravo"],
                    "status": "live",
                    "seq": 2,
                    "board": board,
                    "result": None,
                }
                alpha.let_go()
                rest_first, close_first = await messages_until_close(first)
                rest_second, close_second = await messages_until_close(second)
        _, game = await get_json(server, f"/santorini/api/games/{match}")
        stored = game["events"]
        assert seen + rest_first == stored
        assert rest_second == stored[2:]
        assert close_first == close_second == (1000, "game over")
        assert stored[-1] == {
            "kind": "outcome",
            "seq": len(stored),
            "winner": "bravo",
            "loser": "alpha",
            "ending": "climb",
            "series": 1,
            "game": 1,
        }
        # The tournaments feed: each game's start and outcome, then the end.
        await tournaments_over(server, 1)
        _, tournament = await get_json(server, "/santorini/api/tournaments/1")
        second_game = tournament["games"][1]["id"]
        expected = [
            {**stored[-1], "match": match},
            {**start, "game": 2, "match": second_game},
            {
                "kind": "outcome",
                "seq": len(
                    (await get_json(server, f"/santorini/api/games/{second_game}"))[1]["events"]
                ),
                **tournament["games"][1]["result"],
                "match": second_game,
            },
            {"kind": "tournament-end", "tournament": 1, "results": [["bravo", "alpha"]]},
        ]
        assert [json.loads(await lobby.get_message()) for _ in expected] == expected
    assert alpha.results == bravo.results == [wire.Result("bravo", "alpha")]


async def test_a_finished_game_is_its_state_then_closed(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_santorini(start_server, tmp_path)
    async with trio.open_nursery() as nursery:
        await register(server, [Bot("alpha"), Bot("bravo")], nursery)
    await tournaments_over(server, 1)
    _, tournament = await get_json(server, "/santorini/api/tournaments/1")
    match = tournament["games"][0]["id"]
    _, game = await get_json(server, f"/santorini/api/games/{match}")
    async with server.connect(f"/santorini/live/{match}") as ws:
        frames, close = await messages_until_close(ws)
    assert frames == [
        {
            "kind": "state",
            "match": match,
            "tournament": 1,
            "players": ["alpha", "bravo"],
            "status": "over",
            "seq": len(game["events"]),
            "board": board_after(game["events"], ("alpha", "bravo")),
            "result": game["result"],
        }
    ]
    assert frames[0]["board"] == game["events"][-2]["board"]  # the last action's
    assert close == (1000, "game over")


@pytest.mark.parametrize(
    ("path", "close"),
    [
        ("/santorini/live/" + "b" * 32, (4404, "no game " + "b" * 32)),
        ("/santorini/live/nope", (4400, "a game id is 32 lowercase hex characters")),
        ("/santorini/live/" + "b" * 33, (4400, "a game id is 32 lowercase hex characters")),
        ("/santorini/live/", (4400, "a game id is 32 lowercase hex characters")),
    ],
)
async def test_live_feed_of_an_unknown_or_malformed_id(
    start_server: StartServer, tmp_path: Path, path: str, close: tuple[int, str]
) -> None:
    server = await start_santorini(start_server, tmp_path)
    async with server.connect(path) as ws:
        assert await closed_with(ws) == close
    assert server.app.santorini_web.hub.watchers("b" * 32) == 0


# -- a spectator that stops reading --------------------------------------------------------


def shrink_server_send_buffer(client: trio.socket.SocketType) -> None:
    """Give the server's end of ``client``'s connection the smallest send buffer,
    so that a client that stops reading blocks the server's writer within a
    few KB (found among this process's sockets by its peer address)."""
    wanted = client.getsockname()
    for name in os.listdir("/proc/self/fd"):
        try:
            with socket.socket(fileno=os.dup(int(name))) as sock:
                if sock.family == socket.AF_INET and sock.getpeername() == wanted:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
                    return
        except OSError:
            continue
    raise AssertionError("the server's socket was not found")


@asynccontextmanager
async def stuck_spectator(server: Server, path: str) -> AsyncIterator[RawClient]:
    """A websocket client with the smallest receive buffer, on ``path``."""
    host, port = server.address.rsplit(":", 1)
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    await sock.connect((host, int(port)))
    client = RawClient(trio.SocketStream(sock))
    async with client.stream:
        await client._send(ws_events.Request(host=server.address, target=path))
        assert isinstance(await client.next_event(), ws_events.AcceptConnection)
        yield client


async def test_a_spectator_that_stops_reading_is_dropped_4430(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_santorini(start_server, tmp_path, outbox_size=2)
    alpha, bravo = PacedDawdler("alpha"), Dawdler("bravo")
    async with trio.open_nursery() as nursery:
        async with server.connect("/santorini/live") as lobby:
            await settle()  # the tournaments feed is subscribed
            await register(server, [alpha, bravo], nursery)
            await alpha.holding(1)
            assert json.loads(await lobby.get_message())["kind"] == "tournament-start"
            match = json.loads(await lobby.get_message())["match"]  # told once stored
        async with stuck_spectator(server, f"/santorini/live/{match}") as stuck:
            state = await stuck.next_event()
            assert isinstance(state, ws_events.TextMessage)
            assert json.loads(state.data)["seq"] == 0
            shrink_server_send_buffer(stuck.stream.socket)
            alpha.let_go()  # long games, and the spectator reads nothing
            await tournaments_over(server, 1)  # the tournament did not wait
            assert server.app.santorini_web.hub.dropped == 1
            # Reading again: a prefix of the game, then the close frame.
            frames: list[Any] = []
            text = ""
            while not isinstance(event := await stuck.next_event(), ws_events.CloseConnection):
                assert isinstance(event, ws_events.TextMessage)
                text += event.data
                if event.message_finished:
                    frames.append(json.loads(text))
                    text = ""
            assert (event.code, event.reason) == (4430, "too slow: the spectator's outbox is full")
            await stuck._send(event.response())
    _, game = await get_json(server, f"/santorini/api/games/{match}")
    assert 0 < len(frames) < len(game["events"])
    assert frames == game["events"][: len(frames)]
    assert alpha.results is not None and alpha.results == bravo.results
    _, tournament = await get_json(server, "/santorini/api/tournaments/1")
    assert tournament["results"] == wire.results_message(alpha.results)


# -- the hub, its joining rule ------------------------------------------------------------


class FakeSpectator:
    """A spectator whose outbox is a real bounded channel, read by the test."""

    def __init__(self, size: int) -> None:
        self.outbox, self.frames = trio.open_memory_channel[str | bytes](size)
        self.closed: tuple[int, str, bool] | None = None

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        self.closed = (code, reason, flush)

    def received(self) -> list[Any]:
        out = []
        while True:
            try:
                out.append(json.loads(self.frames.receive_nowait()))
            except trio.WouldBlock:
                return out


def event(seq: int, kind: str = "placement") -> dict[str, Any]:
    return {"kind": kind, "seq": seq, "player": "alpha"}


def test_joining_between_load_and_subscribe_misses_nothing_and_repeats_nothing() -> None:
    hub = SpectatorHub(backlog=8)
    spectator = FakeSpectator(8)
    subscription = hub.subscribe("m" * 32, spectator, pending=True)
    hub.publish("m" * 32, event(3))  # stored before the load read: in the state
    hub.publish("m" * 32, event(4))  # stored after it
    assert spectator.received() == []  # held until the state is out
    hub.start(subscription, json.dumps({"kind": "state", "seq": 3}), 3)
    hub.publish("m" * 32, event(5))
    hub.publish("x" * 32, event(1))  # another game: not for this spectator
    hub.publish("m" * 32, event(6, "outcome"))
    assert spectator.received() == [
        {"kind": "state", "seq": 3},
        event(4),
        event(5),
        event(6, "outcome"),
    ]
    assert spectator.closed == (1000, "game over", True)
    assert hub.watchers("m" * 32) == 0


def test_a_full_outbox_or_backlog_drops_the_spectator_4430() -> None:
    hub = SpectatorHub(backlog=2)
    slow, fine = FakeSpectator(2), FakeSpectator(8)
    hub.start(hub.subscribe("m" * 32, slow, pending=True), "{}", 0)
    hub.start(hub.subscribe("m" * 32, fine, pending=True), "{}", 0)
    for seq in (1, 2, 3):
        hub.publish("m" * 32, event(seq))  # slow's outbox holds "{}" and event 1
    assert slow.closed == (4430, "too slow: the spectator's outbox is full", False)
    assert fine.closed is None and len(fine.received()) == 4
    assert hub.watchers("m" * 32) == 1 and hub.dropped == 1
    loading = FakeSpectator(8)
    hub.subscribe("m" * 32, loading, pending=True)
    for seq in (4, 5, 6):
        hub.publish("m" * 32, event(seq))
    assert loading.closed == (4430, "too slow: the spectator's outbox is full", False)
    assert hub.dropped == 2


def test_the_tournaments_feed_gets_starts_and_ends_only() -> None:
    hub = SpectatorHub(backlog=8)
    lobby = FakeSpectator(8)
    hub.subscribe(None, lobby, pending=False)
    hub.publish(None, {"kind": "tournament-start", "tournament": 1})
    hub.publish("m" * 32, {"kind": "game-start", "tournament": 1})
    hub.publish("m" * 32, event(1))
    hub.publish("m" * 32, event(2, "outcome"))
    assert lobby.received() == [
        {"kind": "tournament-start", "tournament": 1},
        {"kind": "game-start", "tournament": 1, "match": "m" * 32},
        {**event(2, "outcome"), "match": "m" * 32},
    ]
    assert lobby.closed is None
