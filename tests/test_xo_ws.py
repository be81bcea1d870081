"""The XO websocket on /ws (docs/xogame.md): refusals store and broadcast nothing,
the connection stays; Kamon keeps /ws for first frames that are not JSON objects."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
import trio
from trio_websocket import WebSocketConnection

from conftest import Server, StartServer, closed_with
from xo_client import authorize, broadcast, call, move, reply, sign_up

OK = {"ok": True, "error": None}


class Game:
    """A started game: ``x`` and ``o`` are (uuid, login token) of each mark."""

    def __init__(self, server: Server, game: str, x: tuple[str, str], o: tuple[str, str]):
        self.server, self.id, self.x, self.o = server, game, x, o

    async def intra(self, player: tuple[str, str]) -> str:
        status, _, body = await call(
            self.server, "GET", f"/auth/intratoken/{self.id}", token=player[1]
        )
        assert status == 200
        return str(body["access_token"])

    async def events(self) -> list[dict[str, Any]]:
        status, _, body = await call(self.server, "GET", f"/game/fetch/{self.id}", token=self.x[1])
        assert status == 200
        return list(body)


async def started(server: Server) -> Game:
    alice, bob = await sign_up(server, "alice"), await sign_up(server, "bob")
    ids = {}
    for token in (alice, bob):
        ids[token] = (await call(server, "GET", "/players/me", token=token))[2]["uuid"]
    game = (await call(server, "POST", "/game/", token=alice))[2]["game_uuid"]
    status, _, _ = await call(server, "POST", "/game/connect", token=bob, body={"uuid": game})
    assert status == 200
    init = (await call(server, "GET", f"/game/fetch/{game}", token=alice))[2][0]
    starter = init["params"]["starter"]
    x = next(t for t in (alice, bob) if ids[t] == starter)
    o = bob if x == alice else alice
    return Game(server, game, (ids[x], x), (ids[o], o))


async def authorized(ws: WebSocketConnection, token: str) -> None:
    await ws.send_message(authorize(token))
    assert await reply(ws) == OK


async def refused(ws: WebSocketConnection, frame: str | bytes, error: str) -> None:
    await ws.send_message(frame)
    assert await reply(ws) == {"ok": False, "error": error}


async def test_refused_commands_store_and_broadcast_nothing(
    start_server: StartServer, database_url: str
) -> None:
    server = await start_server(database_url=database_url)
    game = await started(server)
    (x, _), (o, _) = game.x, game.o
    async with server.connect() as wx, server.connect() as wo:
        # Before authorize: any command is for no game.
        await refused(wx, move(game.id, x, 2, 0, 0), "Bad game reference")
        await refused(wx, "{not json", "Bad message: not JSON")
        await authorized(wx, await game.intra(game.x))
        await authorized(wo, await game.intra(game.o))
        other = "12345678-1234-4234-8234-123456789abc"
        cases = [
            ("{oops", "Bad message: not JSON"),
            (b"\xff\xfe", "Bad message: not UTF-8 JSON"),
            ("[1, 2]", "Bad message: not a JSON object"),
            ('{"type": "dance"}', 'Bad message: unknown type "dance"'),
            ('{"type": "command"}', "Bad message: command needs data, an object"),
            (
                json.dumps({"type": "command", "data": {"game_uuid": game.id}}),
                "Bad message: data.player_uuid must be a UUID",
            ),
            (move("nope", x, 2, 0, 0), "Bad message: data.game_uuid must be a UUID"),
            (move(other, x, 2, 0, 0), "Bad game reference"),
            (move(game.id, o, 2, 0, 0), "Bad player reference"),
            (move(game.id, x, 1, 0, 0), "Bad sequence 1: the next one is 2"),
            (move(game.id, x, 3, 0, 0), "Bad sequence 3: the next one is 2"),
            (move(game.id, x, 2, 6, 0), "Illegal move: cell (6, 0) is off the 6x6 board"),
            (move(game.id, x, 2, 0, -1), "Illegal move: cell (0, -1) is off the 6x6 board"),
            (
                '{"type": "authorize", "data": {}}',
                "Bad message: authorize needs data.token, a string",
            ),
        ]
        for frame, error in cases:
            await refused(wx, frame, error)
        # O out of turn, on its own connection.
        await refused(wo, move(game.id, o, 2, 0, 0), "Illegal move: it is X's turn, not O's")
        # Nothing was broadcast: the next frame each sees is the first real move.
        await wx.send_message(move(game.id, x, 2, 0, 0))
        for ws in (wx, wo):
            assert (await broadcast(ws))["sequence"] == 2
        assert await reply(wx) == OK
        await refused(wo, move(game.id, o, 3, 0, 0), "Illegal move: cell (0, 0) is already marked")
        await refused(wo, move(game.id, o, 2, 1, 1), "Bad sequence 2: the next one is 3")
        await refused(wx, move(game.id, x, 3, 1, 1), "Illegal move: it is O's turn, not X's")
        assert [e["sequence"] for e in await game.events()] == [1, 2]
        # The connection stays: the game goes on to X's win.
        sequence = 3
        for player, ws, (cx, cy) in [
            (o, wo, (0, 1)),
            (x, wx, (1, 0)),
            (o, wo, (1, 1)),
            (x, wx, (2, 0)),
            (o, wo, (2, 1)),
            (x, wx, (3, 0)),
        ]:
            await ws.send_message(move(game.id, player, sequence, cx, cy))
            for each in (wx, wo):
                assert (await broadcast(each))["sequence"] == sequence
            sequence += 1
            if sequence == 9:
                for each in (wx, wo):
                    assert (await broadcast(each))["name"] == "game_over"
            assert await reply(ws) == OK
        await refused(wo, move(game.id, o, 10, 5, 5), "Illegal move: the game is finished")
        assert len(await game.events()) == 9
        await wx.send_message('{"type": "close"}')
        assert await closed_with(wx) == (1000, None)


@pytest.mark.parametrize(
    "token",
    ["nonsense", "eyJhbGciOiJub25lIn0.eyJ1c2VybmFtZSI6ImEifQ.", "login"],
)
async def test_bad_authorize_closes_1008(server: Server, token: str) -> None:
    game = await started(server)
    if token == "login":
        token = game.x[1]  # a login token is not a per-game token
    async with server.connect() as ws:
        await ws.send_message(authorize(token))
        assert await reply(ws) == {"ok": False, "error": "Invalid token"}
        assert await closed_with(ws) == (1008, "Invalid token")


async def test_reconnect_continues_the_game(server: Server) -> None:
    game = await started(server)
    async with server.connect() as ws:
        await authorized(ws, await game.intra(game.x))
        await ws.send_message(move(game.id, game.x[0], 2, 3, 3))
        assert (await broadcast(ws))["sequence"] == 2
        assert await reply(ws) == OK
    async with server.connect() as wo, server.connect() as wx:
        await authorized(wo, await game.intra(game.o))
        await authorized(wx, await game.intra(game.x))
        await wo.send_message(move(game.id, game.o[0], 3, 2, 2))
        assert (await broadcast(wx))["params"]["cell"] == [2, 2]
        assert (await broadcast(wo))["sequence"] == 3
        assert await reply(wo) == OK


async def test_creator_sees_game_init(server: Server) -> None:
    alice, bob = await sign_up(server, "alice"), await sign_up(server, "bob")
    game = (await call(server, "POST", "/game/", token=alice))[2]["game_uuid"]
    intra = (await call(server, "GET", f"/auth/intratoken/{game}", token=alice))[2]
    async with server.connect() as ws:
        await authorized(ws, intra["access_token"])
        status, _, _ = await call(server, "POST", "/game/connect", token=bob, body={"uuid": game})
        assert status == 200
        init = await broadcast(ws)
        assert (init["name"], init["sequence"], init["game_uuid"]) == ("game_init", 1, game)


async def test_kamon_and_xo_share_ws(start_server: StartServer) -> None:
    server = await start_server()
    async with server.join("room", 0) as seat0, server.join("room", 1) as seat1:
        await seat0.send_message('{"not": "xo"}')
        assert await seat1.get_message() == '{"not": "xo"}'
        async with server.connect() as xo:
            await xo.send_message('{"type": "hello"}')
            assert await reply(xo) == {"ok": False, "error": 'Bad message: unknown type "hello"'}
    for first in ("hello", b"{binary}", "[1]"):
        async with server.connect() as ws:
            await ws.send_message(first)
            code, reason = await closed_with(ws)
            assert code == 4400 and reason is not None and reason.startswith("bad join")


async def test_first_frame_timeout(start_server: StartServer) -> None:
    server = await start_server(join_timeout=0.2)
    async with server.connect() as ws:
        assert await closed_with(ws) == (4408, "no join within 0.2 s")
    await trio.lowlevel.checkpoint()


async def test_expired_forged_and_wrong_claims_intratokens(start_server: StartServer) -> None:
    secret = "s" * 64
    server = await start_server(jwt_secret=secret)
    game = await started(server)
    now = int(time.time())
    claims = {"player_uuid": game.x[0], "game_uuid": game.id, "exp": now + 600}
    for bad in (
        jwt.encode({**claims, "exp": now - 5}, secret, algorithm="HS256"),  # expired
        jwt.encode(claims, "f" * 64, algorithm="HS256"),  # forged
        jwt.encode(claims, secret, algorithm="HS512"),  # another algorithm
        jwt.encode(claims, None, algorithm="none"),  # alg none
        jwt.encode({**claims, "game_uuid": "nope"}, secret, algorithm="HS256"),  # not a UUID
        jwt.encode({"player_uuid": game.x[0], "exp": now + 600}, secret, algorithm="HS256"),
    ):
        async with server.connect() as ws:
            await ws.send_message(authorize(bad))
            assert await reply(ws) == {"ok": False, "error": "Invalid token"}
            assert await closed_with(ws) == (1008, "Invalid token")
    # A well-made token of a player who is not in the game.
    stranger = jwt.encode(
        {**claims, "player_uuid": "12345678-1234-4234-8234-123456789abc"}, secret, "HS256"
    )
    async with server.connect() as ws:
        await ws.send_message(authorize(stranger))
        assert await reply(ws) == {"ok": False, "error": "Bad player reference"}
        assert await closed_with(ws) == (1008, "Bad player reference")
    assert len(await game.events()) == 1
