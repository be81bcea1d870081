"""The UTTT server (services/uttt.py) on a real server with real websocket
clients: every row of docs/uttt.md. No test sleeps: each waits for a message."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import trio
from hypercorn.trio import serve
from trio_websocket import WebSocketConnection

from conftest import (
    STATIC_DIR,
    LogWatch,
    RawClient,
    Server,
    StartServer,
    closed_with,
    http_get,
)
from duorelay.app import create_app
from duorelay.cli import RelayConfig
from duorelay.games import uttt as rules
from duorelay.games.base import Outcome, Player
from duorelay.settings import Settings


def playout(want: Callable[[Outcome], bool], seed: int) -> list[rules.Move]:
    """A random game (fixed seed) whose outcome ``want`` accepts."""
    rng = random.Random(seed)
    while True:
        state, moves = rules.new_game(), []
        while (result := rules.outcome(state)) is None:
            move = rng.choice(rules.legal_moves(state))
            moves.append(move)
            state = rules.apply(state, move)
        if want(result):
            return moves


A_WINS = playout(lambda o: o.winner is Player.FIRST, 1)
DRAW = playout(lambda o: o.is_draw, 2)


class Client:
    """A UTTT client over one websocket."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.session_id: str | None = None

    async def send(self, kind: str, data: object) -> None:
        await self.ws.send_message(json.dumps({"type": kind, "data": data}))

    async def receive(self) -> tuple[str, Any]:
        frame = json.loads(await self.ws.get_message())
        return frame["type"], frame["data"]

    async def expect(self, kind: str) -> Any:
        got, data = await self.receive()
        assert got == kind, (got, data)
        return data

    async def greeting(self, first: str, matches: int = 0) -> list[Any]:
        """The exact greeting: ``first``, elo_update, friends_update, ``matches``
        match_updates; all of it."""
        response = await self.expect(first)
        assert response["success"], response
        self.session_id = response["id"]
        found = [response, await self.expect("elo_update"), await self.expect("friends_update")]
        found += [await self.expect("match_update") for _ in range(matches)]
        return found

    async def move(self, match_id: str, move: rules.Move, *, as_strings: bool = True) -> None:
        coords = {"sub_x": move.sub_x, "sub_y": move.sub_y, "x": move.x, "y": move.y}
        if as_strings:
            coords = {key: str(value) for key, value in coords.items()}  # type: ignore[misc]
        await self.send("move", {"id": match_id, **coords})


@asynccontextmanager
async def logged_in(
    server: Server, name: str, pw: str = "secret", matches: int = 0, path: str = "/uttt"
) -> AsyncIterator[Client]:
    async with server.connect(path) as ws:
        client = Client(ws)
        await client.send("login", {"name": name, "pw": pw})
        client.greeted = await client.greeting("login_response", matches)  # type: ignore[attr-defined]
        yield client


@asynccontextmanager
async def reconnected(server: Server, session_id: str, matches: int = 0) -> AsyncIterator[Client]:
    async with server.connect("/uttt") as ws:
        client = Client(ws)
        await client.send("reconnect", {"id": session_id})
        client.greeted = await client.greeting("reconnect_response", matches)  # type: ignore[attr-defined]
        yield client


async def challenge(a: Client, b: Client, b_name: str) -> str:
    """``a`` asks for a match with ``b``; both see it; its id."""
    await a.send("match_request", {"player": b_name})
    assert (await a.expect("match_request_response"))["success"]
    update = await a.expect("match_update")
    assert await b.expect("match_update") == update
    return str(update["id"])


async def play(a: Client, b: Client, match_id: str, moves: list[rules.Move]) -> Any:
    """Play ``moves`` (a is player_a); both see each one; the last update."""
    update = None
    for move in moves:
        mover = a if move.player is Player.FIRST else b
        await mover.move(match_id, move, as_strings=move.x != 1)
        update = await a.expect("match_update")
        assert await b.expect("match_update") == update
        last = update["match_state"]["last_move"]
        assert last == {"sub_x": move.sub_x, "sub_y": move.sub_y, "x": move.x, "y": move.y}
    return update


async def test_greeting_order_after_login_and_reconnect(server: Server) -> None:
    async with logged_in(server, "Ann") as ann:
        response, elo, friends = ann.greeted  # type: ignore[attr-defined]
        assert response["registered"] is True and len(response["id"]) == 32
        assert elo == {"elo": 1000, "rank": 1, "top_names": ["ann"], "top_elos": [1000]}
        assert friends == {"friends": [], "elos": []}
        async with logged_in(server, "bob") as bob:
            match_id = await challenge(ann, bob, "bob")
        assert ann.session_id is not None
        async with reconnected(server, ann.session_id, matches=1) as again:
            response, elo, friends, update = again.greeted  # type: ignore[attr-defined]
            assert response["user"] == "ann" and response["id"] == ann.session_id
            assert update["id"] == match_id
            assert update["match_state"]["active_player"] == "ann"
            assert update["ranked"] is True
            revoke = datetime.strptime(update["revoke_time"], "%Y-%m-%d %H:%M:%S")
            in_a_week = datetime.now(UTC).replace(tzinfo=None) + timedelta(days=7)
            assert abs(revoke - in_a_week) < timedelta(minutes=5)  # UTC, a week after
        async with logged_in(server, "ann", matches=1) as third:
            assert third.greeted[3]["id"] == match_id  # type: ignore[attr-defined]


async def test_first_frame_and_failed_logins_close(server: Server) -> None:
    async with server.connect("/uttt") as ws:
        await ws.send_message(json.dumps({"type": "match_states_request", "data": None}))
        assert (await closed_with(ws))[0] == 4400
    async with server.connect("/uttt") as ws:
        await ws.send_message("not json")
        assert (await closed_with(ws))[0] == 4400
    async with logged_in(server, "ann"):
        pass
    async with server.connect("/uttt") as ws:
        client = Client(ws)
        await client.send("login", {"name": "ann", "pw": "wrong"})
        response = await client.expect("login_response")
        assert response == {
            "success": False,
            "id": None,
            "registered": False,
            "msg": "wrong name or password",
        }
        assert (await closed_with(ws))[0] == 4403
    async with server.connect("/uttt") as ws:
        client = Client(ws)
        await client.send("login", {"name": "no way!", "pw": "x"})
        assert not (await client.expect("login_response"))["success"]
        assert (await closed_with(ws))[0] == 4403
    async with server.connect("/uttt") as ws:
        client = Client(ws)
        await client.send("reconnect", {"id": "f" * 32})
        response = await client.expect("reconnect_response")
        assert not response["success"] and response["user"] is None
        assert (await closed_with(ws))[0] == 4403


async def test_page_and_the_root_websocket(server: Server) -> None:
    status, _, body = await http_get(server, "/uttt/")
    assert status == 200 and b"<html" in body.lower()
    status, _, body = await http_get(server, "/")
    assert status == 200
    async with logged_in(server, "ann", path="/"):
        pass


async def test_bad_input_gets_an_error_and_the_connection_stays(server: Server) -> None:
    async with logged_in(server, "ann") as ann:
        for bad in (
            "{",
            "[]",
            '"text"',
            json.dumps({"type": "fly", "data": {}}),
            json.dumps({"type": "move", "data": {"id": "x", "sub_x": 9}}),
            json.dumps({"type": "move", "data": "nope"}),
            json.dumps({"type": "match_request", "data": {"player": 7}}),
            json.dumps({"type": "friend_request", "data": {"user": "x" * 5000}}),
            json.dumps({"type": "login", "data": {"name": "ann", "pw": "secret"}}),
        ):
            await ann.ws.send_message(bad)
            assert "msg" in await ann.expect("error")
        await ann.send("match_states_request", None)
        await ann.send("match_request", {"player": None})
        assert (await ann.expect("match_request_response"))["success"]


async def test_moves_refusals_and_who_is_told(server: Server) -> None:
    async with (
        logged_in(server, "ann") as ann,
        logged_in(server, "bob") as bob,
        logged_in(server, "cid") as cid,
    ):
        match_id = await challenge(ann, bob, "bob")
        first = rules.Move(Player.FIRST, 1, 1, 0, 2)
        await bob.move(match_id, rules.Move(Player.SECOND, 0, 0, 0, 0))
        assert (await bob.expect("move_response")) == {
            "success": False,
            "msg": "it is not your turn",
        }
        assert (await bob.expect("match_update"))["match_state"]["last_move"] is None
        await ann.move(match_id, first, as_strings=False)
        update = await ann.expect("match_update")
        assert await bob.expect("match_update") == update
        assert update["match_state"]["complete_field"][5][3] == 1
        assert update["match_state"]["active_player"] == "bob"
        await bob.move(match_id, rules.Move(Player.SECOND, 2, 2, 0, 0))
        refused = await bob.expect("move_response")
        assert "sub-board" in refused["msg"]
        assert (await bob.expect("match_update")) == update
        await cid.move(match_id, rules.Move(Player.SECOND, 0, 2, 0, 0))
        assert not (await cid.expect("move_response"))["success"]
        await cid.move("0" * 32, rules.Move(Player.SECOND, 0, 2, 0, 0))
        assert (await cid.expect("move_response"))["msg"] == "no such match"
        await cid.send("match_states_request", {})
        await cid.send("end_match", {"id": "nothex"})
        assert (await cid.expect("error"))["msg"] == "no such match"  # cid has no match
        await bob.move(match_id, rules.Move(Player.SECOND, 0, 2, 1, 1))
        assert (await ann.expect("match_update"))["match_state"]["active_player"] == "ann"
        await bob.expect("match_update")


async def test_random_pairing_first_come_first_served(server: Server) -> None:
    async with logged_in(server, "ann") as ann, logged_in(server, "bob") as bob:
        await ann.send("match_request", {"player": None})
        assert (await ann.expect("match_request_response"))["msg"] == "waiting for an opponent"
        await ann.send("match_request", {"player": None})
        assert not (await ann.expect("match_request_response"))["success"]
        await bob.send("match_request", {"player": None})
        assert (await bob.expect("match_request_response"))["success"]
        update = await bob.expect("match_update")
        assert await ann.expect("match_update") == update
        assert update["match_state"]["player_a"] == "ann"  # who waited moves first
        # A pair already playing is not paired again: bob waits.
        await bob.send("match_request", {"player": None})
        assert (await bob.expect("match_request_response"))["msg"] == "waiting for an opponent"
        await ann.send("match_request", {"player": None})
        assert (await ann.expect("match_request_response"))["msg"] == "waiting for an opponent"
        async with logged_in(server, "cid") as cid:
            await cid.send("match_request", {"player": None})
            assert (await cid.expect("match_request_response"))["success"]
            paired = await cid.expect("match_update")
            assert paired["match_state"]["player_a"] == "bob"  # bob came first
            assert await bob.expect("match_update") == paired


async def test_a_user_whose_connections_closed_leaves_the_queue(
    server: Server, server_log: LogWatch
) -> None:
    async with logged_in(server, "ann") as ann, logged_in(server, "ann") as tab:
        await ann.send("match_request", {"player": None})
        await ann.expect("match_request_response")
        await tab.ws.aclose()
        await server_log.wait_for("closed", uttt="ann")
        queue = server.app.uttt.matchmaking
        assert queue is not None and len(queue) == 1  # ann has a connection left
    await server_log.wait_for("closed", count=2, uttt="ann")
    assert len(queue) == 0
    async with logged_in(server, "bob") as bob:
        await bob.send("match_request", {"player": None})
        assert (await bob.expect("match_request_response"))["msg"] == "waiting for an opponent"


async def test_win_and_ratings_1010_990_then_1019_981(
    start_server: StartServer, database_url: str
) -> None:
    server = await start_server(database_url=database_url)  # SQLite and PostgreSQL
    async with logged_in(server, "ann") as ann, logged_in(server, "bob") as bob:
        for elos in ((1010, 990), (1019, 981)):
            match_id = await challenge(ann, bob, "bob")
            update = await play(ann, bob, match_id, A_WINS)
            state = update["match_state"]
            assert state["game_over"] and state["player_won"] == "ann" and not state["is_draw"]
            ann_elo, bob_elo = await ann.expect("elo_update"), await bob.expect("elo_update")
            assert (ann_elo["elo"], bob_elo["elo"]) == elos
            assert (ann_elo["rank"], bob_elo["rank"]) == (1, 2)
            assert ann_elo["top_names"] == ["ann", "bob"] and ann_elo["top_elos"] == list(elos)
        await ann.send("friend_request", {"user": "bob"})  # a marker: nothing else came
        assert (await ann.expect("friend_request_response"))["success"]


async def test_draw(server: Server) -> None:
    async with logged_in(server, "ann") as ann, logged_in(server, "bob") as bob:
        match_id = await challenge(ann, bob, "bob")
        state = (await play(ann, bob, match_id, DRAW))["match_state"]
        assert state["game_over"] and state["is_draw"] and state["player_won"] is None
        assert (await ann.expect("elo_update"))["elo"] == 1000
        assert (await bob.expect("elo_update"))["elo"] == 1000


async def test_five_open_matches_at_most(server: Server) -> None:
    async with logged_in(server, "ann") as ann:
        for n in range(5):
            async with logged_in(server, f"foe{n}") as foe:
                await challenge(ann, foe, f"foe{n}")
        await ann.send("match_request", {"player": "foe5"})
        refused = await ann.expect("match_request_response")
        assert refused == {"success": False, "msg": "no player called foe5"}
        async with logged_in(server, "foe5"):
            pass
        await ann.send("match_request", {"player": "foe5"})
        refused = await ann.expect("match_request_response")
        assert refused == {"success": False, "msg": "you have 5 open matches already"}
        await ann.send("match_request", {"player": None})
        assert not (await ann.expect("match_request_response"))["success"]
        await ann.send("match_request", {"player": "ann"})
        assert not (await ann.expect("match_request_response"))["success"]
    async with logged_in(server, "foe0", matches=1) as foe0:
        await foe0.send("match_request", {"player": "ann"})
        refused = await foe0.expect("match_request_response")
        assert refused["msg"] == "ann has 5 open matches already"


async def test_end_match_ranked_and_unranked(server: Server) -> None:
    async with logged_in(server, "ann") as ann, logged_in(server, "bob") as bob:
        # Before both moved: over, nobody's rating changes.
        match_id = await challenge(ann, bob, "bob")
        await ann.send("end_match", {"id": match_id})
        update = await ann.expect("match_update")
        assert await bob.expect("match_update") == update
        assert update["match_state"]["game_over"] and update["match_state"]["player_won"] == "bob"
        # After both moved: the closer loses, ratings change.
        match_id = await challenge(ann, bob, "bob")
        await play(ann, bob, match_id, A_WINS[:2])
        await ann.send("end_match", {"id": match_id})
        state = (await ann.expect("match_update"))["match_state"]
        await bob.expect("match_update")
        assert state["game_over"] and state["player_won"] == "bob"
        assert (await ann.expect("elo_update"))["elo"] == 990
        assert (await bob.expect("elo_update"))["elo"] == 1010
        await ann.send("end_match", {"id": match_id})
        assert (await ann.expect("error"))["msg"] == "the match is over"
        assert (await ann.expect("match_update"))["match_state"]["game_over"]
    async with logged_in(server, "tim", pw="") as tim, logged_in(server, "ann") as ann:
        response, elo, _ = tim.greeted  # type: ignore[attr-defined]
        assert response["registered"] is False
        assert elo["elo"] is None and elo["rank"] is None and "tim" not in elo["top_names"]
        match_id = await challenge(tim, ann, "ann")
        await play(tim, ann, match_id, A_WINS[:2])
        await tim.send("end_match", {"id": match_id})
        update = await tim.expect("match_update")
        assert update["ranked"] is False and update["match_state"]["player_won"] == "ann"
        assert await ann.expect("match_update") == update
        await ann.send("friend_request", {"user": "tim"})  # no elo_update came before it
        assert (await ann.expect("friend_request_response"))["success"]


async def test_revoke_after_revoke_time(start_server: StartServer) -> None:
    server = await start_server(uttt_revoke_time=1.0)
    async with logged_in(server, "ann") as ann, logged_in(server, "bob") as bob:
        match_id = await challenge(ann, bob, "bob")  # nobody moves: ann is on turn
        update = await ann.expect("match_update")  # pushed by the sweeper
        assert await bob.expect("match_update") == update
        state = update["match_state"]
        assert update["id"] == match_id
        assert state["game_over"] and state["player_won"] == "bob"
        assert (await ann.expect("elo_update"))["elo"] == 990
        assert (await bob.expect("elo_update"))["elo"] == 1010
        await ann.move(match_id, A_WINS[0])
        assert (await ann.expect("move_response"))["msg"] == "the match is over"
        assert (await ann.expect("match_update")) == update


async def test_friends(server: Server) -> None:
    async with logged_in(server, "ann") as ann:
        async with logged_in(server, "bob"):
            pass
        await ann.send("friend_request", {"user": "Bob"})
        assert await ann.expect("friend_request_response") == {"success": True, "msg": "done"}
        assert await ann.expect("friends_update") == {"friends": ["bob"], "elos": [1000]}
        await ann.send("friend_request", {"user": "bob"})
        assert not (await ann.expect("friend_request_response"))["success"]
        for who in ("ann", "nobody", "x" * 40):
            await ann.send("friend_request", {"user": who})
            assert not (await ann.expect("friend_request_response"))["success"]
        await ann.send("unfriend_request", {"user": "bob"})
        assert (await ann.expect("unfriend_request_response"))["success"]
        assert await ann.expect("friends_update") == {"friends": [], "elos": []}
        await ann.send("unfriend_request", {"user": "bob"})
        assert not (await ann.expect("unfriend_request_response"))["success"]
        await ann.send("friend_request", {"user": "bob"})
        await ann.expect("friend_request_response")
        await ann.expect("friends_update")
    async with logged_in(server, "ann") as ann:
        assert ann.greeted[2] == {"friends": ["bob"], "elos": [1000]}  # type: ignore[attr-defined]
    async with logged_in(server, "tmp", pw="") as tmp:
        await tmp.send("friend_request", {"user": "ann"})
        assert not (await tmp.expect("friend_request_response"))["success"]
        await tmp.send("match_states_request", None)  # still connected


async def test_every_connection_of_a_user_gets_the_pushes(server: Server) -> None:
    async with logged_in(server, "ann") as ann, logged_in(server, "bob") as bob:
        assert ann.session_id is not None
        async with reconnected(server, ann.session_id) as tab, logged_in(server, "ann") as other:
            match_id = await challenge(bob, ann, "ann")
            assert (await tab.expect("match_update"))["id"] == match_id
            assert (await other.expect("match_update"))["id"] == match_id
            await bob.move(match_id, A_WINS[0])
            for client in (ann, tab, other, bob):
                assert (await client.expect("match_update"))["match_state"]["last_move"]


async def test_finished_match_shown_once_at_next_login(server: Server) -> None:
    async with logged_in(server, "ann") as ann, logged_in(server, "bob") as bob:
        await challenge(ann, bob, "bob")
    async with logged_in(server, "ann", matches=1) as ann:
        match_id = ann.greeted[3]["id"]  # type: ignore[attr-defined]
        await ann.send("end_match", {"id": match_id})
        assert (await ann.expect("match_update"))["match_state"]["game_over"]
    async with logged_in(server, "bob", matches=1) as bob:  # bob has not seen it
        assert bob.greeted[3]["match_state"]["game_over"]  # type: ignore[attr-defined]
    async with logged_in(server, "bob") as bob, logged_in(server, "ann") as ann:
        pass


async def test_login_rate_limit_per_address_and_per_name(start_server: StartServer) -> None:
    server = await start_server(login_burst=2, login_rate=0.001)

    async def attempt(name: str, source: str | None = None) -> tuple[int, str | None]:
        client = await RawClient.open(server, "/uttt", source=source)
        async with client.stream:
            await client.send(json.dumps({"type": "login", "data": {"name": name, "pw": "pw"}}))
            return await _login_close(client)

    for name in ("ann", "bob"):
        assert await attempt(name) == (1000, None)  # signed up: the connection stayed
    assert (await attempt("cid"))[0] == 4429  # the address's burst is spent (cid: 1 attempt)
    assert (await attempt("cid", "127.0.0.2"))[0] == 1000  # another address (cid: 2)
    assert (await attempt("cid", "127.0.0.3"))[0] == 4429  # the name's burst is spent
    assert (await attempt("dan", "127.0.0.3"))[0] == 1000  # that address may go on


async def _login_close(client: RawClient) -> tuple[int, str | None]:
    """After a login: (1000, None) if it succeeded, else the close code."""
    import wsproto.events as ws_events

    event = await client.next_event()
    assert isinstance(event, ws_events.TextMessage)
    if json.loads(event.data)["data"]["success"]:
        return 1000, None
    return await client.closed()


async def test_many_match_requests_are_bounded(start_server: StartServer) -> None:
    server = await start_server(max_rate=100_000, max_burst=100_000)
    async with logged_in(server, "ann") as ann, logged_in(server, "bob") as bob:
        await ann.send("match_request", {"player": None})
        await ann.expect("match_request_response")
        async with trio.open_nursery() as nursery:

            async def flood() -> None:
                for _ in range(10_000):
                    await ann.send("match_request", {"player": None})

            nursery.start_soon(flood)
            for _ in range(10_000):
                assert not (await ann.expect("match_request_response"))["success"]
        assert len(server.app.uttt.matchmaking or ()) == 1
        await bob.send("match_request", {"player": None})
        assert (await bob.expect("match_request_response"))["success"]


@asynccontextmanager
async def own_server(database: Path) -> AsyncIterator[Server]:
    """A server on ``database`` that stops (its tasks cancelled) at the end of the block."""
    settings = Settings(
        static_dir=STATIC_DIR,
        database_url=f"sqlite:///{database}",
        password_profile="cheapest",
        login_burst=1000,
    )
    app = create_app(settings)
    config = RelayConfig(settings)
    config.bind = ["127.0.0.1:0"]
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve, app, config, shutdown_trigger=trio.sleep_forever)
        )
        yield Server(app=app, address=binds[0].removeprefix("http://"))
        nursery.cancel_scope.cancel()


async def test_restart_mid_game_loses_nothing(tmp_path: Path) -> None:
    database = tmp_path / "restart.db"
    async with (
        own_server(database) as server,
        logged_in(server, "ann") as ann,
        logged_in(server, "bob") as bob,
    ):
        match_id = await challenge(ann, bob, "bob")
        await play(ann, bob, match_id, A_WINS[:3])
        await ann.send("friend_request", {"user": "bob"})
        await ann.expect("friend_request_response")
        await ann.expect("friends_update")
        session_id = ann.session_id
    assert session_id is not None
    async with (
        own_server(database) as server,
        reconnected(server, session_id, matches=1) as ann,
    ):
        _, elo, friends, update = ann.greeted  # type: ignore[attr-defined]
        assert friends == {"friends": ["bob"], "elos": [1000]}
        assert elo["elo"] == 1000
        assert update["id"] == match_id
        assert update["match_state"]["active_player"] == "bob"
        async with logged_in(server, "bob", matches=1) as bob:
            assert bob.greeted[3] == update  # type: ignore[attr-defined]
            update = await play(ann, bob, match_id, A_WINS[3:])
            assert update["match_state"]["player_won"] == "ann"


async def test_a_huge_name_is_an_error_or_a_close(server: Server) -> None:
    limit = 1024 * 1024  # max_message_size

    def filler(kind: str, key: str, extra: int = 0) -> str:
        empty = json.dumps({"type": kind, "data": {key: ""}})
        return "x" * (limit - len(empty) + extra)

    async with logged_in(server, "ann") as ann:
        await ann.send("friend_request", {"user": filler("friend_request", "user")})
        assert "longer than" in (await ann.expect("error"))["msg"]
        await ann.send("match_request", {"player": filler("match_request", "player")})
        assert "longer than" in (await ann.expect("error"))["msg"]
        await ann.send("match_request", {"player": filler("match_request", "player", 1)})
        assert (await closed_with(ann.ws))[0] == 1009


async def test_no_login_in_time_and_no_database(start_server: StartServer) -> None:
    server = await start_server(join_timeout=0.2)
    async with server.connect("/uttt") as ws:
        assert (await closed_with(ws))[0] == 4408
    server = await start_server(database_url="sqlite:////nonexistent-folder/db")
    async with server.connect("/uttt") as ws:
        await ws.send_message(json.dumps({"type": "login", "data": {"name": "ann", "pw": ""}}))
        assert await closed_with(ws) == (1013, "the database is unavailable")
