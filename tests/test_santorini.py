"""Santorini tournaments over real TCP sockets against the real service, in-process.

Clients are the built-in bots (:mod:`duorelay.services.santorini_clients`),
deterministic, or subclasses that misbehave in one way. Registration order is
made exact with :func:`settle` after each name (server and clients share one
trio run). The lobby closes when ``santorini_max_players`` have registered, so
no test waits for "waiting for" to pass, except the one about it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from sqlalchemy import select

from conftest import STATIC_DIR, settle
from duorelay.games import santorini as rules
from duorelay.observability import Stats
from duorelay.protocols import santorini as wire
from duorelay.referee.record import Recorder
from duorelay.referee.tournament import Standings, schedule, unique_names
from duorelay.services.santorini import SantoriniServer, ServerConfig
from duorelay.services.santorini_clients import NO_REPLY, Bot, Kind
from duorelay.settings import Settings
from duorelay.store.gateway import Store
from duorelay.store.schema import match_events, matches, tournaments

R = wire.Result
EXAMPLE = [["alpha", "mallory", "irregular"], ["bravo", "alpha"]]


class Watcher:
    """An observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[str | None, dict[str, Any]]] = []

    def publish(self, match_id: str | None, event: Mapping[str, object]) -> None:
        self.events.append((match_id, dict(event)))


@dataclass
class Harness:
    server: SantoriniServer
    store: Store | None
    watcher: Watcher
    results: list[list[wire.Result]] = field(default_factory=list)
    played: bool | None = None
    finished: trio.Event = field(default_factory=trio.Event)

    @property
    def port(self) -> int:
        assert self.server.address is not None
        return self.server.address[1]

    async def connect(self) -> trio.SocketStream:
        return await trio.open_tcp_stream("127.0.0.1", self.port)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "static_dir": STATIC_DIR,
        "santorini_time_per_call": 5.0,
        "santorini_registration_timeout": 5.0,
    }
    return Settings(**{**values, **overrides})


@asynccontextmanager
async def santorini(
    tmp_path: Path,
    *,
    players: int = 3,
    min_players: int = 2,
    waiting_for: float = 60.0,
    repeat: bool = False,
    store: bool = True,
    watcher: Watcher | None = None,
    **overrides: Any,
) -> AsyncIterator[Harness]:
    """A running service; without ``repeat`` it ends by itself after one tournament."""
    database = Store(f"sqlite:///{tmp_path / 'duorelay.db'}") if store else None
    if database is not None:
        await database.migrate()
    watcher = watcher or Watcher()
    config = ServerConfig(min_players, waiting_for, repeat, port=0)
    harness = Harness(None, database, watcher)  # type: ignore[arg-type]
    harness.server = SantoriniServer(
        config,
        settings(santorini_max_players=players, **overrides),
        Stats(),
        Recorder(database, watcher),
        on_results=harness.results.append,
    )

    async def run(task_status: trio.TaskStatus[None]) -> None:
        try:
            harness.played = await harness.server.run(task_status=task_status)
        finally:
            harness.finished.set()

    try:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(run)
                yield harness
                if repeat:
                    nursery.cancel_scope.cancel()
                else:
                    await harness.finished.wait()
    finally:
        if database is not None:
            database.close()


async def play(harness: Harness, bots: list[Bot]) -> None:
    """Register ``bots`` in order (each name processed before the next), play them
    until their connections end; returns when the service has finished."""
    async with trio.open_nursery() as nursery:
        for bot in bots:
            stream = await harness.connect()
            await bot.register(stream)
            await settle()
            nursery.start_soon(play_one, bot, stream)


async def play_one(bot: Bot, stream: trio.SocketStream) -> None:
    async with stream:
        await bot.play(stream)


def rows(results: list[wire.Result]) -> list[list[str]]:
    return wire.results_message(results)


# -- the example of docs/santorini.md ------------------------------------------------------


async def test_the_example_of_the_contract(tmp_path: Path) -> None:
    mallory, alpha, bravo = Bot("mallory", Kind.BREAKER), Bot("alpha"), Bot("bravo")
    async with santorini(tmp_path) as harness:
        await play(harness, [mallory, alpha, bravo])
    assert [rows(r) for r in harness.results] == [EXAMPLE]
    assert mallory.received == [
        "alpha",
        [],
        [["mallory1", 0, 0], ["alpha1", 5, 5]],
        [
            ["0mallory1", 0, 0, 0, 0, "0alpha2"],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            ["0mallory2", 0, 0, 0, 0, "0alpha1"],
        ],
    ]
    assert mallory.results is None  # closed (the stream ended) and told nothing
    assert alpha.received[:3] == [
        "mallory",
        [["mallory1", 0, 0]],
        [["mallory1", 0, 0], ["alpha1", 5, 5], ["mallory2", 0, 5]],
    ]
    assert alpha.received[3] == "bravo"
    for bot in (alpha, bravo):
        assert bot.results is not None and rows(bot.results) == EXAMPLE
    assert harness.played is True


async def test_the_event_log_is_the_truth(tmp_path: Path) -> None:
    mallory, alpha, bravo = Bot("mallory", Kind.BREAKER), Bot("alpha"), Bot("bravo")

    def read(connection: Any) -> tuple[Any, Any, Any]:
        return (
            connection.execute(select(tournaments)).mappings().all(),
            connection.execute(select(matches).order_by(matches.c.created_at)).mappings().all(),
            connection.execute(
                select(match_events).order_by(match_events.c.match_id, match_events.c.seq)
            )
            .mappings()
            .all(),
        )

    async with santorini(tmp_path) as harness:
        await play(harness, [mallory, alpha, bravo])
        # The bots are done once the Results came: everything was stored before.
        assert harness.store is not None
        (tournament,), games, events = await harness.store.run(read)
    assert tournament["players"] == ["mallory", "alpha", "bravo"]
    assert tournament["schedule"] == [
        ["mallory", "alpha"],
        ["mallory", "bravo"],
        ["alpha", "bravo"],
    ]
    assert tournament["results"] == EXAMPLE
    assert tournament["finished_at"] is not None
    assert [g["status"] for g in games] == ["over"] * len(games)
    first, *others = games
    assert first["players"] == ["mallory", "alpha"]
    assert first["result"] == {
        "winner": "alpha",
        "loser": "mallory",
        "ending": "irregular",
        "reason": "alpha2 is not your worker",
        "series": 1,
        "game": 1,
    }
    assert len(others) == 2  # bravo won games 1 and 2 of series 3
    assert [g["result"]["winner"] for g in others] == ["bravo", "bravo"]
    by_match: dict[str, list[Any]] = {}
    for event in events:
        by_match.setdefault(event["match_id"], []).append(event)
    first_events = by_match[first["id"]]
    assert [(e["seq"], e["kind"]) for e in first_events] == [
        (1, "placement"),
        (2, "placement"),
        (3, "placement"),
        (4, "placement"),
        (5, "outcome"),
    ]
    assert first_events[0]["data"]["place"] == [0, 0]
    assert first_events[0]["data"]["worker"] == "mallory1"
    assert isinstance(first_events[0]["data"]["ms"], int)
    # Replaying a game's events gives the board each action event recorded.
    game = by_match[others[0]["id"]]
    assert [e["seq"] for e in game] == list(range(1, len(game) + 1))
    state = rules.new_game("alpha", "bravo")
    for event in game[:-1]:
        if event["kind"] == "placement":
            state = rules.apply(state, wire.decode_place(event["data"]["place"]))
        else:
            state = rules.apply(state, wire.decode_action(event["data"]["action"]))
            assert rules.encode_board(state) == event["data"]["board"]
    assert rules.outcome(state) is not None
    assert game[-1]["kind"] == "outcome" and game[-1]["data"]["ending"] == "climb"
    # The observer saw the stored events, in order, and the tournament's ends.
    seen = [(m, e["kind"], e.get("seq")) for m, e in harness.watcher.events]
    assert seen[0] == (None, "tournament-start", None)
    assert seen[-1] == (None, "tournament-end", None)
    stored = [(e["match_id"], e["kind"], e["seq"]) for e in events]
    assert sorted(s for s in seen if s[2] is not None) == sorted(stored)


async def test_results_survive_a_restart(tmp_path: Path) -> None:
    async with santorini(tmp_path, players=2) as harness:
        await play(harness, [Bot("alpha"), Bot("bravo")])
    assert [rows(r) for r in harness.results] == [[["bravo", "alpha"]]]
    reopened = Store(f"sqlite:///{tmp_path / 'duorelay.db'}")
    try:
        await reopened.migrate()
        saved = await reopened.run(
            lambda c: c.execute(select(tournaments.c.results)).scalars().all()
        )
    finally:
        reopened.close()
    assert saved == [[["bravo", "alpha"]]]


# -- misbehaviour (section 5) ------------------------------------------------------------


class Cheat(Bot):
    """A good bot until its series against ``against``; there it misbehaves in
    ``how`` on its first request (placement or turn, per ``at``)."""

    def __init__(self, how: str, at: str = "placement", against: str = "bravo") -> None:
        super().__init__("cheat")
        self.how, self.at, self.against = how, at, against
        self.opponent: str | None = None
        self.stream: trio.SocketStream | None = None
        self.done = False

    async def play(self, stream: trio.SocketStream) -> list[wire.Result] | None:
        self.stream = stream
        return await super().play(stream)

    def _armed(self, kind: str) -> bool:
        return self.opponent == self.against and self.at == kind and not self.done

    def place(self, request: wire.PlacementRequest) -> object:
        self._note_opponent()
        if self._armed("placement"):
            self.done = True
            return self.misbehave(request)
        return super().place(request)

    def turn(self, request: wire.TakeTurn) -> object:
        self._note_opponent()
        if self._armed("turn"):
            self.done = True
            return self.misbehave(request)
        return super().turn(request)

    def _note_opponent(self) -> None:
        others = [v for v in self.received if isinstance(v, str)]
        self.opponent = others[-1] if others else None

    def misbehave(self, request: wire.PlacementRequest | wire.TakeTurn) -> object:
        if self.how in ("garbage", "not-json", "oversize", "disconnect"):
            return Raw(self.how)
        if self.how == "silent":
            return NO_REPLY
        if self.how == "illegal-placement":
            return [6, 0]
        if self.how == "occupied-placement":
            assert isinstance(request, wire.PlacementRequest)
            return [request.workers[0][1].x, request.workers[0][1].y]
        if self.how == "illegal-move":
            assert isinstance(request, wire.TakeTurn)
            return wire.encode_action(rules.MoveBuild("bravo2", 0, 1, 0, -1))
        if self.how == "give-up-for-another":
            return "bravo"
        if self.how == "bad-shape":
            return {"x": 0}
        raise AssertionError(self.how)

    async def send(self, stream: trio.SocketStream, value: object) -> None:
        if not isinstance(value, Raw):
            return await super().send(stream, value)
        if value.how == "garbage":
            await stream.send_all(b"\xff\xfe\x00\x01")
        elif value.how == "not-json":
            await stream.send_all(b"[1 2]\n")
        elif value.how == "oversize":
            await stream.send_all(json.dumps("x" * 9000).encode())
        elif value.how == "disconnect":
            await stream.aclose()
            raise trio.ClosedResourceError


@dataclass(frozen=True)
class Raw:
    how: str


async def play_one_tolerant(bot: Bot, stream: trio.SocketStream) -> None:
    async with stream:
        with suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            await bot.play(stream)


CHEATS = [
    ("garbage", "placement"),
    ("not-json", "placement"),
    ("oversize", "turn"),
    ("silent", "placement"),
    ("silent", "turn"),
    ("disconnect", "turn"),
    ("illegal-placement", "placement"),
    ("illegal-move", "turn"),
    ("give-up-for-another", "turn"),
    ("bad-shape", "turn"),
]


@pytest.mark.parametrize(("how", "at"), CHEATS)
async def test_misbehaviour_loses_and_rewrites_the_past(tmp_path: Path, how: str, at: str) -> None:
    # Schedule: alpha-cheat (cheat, player two, wins as good bots do), alpha-bravo
    # (bravo wins), cheat-bravo (cheat misbehaves): its win over alpha is rewritten.
    alpha, cheat, bravo = Bot("alpha"), Cheat(how, at), Bot("bravo")
    overrides = {"santorini_time_per_call": 1.0} if how == "silent" else {}
    async with santorini(tmp_path, **overrides) as harness, trio.open_nursery() as nursery:
        for bot in (alpha, cheat, bravo):
            stream = await harness.connect()
            await bot.register(stream)
            await settle()
            nursery.start_soon(play_one_tolerant, bot, stream)
    expected = [["alpha", "cheat"], ["bravo", "alpha"], ["bravo", "cheat", "irregular"]]
    assert [rows(r) for r in harness.results] == [expected]
    assert cheat.done
    assert cheat.results is None
    for bot in (alpha, bravo):
        assert bot.results is not None and rows(bot.results) == expected
    # After misbehaving, the cheat got nothing more: its last message was the request.
    last = cheat.received[-1]
    assert isinstance(
        wire.classify(last), wire.PlacementRequest if at == "placement" else wire.TakeTurn
    )


async def test_a_bad_name_is_closed_and_the_tournament_goes_on(tmp_path: Path) -> None:
    async with santorini(tmp_path, players=2) as harness:
        bad = await harness.connect()
        async with bad:
            await bad.send_all(b'"Zed1"')
            assert await bad.receive_some() == b""  # closed at once
            await play(harness, [Bot("alpha"), Bot("bravo")])
    assert [rows(r) for r in harness.results] == [[["bravo", "alpha"]]]


async def test_a_silent_registration_times_out(tmp_path: Path) -> None:
    async with santorini(tmp_path, players=2, santorini_registration_timeout=0.2) as harness:
        silent = await harness.connect()
        async with silent:
            assert await silent.receive_some() == b""
            await play(harness, [Bot("alpha"), Bot("bravo")])
    assert [rows(r) for r in harness.results] == [[["bravo", "alpha"]]]


async def test_a_second_unasked_value_breaks_the_protocol(tmp_path: Path) -> None:
    async with santorini(tmp_path, players=2) as harness:
        eager = await harness.connect()
        async with eager:
            await eager.send_all(b'"eager" [0, 0] [1, 1]')
            assert await eager.receive_some() == b""
            await play(harness, [Bot("alpha"), Bot("bravo")])
    assert [rows(r) for r in harness.results] == [[["bravo", "alpha"]]]


# -- framing (section 1) -----------------------------------------------------------------


class Dribbler(Bot):
    """Writes every value one byte at a time, without a newline."""

    async def send(self, stream: trio.SocketStream, value: object) -> None:
        for byte in json.dumps(value).encode():
            await stream.send_all(bytes([byte]))


class Eager(Bot):
    """Sends its name and its first placement in one write (one value ahead)."""

    async def register(self, stream: trio.SocketStream) -> None:
        await stream.send_all(b' "alpha"\t[0,0]\r\n')

    sent_ahead = True

    def place(self, request: wire.PlacementRequest) -> object:
        if self.sent_ahead:
            self.sent_ahead = False
            return NO_REPLY  # sent with the name
        return super().place(request)


async def test_one_byte_writes_and_no_newline(tmp_path: Path) -> None:
    alpha, bravo = Dribbler("alpha"), Dribbler("bravo")
    async with santorini(tmp_path, players=2) as harness:
        await play(harness, [alpha, bravo])
    assert [rows(r) for r in harness.results] == [[["bravo", "alpha"]]]
    assert bravo.results is not None and rows(bravo.results) == [["bravo", "alpha"]]


async def test_several_values_in_one_write(tmp_path: Path) -> None:
    alpha, bravo = Eager("alpha"), Bot("bravo")
    async with santorini(tmp_path, players=2) as harness:
        await play(harness, [alpha, bravo])
    assert [rows(r) for r in harness.results] == [[["bravo", "alpha"]]]
    assert alpha.received[:2] == ["bravo", []]


def test_bots_accept_ragged_boards() -> None:
    # The reference omits trailing zeros and rows.
    ragged = [
        ["0mallory1", 0, 0, 0, 0, "0alpha2"],
        [],
        [],
        [],
        [],
        ["0mallory2", 0, 0, 0, 0, "0alpha1"],
    ]
    message = wire.classify(ragged)
    assert isinstance(message, wire.TakeTurn)
    shorter = [
        ["0mallory1", 0, 0, 0, 0, "0alpha2"],
        [1],
        [0, 2],
        [],
        [],
        ["0mallory2", 0, 0, 0, 0, "0alpha1"],
    ]
    bot = Bot("alpha")
    action = bot.turn(wire.classify(shorter))  # type: ignore[arg-type]
    state = rules.state_from_board(rules.decode_board(shorter), ("alpha", "mallory"))
    rules.apply(state, wire.decode_action(action))  # legal


# -- names (section 2) -------------------------------------------------------------------


def test_unique_names_follow_the_reference() -> None:
    assert unique_names(["matthias", "matthias"]) == ["matthias", "matthiasa"]
    assert unique_names(["x", "x", "xa", "abcd", "x"]) == ["x", "xa", "xaa", "abcd", "xaaaa"]


async def test_duplicate_names_are_renamed(tmp_path: Path) -> None:
    first, second = Bot("alpha"), Bot("alpha")
    async with santorini(tmp_path, players=2) as harness:
        await play(harness, [first, second])
    assert second.received[0] == ["playing-as", "alphaa"]
    assert second.name == "alphaa"
    assert "playing-as" not in json.dumps(first.received)
    assert [rows(r) for r in harness.results] == [[["alphaa", "alpha"]]]
    assert second.received[1] == "alpha" and first.received[0] == "alphaa"


async def test_players_are_not_rate_limited(tmp_path: Path) -> None:
    # One reply per 1000 s would make every player too slow if the websocket
    # rate limit applied: a player answers at the referee's pace.
    bots = [Bot("alpha"), Bot("bravo")]
    async with santorini(
        tmp_path, players=2, store=False, max_rate=0.001, max_burst=1, santorini_time_per_call=2.0
    ) as harness:
        await play(harness, bots)
    assert [rows(r) for r in harness.results] == [[["bravo", "alpha"]]]
    assert [bot.results is not None for bot in bots] == [True, True]


# -- the lobby (section 6) ---------------------------------------------------------------


async def test_too_few_players_no_tournament(tmp_path: Path) -> None:
    async with santorini(tmp_path, players=4, min_players=3, waiting_for=0.3) as harness:
        lonely = [Bot("alpha"), Bot("bravo")]
        await play(harness, lonely)  # returns when the service closes them
    assert harness.played is False
    assert harness.results == []
    assert [bot.results for bot in lonely] == [None, None]


class Starter(Bot):
    """A good bot that sets ``started`` when the first request reaches it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.started = trio.Event()

    def place(self, request: wire.PlacementRequest) -> object:
        self.started.set()
        return super().place(request)


async def test_waiting_for_ends_the_registration(tmp_path: Path) -> None:
    # Three places, two players: the tournament starts once no one came for 0.3 s;
    # a registration during the tournament is refused (no repeat).
    alpha, bravo = Starter("alpha"), Bot("bravo")
    async with (
        santorini(tmp_path, players=3, waiting_for=0.3) as harness,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(play, harness, [alpha, bravo])
        await alpha.started.wait()
        late = await harness.connect()
        async with late:
            await late.send_all(b'"late"')
            assert await late.receive_some() == b""
    assert [rows(r) for r in harness.results] == [[["bravo", "alpha"]]]


async def test_repeat_runs_tournament_after_tournament(tmp_path: Path) -> None:
    async with santorini(tmp_path, players=2, repeat=True) as harness:
        await play(harness, [Bot("alpha"), Bot("bravo")])
        await play(harness, [Bot("delta"), Bot("charlie")])
        while len(harness.results) < 2:  # the second Results are out before the close
            await settle()
    assert [rows(r) for r in harness.results] == [[["bravo", "alpha"]], [["charlie", "delta"]]]
    assert harness.server.tournaments == 2


async def test_without_a_store(tmp_path: Path) -> None:
    async with santorini(tmp_path, players=2, store=False) as harness:
        await play(harness, [Bot("alpha"), Bot("bravo")])
    assert [rows(r) for r in harness.results] == [[["bravo", "alpha"]]]
    assert [e["kind"] for _, e in harness.watcher.events][-1] == "tournament-end"


# -- the policy, plain calls -------------------------------------------------------------


def test_schedule_is_round_robin_in_order() -> None:
    assert schedule(4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def test_policy_rewrites_and_drops() -> None:
    standings = Standings()
    standings.record(R("c", "a"))
    standings.record(R("b", "d", irregular=True), cheater="d")
    standings.record(R("c", "b"))
    standings.record(R("a", "c", irregular=True), cheater="c")
    assert standings.results == [R("a", "c"), R("b", "d", True), R("b", "c"), R("a", "c", True)]
    # c's win over a cheater is dropped when c is expelled too.
    standings = Standings()
    standings.record(R("c", "d", irregular=True), cheater="d")
    standings.record(R("a", "c", irregular=True), cheater="c")
    assert standings.results == [R("a", "c", True)]
    assert standings.cheaters == ["d", "c"]
