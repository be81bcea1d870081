"""The UTTT server against a hostile or unlucky client (review of issue 13):
each test a defect found by probing a real server, with the exact messages."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from conftest import StartServer
from duorelay.games import uttt as rules
from duorelay.games.base import Player
from duorelay.protocols import uttt as wire
from duorelay.referee.accounts import Accounts
from duorelay.services import uttt as service
from duorelay.services import uttt_online as online
from duorelay.store.matches import SHOWN_FINISHED
from test_uttt import challenge, logged_in, reconnected


async def test_match_states_requests_are_rate_limited(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each match_states_request reloads every match of the user from the
    # store: a flood of them kept the store threads busy for everyone.
    monkeypatch.setattr(online, "STATES_RATE", 0.001)
    server = await start_server()
    async with logged_in(server, "ann") as ann, logged_in(server, "bob") as bob:
        match_id = await challenge(ann, bob, "bob")
        for _ in range(online.STATES_BURST + 3):
            await ann.send("match_states_request", None)
        for _ in range(online.STATES_BURST):
            assert (await ann.expect("match_update"))["id"] == match_id
        for _ in range(3):
            assert await ann.expect("error") == {
                "msg": "too many match_states_request: wait a second"
            }
        await ann.send("match_request", {"player": None})  # the connection stays
        assert (await ann.expect("match_request_response"))["success"]


async def test_match_states_never_overtake_a_newer_push(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # match_states_request loaded the match, a move was pushed meanwhile, then
    # the stale state was sent after it: the client showed the old position.
    server = await start_server()
    entered, gate = trio.Event(), trio.Event()
    hold: list[bool] = []
    original = service.UtttService._send

    async def send(self: Any, client: Any, message: wire.ServerMessage) -> None:
        if hold and isinstance(message, wire.MatchUpdate):
            hold.clear()
            entered.set()
            await gate.wait()
        await original(self, client, message)

    monkeypatch.setattr(service.UtttService, "_send", send)
    async with logged_in(server, "ann") as ann, logged_in(server, "bob") as bob:
        match_id = await challenge(ann, bob, "bob")
        assert ann.session_id is not None
        async with reconnected(server, ann.session_id, matches=1) as tab:
            hold.append(True)
            await ann.send("match_states_request", None)
            await entered.wait()  # the old state is loaded, not yet sent
            await tab.move(match_id, rules.Move(Player.FIRST, 1, 1, 1, 1))
            moved = await tab.expect("match_update")
            assert await bob.expect("match_update") == moved
            gate.set()
            old = await ann.expect("match_update")
            assert old["match_state"]["last_move"] is None
            assert await ann.expect("match_update") == moved  # the newest comes last


async def test_a_greeting_shows_a_bounded_number_of_finished_matches(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An opponent who started and ended matches with an offline player made
    # that player's next greeting one match_update per match, without bound.
    monkeypatch.setattr(service, "MATCH_BURST", 100)
    server = await start_server()
    async with logged_in(server, "ann"):
        pass
    async with logged_in(server, "bob") as bob:
        ids = []
        for _ in range(SHOWN_FINISHED + 5):
            await bob.send("match_request", {"player": "ann"})
            assert (await bob.expect("match_request_response"))["success"]
            match_id = (await bob.expect("match_update"))["id"]
            await bob.send("end_match", {"id": match_id})
            assert (await bob.expect("match_update"))["match_state"]["game_over"]
            ids.append(match_id)
        await bob.send("match_request", {"player": "ann"})
        assert (await bob.expect("match_request_response"))["success"]
        live = (await bob.expect("match_update"))["id"]
    async with logged_in(server, "ann", matches=SHOWN_FINISHED + 1) as ann:
        shown = [update["id"] for update in ann.greeted[3:]]  # type: ignore[attr-defined]
        assert shown == [*ids[-SHOWN_FINISHED:], live]  # the newest, oldest first
        await ann.send("match_states_request", None)
        assert (await ann.expect("match_update"))["id"] == live  # all seen now
        await ann.send("match_request", {"player": "bob"})
        assert not (await ann.expect("match_request_response"))["success"]


async def test_match_requests_are_rate_limited_per_account(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Starting and ending matches in a loop created match rows (and pushes to
    # the opponent) as fast as the connection could send, from every tab.
    monkeypatch.setattr(service, "MATCH_RATE", 0.001)
    server = await start_server()
    async with logged_in(server, "ann") as ann, logged_in(server, "ann") as tab:
        for client in (ann, tab) * (service.MATCH_BURST // 2):
            await client.send("match_request", {"player": "nobody"})
            assert await client.expect("match_request_response") == {
                "success": False,
                "msg": "no player called nobody",
            }
        for client in (ann, tab):
            await client.send("match_request", {"player": None})
            assert await client.expect("match_request_response") == {
                "success": False,
                "msg": "too many match requests: wait a few seconds",
            }
        assert len(server.app.uttt.matchmaking or ()) == 0


async def test_logins_racing_the_registration_of_their_name(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two tabs logging in with a new name and the same password at once: the
    # one whose sign-up lost the race was refused "that name is taken".
    server = await start_server()
    hashed = trio.Event()
    waiting: list[int] = []
    original = Accounts.hash

    async def hash_together(self: Any, password: str) -> str:
        waiting.append(1)
        if len(waiting) == 2:
            hashed.set()
        await hashed.wait()  # both sign-ups saw no account; both hash
        return await original(self, password)

    monkeypatch.setattr(Accounts, "hash", hash_together)
    results: list[Any] = []

    async def log_in() -> None:
        async with server.connect("/uttt") as ws:
            await ws.send_message('{"type": "login", "data": {"name": "Ann", "pw": "secret"}}')
            results.append(json.loads(await ws.get_message())["data"])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(log_in)
        nursery.start_soon(log_in)
    assert sorted(r["msg"] for r in results) == ["logged in as ann", "logged in as ann"]
    assert all(r["success"] and r["registered"] for r in results)
