"""The XO game service (docs/xogame.md): HTTP API, websocket /ws, on SQLite and PostgreSQL."""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

import pytest

from conftest import Server, StartServer
from xo_client import authorize, broadcast, call, move, reply, sign_up

X_CELLS_WIN = [(0, 0), (1, 0), (2, 0), (3, 0)]
O_CELLS_WIN = [(0, 1), (1, 1), (2, 1)]


def draw_cells() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The X and O cells of a full 6x6 board without 4 in a row."""
    xs, os = [], []
    for y in range(6):
        for x in range(6):
            (xs if (x // 2 + y) % 2 == 0 else os).append((x, y))
    return xs, os


async def me(server: Server, token: str, path: str = "/players/me") -> str:
    status, _, body = await call(server, "GET", path, token=token)
    assert status == 200, body
    return str(body["uuid"])


async def new_game(server: Server, alice: str, bob: str, aliases: bool = False) -> str:
    """Alice creates a game, Bob joins it; its uuid."""
    status, _, body = await call(server, "POST", "/game" if aliases else "/game/", token=alice)
    assert status == 200, body
    game = str(body["uuid"] if aliases else body["game_uuid"])
    assert body["uuid"] == body["game_uuid"]
    status, _, lobby = await call(server, "GET", "/game/awaiting", token=bob)
    assert status == 200 and lobby["games"][0]["uuid"] == game
    status, _, body = await call(server, "POST", "/game/connect", token=bob, body={"uuid": game})
    assert (status, body) == (200, None)
    return game


async def intratoken(server: Server, token: str, game: str, alias: bool = False) -> str:
    path = f"/intratoken/{game}" if alias else f"/auth/intratoken/{game}"
    status, _, body = await call(server, "GET", path, token=token)
    assert status == 200, body
    assert body["token_type"] == body["type"] == "Intra"
    return str(body["access_token"])


async def play(
    server: Server,
    game: str,
    players: dict[str, tuple[str, str]],
    x_cells: list[tuple[int, int]],
    o_cells: list[tuple[int, int]],
    aliases: bool = False,
) -> list[dict[str, Any]]:
    """Both players connect and play X's and O's cells in turn; the broadcasts
    the first connection saw. ``players`` maps uuid -> (login token, name)."""
    tokens = {uuid: await intratoken(server, t, game, aliases) for uuid, (t, _) in players.items()}
    seen: list[dict[str, Any]] = []
    async with server.connect() as ws1, server.connect() as ws2:
        sockets = dict(zip(tokens, (ws1, ws2), strict=True))
        for uuid, ws in sockets.items():
            await ws.send_message(authorize(tokens[uuid]))
            assert await reply(ws) == {"ok": True, "error": None}
        status, _, events = await call(
            server, "GET", f"/game/fetch/{game}", token=players[next(iter(players))][0]
        )
        assert status == 200
        init = events[0]
        assert init["name"] == "game_init" and init["sequence"] == 1
        starter = init["params"]["starter"]
        other = next(u for u in players if u != starter)
        order = [starter, other]
        cells = [c for pair in zip_longest(x_cells, o_cells) for c in pair if c]
        for number, (x, y) in enumerate(cells):
            player = order[number % 2]
            sender = sockets[player]
            await sender.send_message(move(game, player, number + 2, x, y))
            for ws in (ws1, ws2):
                event = await broadcast(ws)
                assert event["name"] == "move" and event["sequence"] == number + 2
                assert event["params"] == {"player": player, "cell": [x, y]}
                if ws is ws1:
                    seen.append(event)
                if number == len(cells) - 1:
                    over = await broadcast(ws)
                    assert over["name"] == "game_over"
                    if ws is ws1:
                        seen.append(over)
                if ws is sender:  # the reply comes after the broadcasts
                    assert await reply(ws) == {"ok": True, "error": None}
    return seen


@pytest.mark.parametrize("aliases", [False, True], ids=["code", "readme"])
async def test_critical_path_win(
    start_server: StartServer, database_url: str, aliases: bool
) -> None:
    server = await start_server(database_url=database_url)
    alice = await sign_up(server, "alice")
    bob = await sign_up(server, "bob")
    # Log in (POST, or GET with the README's form) gives a working token too.
    status, _, body = await call(
        server,
        "GET" if aliases else "POST",
        "/auth/login",
        form={"username": "alice", "password": "secret-pw"},
    )
    assert status == 200 and body["token_type"] == body["type"] == "Bearer"
    alice = body["access_token"]
    path = "/player/me" if aliases else "/players/me"
    players = {await me(server, alice, path): (alice, "alice"), await me(server, bob): (bob, "b")}
    game = await new_game(server, alice, bob, aliases)
    seen = await play(server, game, players, X_CELLS_WIN, O_CELLS_WIN, aliases)
    status, _, events = await call(server, "GET", f"/game/fetch/{game}", token=bob)
    assert status == 200
    assert [e["sequence"] for e in events] == list(range(1, 10))
    assert [e["name"] for e in events] == ["game_init"] + ["move"] * 7 + ["game_over"]
    assert events[1:] == seen
    init = events[0]
    uuids = list(players)
    assert init["params"]["initiator"] == uuids[0] and init["params"]["opponent"] == uuids[1]
    sizes = ("grid_width", "grid_height", "winning_line_length")
    assert [init["params"][k] for k in sizes] == [6, 6, 4]
    assert events[-1]["params"] == {"winner": init["params"]["starter"], "draw": False}
    assert all(e["game_uuid"] == game for e in events)
    status, _, lobby = await call(server, "GET", "/game/awaiting", token=bob)
    assert lobby == {"games": []}


async def test_critical_path_draw(start_server: StartServer, database_url: str) -> None:
    server = await start_server(database_url=database_url)
    alice, bob = await sign_up(server, "alice"), await sign_up(server, "bob")
    players = {await me(server, alice): (alice, "alice"), await me(server, bob): (bob, "bob")}
    game = await new_game(server, alice, bob)
    xs, os = draw_cells()
    seen = await play(server, game, players, xs, os)
    assert seen[-1]["params"] == {"winner": None, "draw": True}
    assert len(seen) == 37
