"""The XO game across two duorelay processes sharing one Redis and one database:
broadcasts reach the connections of the game on the other process, and each
process's match state follows the moves decided on the other."""

from __future__ import annotations

import json
from typing import Any

import trio
from trio_websocket import WebSocketConnection

from scaleout.conftest import RedisServer, duorelays
from xo_client import authorize, broadcast, call, move, reply, sign_up

OK = {"ok": True, "error": None}


def shared(database_url: str) -> dict[str, str]:
    """The settings of processes sharing ``database_url`` (SQLite or PostgreSQL)."""
    return {
        "DUORELAY_DATABASE_URL": database_url,
        "DUORELAY_PASSWORD_PROFILE": "cheapest",
        "DUORELAY_JWT_SECRET": "s" * 64,
    }


async def test_game_across_two_processes(redis: RedisServer, database_url: str) -> None:
    env = shared(database_url)
    async with duorelays(redis, 2, **env) as [(_, a), (_, b)]:
        alice, bob = await sign_up(a, "alice"), await sign_up(b, "bob")
        game = (await call(a, "POST", "/game/", token=alice))[2]["game_uuid"]
        intra_a = (await call(a, "GET", f"/auth/intratoken/{game}", token=alice))[2]
        async with a.connect() as wa, b.connect() as wb:
            await wa.send_message(authorize(intra_a["access_token"]))
            assert await reply(wa) == OK
            # Bob joins through the other process: Alice's connection sees game_init.
            status, _, _ = await call(b, "POST", "/game/connect", token=bob, body={"uuid": game})
            assert status == 200
            init = await broadcast(wa)
            assert init["name"] == "game_init"
            intra_b = (await call(b, "GET", f"/auth/intratoken/{game}", token=bob))[2]
            await wb.send_message(authorize(intra_b["access_token"]))
            assert await reply(wb) == OK
            players = {init["params"]["initiator"]: wa, init["params"]["opponent"]: wb}
            x = init["params"]["starter"]
            o = next(p for p in players if p != x)
            cells = [(x, (0, 0)), (o, (0, 1)), (x, (1, 0)), (o, (1, 1)), (x, (2, 0))]
            cells += [(o, (2, 1)), (x, (3, 0))]
            for sequence, (player, (cx, cy)) in enumerate(cells, start=2):
                sender = players[player]
                await sender.send_message(move(game, player, sequence, cx, cy))
                for ws in (wa, wb):
                    event = await broadcast(ws)
                    assert (event["sequence"], event["params"]["cell"]) == (sequence, [cx, cy])
                    if sequence == 8:
                        assert (await broadcast(ws))["params"] == {"winner": x, "draw": False}
                    if ws is sender:
                        assert await reply(ws) == OK
            # Each process refuses a move after the end (its state followed).
            for player, ws in players.items():
                await ws.send_message(move(game, player, 10, 5, 5))
                finished = {"ok": False, "error": "Illegal move: the game is finished"}
                assert await reply(ws) == finished
        status, _, events = await call(b, "GET", f"/game/fetch/{game}", token=alice)
        assert [e["sequence"] for e in events] == list(range(1, 10))


async def frames(ws: WebSocketConnection, count: int) -> tuple[list[Any], list[Any]]:
    """The next ``count`` frames of ``ws``: (replies, broadcast events)."""
    replies, events = [], []
    for _ in range(count):
        frame = json.loads(await ws.get_message())
        if isinstance(frame, str):
            replies.append(json.loads(frame))
        else:
            assert frame["type"] == "broadcast", frame
            events.append(frame["data"])
    return replies, events


async def test_the_database_decides_between_two_concurrent_moves(
    redis: RedisServer, database_url: str
) -> None:
    """The player on turn sends the same sequence number, two different cells,
    through both processes at once: exactly one move counts (the unique key on
    game and sequence decides); both connections see that one, and the other
    sender gets ok false; the log has it once."""
    async with duorelays(redis, 2, **shared(database_url)) as [(_, a), (_, b)]:
        alice, bob = await sign_up(a, "alice"), await sign_up(b, "bob")
        game = (await call(a, "POST", "/game/", token=alice))[2]["game_uuid"]
        status, _, _ = await call(b, "POST", "/game/connect", token=bob, body={"uuid": game})
        assert status == 200
        init = (await call(a, "GET", f"/game/fetch/{game}", token=alice))[2][0]
        starter = init["params"]["starter"]
        token = alice if starter == init["params"]["initiator"] else bob
        intra = (await call(a, "GET", f"/auth/intratoken/{game}", token=token))[2]
        async with a.connect() as on_a, b.connect() as on_b:
            for ws in (on_a, on_b):
                await ws.send_message(authorize(intra["access_token"]))
                assert await reply(ws) == OK
            async with trio.open_nursery() as nursery:
                nursery.start_soon(on_a.send_message, move(game, starter, 2, 0, 0))
                nursery.start_soon(on_b.send_message, move(game, starter, 2, 5, 5))
            (reply_a,), events_a = await frames(on_a, 2)
            (reply_b,), events_b = await frames(on_b, 2)
        assert sorted([reply_a["ok"], reply_b["ok"]]) == [False, True]
        assert len(events_a) == len(events_b) == 1
        assert events_a[0] == events_b[0]
        won = events_a[0]
        assert won["sequence"] == 2
        assert won["params"]["cell"] == ([0, 0] if reply_a["ok"] else [5, 5])
        status, _, stored = await call(b, "GET", f"/game/fetch/{game}", token=alice)
        assert [(e["sequence"], e["params"].get("cell")) for e in stored] == [
            (1, None),
            (2, won["params"]["cell"]),
        ]
