"""The event log off the move path (referee/record.py): what stays guaranteed.

Over real TCP against the real service and a real SQLite file: every event
of a tournament is committed, in order, before any player has the Results; an
observer is never told an event the store does not hold (checked, at the
moment it is told, with a connection of its own); a store error fails the
tournament as it did when every move was its own awaited transaction. And,
without sockets: a writer that is behind by the queue's bound holds the
referee back.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from sqlalchemy import Connection, text

from duorelay.protocols import santorini as wire
from duorelay.referee import record
from duorelay.referee.record import Recorder
from duorelay.referee.spectators import SpectatorHub
from duorelay.services.santorini_clients import Bot
from duorelay.store.gateway import Store
from test_santorini import Watcher, play, rows, santorini
from test_santorini_observers import FakeSpectator
from test_santorini_observers import event as placement

NAMES = ["alpha", "bravo", "charlie", "delta"]


def stored(path: Path) -> closing[sqlite3.Connection]:
    """A reader of the service's database of its own (WAL: it sees what is
    committed), closed at the end of the ``with``."""
    return closing(sqlite3.connect(path / "duorelay.db"))


class CountingBot(Bot):
    """A good bot that counts its replies and, the moment its Results come (before
    anything else runs), reads the event log. At the first request of each game,
    it checks that the observer was told the outcome of each of its earlier games
    (so they were committed before the next began)."""

    def __init__(self, name: str, path: Path, watcher: Watcher) -> None:
        super().__init__(name)
        self.path = path
        self.watcher = watcher
        self.games = 0
        self.late_outcomes: list[int] = []
        self.replies = 0
        self.log_then: list[tuple[int, str, int, str]] | None = None
        self.games_then: list[tuple[str, str]] | None = None
        self.results_then: str | None = None

    def place(self, request: wire.PlacementRequest) -> object:
        self.replies += 1
        if len(request.workers) <= 1:  # this bot's first request of a new game
            told = sum(
                1
                for _, event in self.watcher.events
                if event["kind"] == "outcome" and self.name in (event["winner"], event["loser"])
            )
            if told != self.games:
                self.late_outcomes.append(self.games)
            self.games += 1
        return super().place(request)

    def turn(self, request: wire.TakeTurn) -> object:
        self.replies += 1
        return super().turn(request)

    async def play(self, stream: trio.SocketStream) -> list[wire.Result] | None:
        results = await super().play(stream)
        with stored(self.path) as db:  # no await since the Results arrived
            self.log_then = db.execute(
                "SELECT e.rowid, e.match_id, e.seq, e.kind FROM match_events e "
                "JOIN matches m ON m.id = e.match_id ORDER BY e.rowid"
            ).fetchall()
            self.games_then = db.execute(
                "SELECT id, status FROM matches ORDER BY rowid"
            ).fetchall()
            (self.results_then,) = db.execute("SELECT results FROM tournaments").fetchone()
        return results


async def test_every_event_is_committed_in_order_before_the_results_and_each_game_end(
    tmp_path: Path,
) -> None:
    watcher = Watcher()
    bots = [CountingBot(name, tmp_path, watcher) for name in NAMES]
    async with santorini(tmp_path, players=len(bots), watcher=watcher) as harness:
        await play(harness, list(bots))
    assert [bot.late_outcomes for bot in bots] == [[]] * len(bots)
    assert all(bot.games >= 6 for bot in bots)  # three best-of-3 series each
    (results,) = harness.results
    first = bots[0]
    assert first.results is not None and rows(first.results) == rows(results)
    assert first.log_then is not None and first.games_then is not None
    assert first.results_then is not None
    assert wire.loads(first.results_then) == rows(results)
    assert len(first.games_then) >= 6 * 2  # six best-of-3 series
    assert {status for _, status in first.games_then} == {"over"}
    # Game after game in playing order, each seq 1..n in the order written,
    # ending with its outcome; every reply of every bot is one of them.
    order = [game for game, _ in first.games_then]
    written = [(order.index(match), seq) for _, match, seq, _ in first.log_then]
    assert written == sorted(written)
    by_game: dict[str, list[tuple[int, str]]] = {}
    for _, match, seq, kind in first.log_then:
        by_game.setdefault(match, []).append((seq, kind))
    assert list(by_game) == order
    for events in by_game.values():
        assert [seq for seq, _ in events] == list(range(1, len(events) + 1))
        assert [kind for _, kind in events][-1] == "outcome"
        assert {kind for _, kind in events[:-1]} <= {"placement", "action"}
    moves = sum(1 for *_, kind in first.log_then if kind != "outcome")
    assert moves == sum(bot.replies for bot in bots)


class CheckingWatcher(Watcher):
    """An observer that, as it is told each event, looks for it in the store."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.missing: list[tuple[str | None, dict[str, Any]]] = []

    def publish(self, match_id: str | None, event: Mapping[str, object]) -> None:
        super().publish(match_id, event)
        with stored(self.path) as db:
            kind = event["kind"]
            if kind == "tournament-start":
                query, args = "SELECT 1 FROM tournaments WHERE id = ?", [event["tournament"]]
            elif kind == "tournament-end":
                query = "SELECT 1 FROM tournaments WHERE id = ? AND results IS NOT NULL"
                args = [event["tournament"]]
            elif kind == "game-start":
                query, args = "SELECT 1 FROM matches WHERE id = ?", [match_id]
            elif kind == "outcome":
                query = (
                    "SELECT 1 FROM matches m JOIN match_events e ON e.match_id = m.id "
                    "WHERE m.id = ? AND m.status = 'over' AND e.seq = ? AND e.kind = 'outcome'"
                )
                args = [match_id, event["seq"]]
            else:
                query = "SELECT 1 FROM match_events WHERE match_id = ? AND seq = ? AND kind = ?"
                args = [match_id, event["seq"], kind]
            if db.execute(query, args).fetchone() is None:
                self.missing.append((match_id, dict(event)))


async def test_an_observer_never_sees_an_event_before_the_store_has_it(tmp_path: Path) -> None:
    watcher = CheckingWatcher(tmp_path)
    async with santorini(tmp_path, players=len(NAMES), watcher=watcher) as harness:
        await play(harness, [Bot(name) for name in NAMES])
    assert harness.results
    kinds = [event["kind"] for _, event in watcher.events]
    assert kinds.count("outcome") >= 12 and kinds.count("action") > 0
    assert watcher.missing == []
    # Each game's events reached the observer in order.
    seqs: dict[str | None, list[Any]] = {}
    for match_id, event in watcher.events:
        if "seq" in event:
            seqs.setdefault(match_id, []).append(event["seq"])
    for seen in seqs.values():
        assert seen == list(range(1, len(seen) + 1))


async def test_a_store_error_fails_the_tournament_as_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The third event of a game cannot be written: the tournament fails (logged),
    # nobody gets Results, every connection is closed, and nothing that was not
    # committed reached the observer. The server (repeat) goes on.
    caplog.set_level(logging.INFO, "duorelay")
    watcher = CheckingWatcher(tmp_path)
    async with santorini(tmp_path, players=2, repeat=True, watcher=watcher) as harness:
        assert harness.store is not None
        trigger = (
            "CREATE TRIGGER fail BEFORE INSERT ON match_events WHEN NEW.seq = 3 "
            "BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
        )
        await harness.store.run(lambda c: c.execute(text(trigger)))
        alpha, bravo = Bot("alpha"), Bot("bravo")
        await play(harness, [alpha, bravo])  # returns once both connections ended
        assert "santorini: the tournament failed" in [
            r.getMessage() for r in caplog.records if r.levelno == logging.ERROR
        ]
        assert alpha.results is None and bravo.results is None
        assert harness.results == []
        assert watcher.missing == []
        assert all(event.get("seq", 0) < 3 for _, event in watcher.events)
        await harness.store.run(lambda c: c.execute(text("DROP TRIGGER fail")))
        await play(harness, [Bot("delta"), Bot("charlie")])
        while not harness.results:  # the Results are out before the close
            await trio.testing.wait_all_tasks_blocked()
    assert [rows(r) for r in harness.results] == [[["charlie", "delta"]]]


class GatedStore(Store):
    """A store whose transactions wait for :attr:`gate` to open."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.gate = trio.Event()

    async def run(self, fn: Any) -> Any:
        await self.gate.wait()
        return await super().run(fn)

    @classmethod
    async def closed_gate(cls, path: Path) -> GatedStore:
        """A migrated store at ``path`` whose gate is closed."""
        store = cls(f"sqlite:///{path}")
        store.gate.set()
        await store.migrate()
        store.gate = trio.Event()
        return store


async def test_a_writer_behind_by_the_bound_holds_the_referee_back(tmp_path: Path) -> None:
    store = await GatedStore.closed_gate(tmp_path / "gated.db")
    watcher = Watcher()
    queued = 0
    try:
        async with Recorder(store, watcher).writing() as recorder:

            async def referee() -> None:
                nonlocal queued
                await recorder.game_started("c" * 32, None, ["a", "b"], 1, 1)
                for seq in range(1, 2 * record.QUEUE_SIZE):
                    await recorder.event("c" * 32, seq, "placement", {"seq": seq})
                    queued += 1

            async with trio.open_nursery() as nursery:
                nursery.start_soon(referee)
                await trio.testing.wait_all_tasks_blocked()
                # The writer's batch holds the game's row and MAX_BATCH - 1 events,
                # the queue is full: the referee waits.
                assert queued == record.MAX_BATCH - 1 + record.QUEUE_SIZE
                assert watcher.events == []
                store.gate.set()
        # Committed, then published, every one, in order.
        seqs = [event["seq"] for _, event in watcher.events if event["kind"] == "placement"]
        assert seqs == list(range(1, 2 * record.QUEUE_SIZE))

        def count(connection: Connection) -> int:
            return int(connection.execute(text("SELECT count(*) FROM match_events")).scalar_one())

        assert await store.run(count) == 2 * record.QUEUE_SIZE - 1
        assert recorder.batches < recorder.writes
    finally:
        store.close()


async def test_a_cancelled_writer_commits_what_it_holds(tmp_path: Path) -> None:
    # The server stops (the tournament is cancelled) while events wait for the
    # store's turn: they are committed, shielded, then published.
    store = await GatedStore.closed_gate(tmp_path / "gated.db")
    watcher = Watcher()
    try:
        async with trio.open_nursery() as nursery:

            async def tournament(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
                with trio.CancelScope() as scope:
                    task_status.started(scope)
                    async with Recorder(store, watcher).writing() as recorder:
                        await recorder.game_started("d" * 32, None, ["a", "b"], 1, 1)
                        for seq in range(1, 11):
                            await recorder.event("d" * 32, seq, "placement", {"seq": seq})
                        await trio.sleep_forever()

            scope = await nursery.start(tournament)
            await trio.testing.wait_all_tasks_blocked()
            assert watcher.events == []
            scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            store.gate.set()
        assert [event.get("seq") for _, event in watcher.events] == [None, *range(1, 11)]

        def count(connection: Connection) -> int:
            return int(connection.execute(text("SELECT count(*) FROM match_events")).scalar_one())

        assert await store.run(count) == 10
    finally:
        store.close()


def test_a_spectator_never_gets_an_event_of_its_state_again() -> None:
    # The writer publishes a committed batch event by event, other tasks running
    # in between: a spectator may load event 3 (committed) and go live before
    # event 3 is published. It gets event 3 once: in its state.
    hub = SpectatorHub(backlog=8)
    spectator = FakeSpectator(8)
    subscription = hub.subscribe("m" * 32, spectator, pending=True)
    hub.publish("m" * 32, placement(2))  # committed and loaded: in the state
    hub.start(subscription, json.dumps({"kind": "state", "seq": 3}), 3)
    hub.publish("m" * 32, placement(3))  # committed, loaded, published late
    hub.publish("m" * 32, placement(4))
    assert [frame.get("seq") for frame in spectator.received()] == [3, 4]


async def test_a_writer_cancelled_after_its_store_closed_ends_cancelled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Beside the web server, the store's owner (RefereeStore.hold) and the
    # tournament are cancelled together at shutdown; the store may close
    # before the writer drains. The writer must still end cancelled (a clean
    # shutdown), not raise StoreClosed out of the serving nursery.
    store = Store(f"sqlite:///{tmp_path / 'closing.db'}")
    await store.migrate()
    watcher = Watcher()
    async with trio.open_nursery() as nursery:

        async def tournament() -> None:
            async with Recorder(store, watcher).writing() as recorder:
                await recorder.game_started("e" * 32, None, ["a", "b"], 1, 1)
                for seq in (1, 2, 3):
                    await recorder.event("e" * 32, seq, "placement", {"seq": seq})
                await trio.sleep_forever()

        nursery.start_soon(tournament)
        await trio.testing.wait_all_tasks_blocked()  # queued; the writer gathers
        store.close()  # the owner's finally ran first
        nursery.cancel_scope.cancel()
    assert watcher.events == []  # nothing published that was not stored
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["santorini: 4 events not stored: the store is closed"]
