"""The XO game across two duorelay processes sharing one Redis and one database:
broadcasts reach the connections of the game on the other process, and each
process's match state follows the moves decided on the other."""

from __future__ import annotations

from pathlib import Path

from scaleout.conftest import RedisServer, duorelays
from xo_client import authorize, broadcast, call, move, reply, sign_up

OK = {"ok": True, "error": None}


async def test_game_across_two_processes(redis: RedisServer, tmp_path: Path) -> None:
    env = {
        "DUORELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'xo.db'}",
        "DUORELAY_PASSWORD_PROFILE": "cheapest",
        "DUORELAY_JWT_SECRET": "s" * 64,
    }
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
