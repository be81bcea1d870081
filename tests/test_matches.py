"""The match task (referee/matches.py) on a real SQLite store: order of
listeners and replies, refusals store nothing, the database decides between
two processes, and a match task lives exactly while it is watched or busy."""

from __future__ import annotations

from typing import Any

import trio
from sqlalchemy import Connection, select

from conftest import LIVE_MATCH
from duorelay.games import IllegalMove, tictactoe
from duorelay.referee.group_commit import Write
from duorelay.referee.matches import Decision, Event, Match, Matches, Refused
from duorelay.store.accounts import now
from duorelay.store.gateway import Store
from duorelay.store.matches import MOVED, moved
from duorelay.store.schema import match_events, matches

MATCH = LIVE_MATCH  # the live match of the match_store fixture (tests/conftest.py)


class TicTacToe:
    """A 3x3 game whose events are ``move`` ``{"x", "y"}``; commands are ``(x, y)``."""

    def load(self, connection: Connection, match_id: str) -> tuple[tictactoe.State, int] | None:
        if (
            connection.execute(select(matches.c.id).where(matches.c.id == match_id)).first()
            is None
        ):
            return None
        rows = connection.execute(
            select(match_events.c.seq, match_events.c.data)
            .where(match_events.c.match_id == match_id)
            .order_by(match_events.c.seq)
        ).all()
        state = tictactoe.new_game()
        for _, data in rows:
            state = tictactoe.apply(state, tictactoe.Move(state.to_move, data["x"], data["y"]))
        return state, len(rows)

    def decide(self, state: tictactoe.State, seq: int, command: tuple[int, int]) -> Decision[Any]:
        x, y = command
        try:
            after = tictactoe.apply(state, tictactoe.Move(state.to_move, x, y))
        except IllegalMove as illegal:
            raise Refused(illegal.reason) from None
        return Decision(after, (Event("move", {"x": x, "y": y}),))

    def write(self, match_id: str, decision: Decision[Any]) -> Write:
        return Write({MOVED: [moved(match_id, now())]})


async def stored(match_store: Store) -> list[tuple[int, str, dict[str, Any]]]:
    rows = await match_store.run(
        lambda c: c.execute(
            select(match_events.c.seq, match_events.c.kind, match_events.c.data).order_by(
                match_events.c.seq
            )
        ).all()
    )
    return [tuple(row) for row in rows]


class Replies:
    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[Any](10)
        self.seen: list[str] = []

    def listener(self, match: Match[Any], decision: Decision[Any]) -> None:
        self.seen.append(f"listener {[e.seq for e in decision.events]}")

    def reply(self, result: Decision[Any] | Refused) -> None:
        if isinstance(result, Refused):
            self.seen.append(f"refused {result.reason}")
        else:
            self.seen.append(f"reply {[e.seq for e in result.events]}")
        self.send.send_nowait(result)


async def test_stored_then_listeners_then_reply(match_store: Store) -> None:
    matches_ = Matches(match_store, TicTacToe(), "test", linger=0)
    replies = Replies()
    async with trio.open_nursery() as nursery:
        await nursery.start(matches_.run)
        async with matches_.watch(MATCH, replies.listener) as match:
            assert match is not None and match.seq == 0
            assert await matches_.submit(MATCH, (0, 0), replies.reply)
            await replies.receive.receive()
            assert await matches_.submit(MATCH, (0, 0), replies.reply)
            refused = await replies.receive.receive()
            assert isinstance(refused, Refused)
            assert match.seq == 1
        assert replies.seen == ["listener [1]", "reply [1]", f"refused {refused.reason}"]
        assert await stored(match_store) == [(1, "move", {"x": 0, "y": 0})]
        assert len(matches_) == 0  # nobody watches: the task ended
        nursery.cancel_scope.cancel()


async def test_unknown_match(match_store: Store) -> None:
    matches_ = Matches(match_store, TicTacToe(), "test", linger=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(matches_.run)
        async with matches_.watch("d" * 32, Replies().listener) as match:
            assert match is None
        assert not await matches_.submit("d" * 32, (0, 0), Replies().reply)
        nursery.cancel_scope.cancel()


async def test_a_submission_without_listeners_runs_and_ends_the_task(match_store: Store) -> None:
    matches_ = Matches(match_store, TicTacToe(), "test", linger=0)
    replies = Replies()
    async with trio.open_nursery() as nursery:
        await nursery.start(matches_.run)
        for cell in ((0, 0), (1, 1), (0, 1)):
            assert await matches_.submit(MATCH, cell, replies.reply)
            assert isinstance(await replies.receive.receive(), Decision)
            # the task ends after each one; the next submission loads the state again
        assert len(matches_) == 0
        assert [seq for seq, _, _ in await stored(match_store)] == [1, 2, 3]
        nursery.cancel_scope.cancel()


async def test_the_database_decides_between_two_processes(match_store: Store) -> None:
    """Two registries (two processes) hold the same match; the one that writes
    second reloads, decides again and is refused: the cell is taken."""
    one, two = (
        Matches(match_store, TicTacToe(), "one", linger=0),
        Matches(match_store, TicTacToe(), "two", linger=0),
    )
    first, second = Replies(), Replies()
    async with trio.open_nursery() as nursery:
        await nursery.start(one.run)
        await nursery.start(two.run)
        async with one.watch(MATCH, first.listener), two.watch(MATCH, second.listener) as m2:
            assert await one.submit(MATCH, (2, 2), first.reply)
            assert isinstance(await first.receive.receive(), Decision)
            assert m2 is not None and m2.seq == 0  # two has not heard of it
            assert await two.submit(MATCH, (2, 2), second.reply)
            refused = await second.receive.receive()
            assert isinstance(refused, Refused) and m2.seq == 1
            # a legal move now goes through on top of the reloaded state
            assert await two.submit(MATCH, (1, 1), second.reply)
            assert isinstance(await second.receive.receive(), Decision)
        assert [(seq, data) for seq, _, data in await stored(match_store)] == [
            (1, {"x": 2, "y": 2}),
            (2, {"x": 1, "y": 1}),
        ]
        nursery.cancel_scope.cancel()


async def test_refresh_reloads(match_store: Store) -> None:
    one, two = (
        Matches(match_store, TicTacToe(), "one", linger=0),
        Matches(match_store, TicTacToe(), "two", linger=0),
    )
    replies = Replies()
    async with trio.open_nursery() as nursery:
        await nursery.start(one.run)
        await nursery.start(two.run)
        async with two.watch(MATCH, replies.listener) as m2:
            other = Replies()
            assert await one.submit(MATCH, (0, 0), other.reply)
            assert isinstance(await other.receive.receive(), Decision)  # stored
            two.refresh(MATCH)
            assert await two.submit(MATCH, (1, 0), replies.reply)
            assert isinstance(await replies.receive.receive(), Decision)
            assert m2 is not None and m2.seq == 2
            assert replies.seen == ["listener [2]", "reply [2]"]  # no lost race: refreshed
        nursery.cancel_scope.cancel()


async def test_cancelling_run_ends_every_match_task(match_store: Store) -> None:
    matches_ = Matches(match_store, TicTacToe(), "test", linger=0)
    async with trio.open_nursery() as outer:
        await outer.start(matches_.run)
        entered = trio.Event()

        async def watcher() -> None:
            async with matches_.watch(MATCH, Replies().listener):
                entered.set()
                await trio.sleep_forever()

        outer.start_soon(watcher)
        await entered.wait()
        assert len(matches_) == 1
        outer.cancel_scope.cancel()
    assert len(matches_) == 0


async def test_a_match_lingers_then_ends(
    match_store: Store, mock_clock: trio.testing.MockClock
) -> None:
    """With ``linger``, the task outlives its submission (the next move needs no
    reload) and ends once it waited ``linger`` seconds for another."""
    matches_ = Matches(match_store, TicTacToe(), "test", linger=30)
    replies = Replies()
    async with trio.open_nursery() as nursery:
        await nursery.start(matches_.run)
        assert await matches_.submit(MATCH, (0, 0), replies.reply)
        await replies.receive.receive()
        live = matches_.live(MATCH)
        assert live is not None and live.seq == 1
        mock_clock.jump(29)
        await trio.testing.wait_all_tasks_blocked()
        assert matches_.live(MATCH) is live
        assert await matches_.submit(MATCH, (1, 1), replies.reply)  # the same task
        await replies.receive.receive()
        assert matches_.live(MATCH) is live and live.seq == 2
        mock_clock.jump(31)
        await trio.testing.wait_all_tasks_blocked()
        assert len(matches_) == 0
        nursery.cancel_scope.cancel()
