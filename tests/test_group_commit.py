"""Group commit (referee/group_commit.py) on a real SQLite store: writes that
queued meanwhile share one transaction; a write that breaks a unique key
fails alone; a stopped writer fails what is left."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy.exc
import trio
import trio.testing
from sqlalchemy import Connection, select

from conftest import LIVE_MATCH
from duorelay.referee.group_commit import GroupCommit
from duorelay.store.accounts import now
from duorelay.store.gateway import Store, StoreClosed
from duorelay.store.schema import match_events

MATCH = LIVE_MATCH  # the live match of the match_store fixture (tests/conftest.py)


def event(seq: int) -> Any:
    def insert(connection: Connection) -> None:
        connection.execute(
            match_events.insert().values(match_id=MATCH, seq=seq, kind="k", at=now(), data={})
        )

    return insert


async def stored(match_store: Store) -> list[int]:
    rows = await match_store.run(
        lambda c: c.execute(select(match_events.c.seq).order_by(match_events.c.seq)).all()
    )
    return [seq for (seq,) in rows]


async def test_queued_writes_share_a_transaction_and_a_duplicate_fails_alone(
    match_store: Store,
) -> None:
    writer = GroupCommit(match_store)
    outcomes: dict[int, str] = {}
    all_done = trio.Event()

    async def write(label: int, seq: int) -> None:
        try:
            await writer.write(event(seq))
        except sqlalchemy.exc.IntegrityError:
            outcomes[label] = "duplicate"
        else:
            outcomes[label] = "stored"
        if len(outcomes) == 4:
            all_done.set()

    async with trio.open_nursery() as nursery:
        for label, seq in enumerate((1, 2, 2, 3)):  # the second 2 breaks the key
            nursery.start_soon(write, label, seq)
        await trio.testing.wait_all_tasks_blocked()  # all four queued, no writer yet
        await nursery.start(writer.run)
        await all_done.wait()
        nursery.cancel_scope.cancel()
    # Of the two writes of seq 2, whichever was queued first is stored.
    assert (outcomes[0], outcomes[3]) == ("stored", "stored")
    assert sorted((outcomes[1], outcomes[2])) == ["duplicate", "stored"]
    assert (writer.batches, writer.writes) == (1, 4)
    assert await stored(match_store) == [1, 2, 3]


async def test_a_stopped_writer_fails_what_is_queued(match_store: Store) -> None:
    writer = GroupCommit(match_store)
    errors: list[BaseException] = []

    async def write() -> None:
        try:
            await writer.write(event(1))
        except StoreClosed as error:
            errors.append(error)

    async with trio.open_nursery() as writers:
        writers.start_soon(write)
        writers.start_soon(write)
        await trio.testing.wait_all_tasks_blocked()  # both queued
        with trio.CancelScope() as scope:
            scope.cancel()  # the writer stops at its first checkpoint
            await writer.run()
    assert [str(error) for error in errors] == ["the server is stopping"] * 2
    with pytest.raises(trio.ClosedResourceError):
        await writer.write(event(2))
    assert await stored(match_store) == []
