"""Group commit (referee/group_commit.py) on a real SQLite store: writes that
queued meanwhile share one transaction and their shared statements; a write
that breaks a unique key fails alone; a stopped writer fails what is left."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy.exc
import trio
import trio.testing
from sqlalchemy import Connection, event, func, select

from conftest import LIVE_MATCH
from duorelay.referee.group_commit import GroupCommit, Write
from duorelay.store.accounts import now
from duorelay.store.gateway import Store, StoreClosed
from duorelay.store.schema import match_events

MATCH = LIVE_MATCH  # the live match of the match_store fixture (tests/conftest.py)


INSERT = match_events.insert()


def append(seq: int, then: Callable[[Connection], object] | None = None) -> Write:
    """The write of event ``seq`` of the live match, through the shared insert."""
    row = {"match_id": MATCH, "seq": seq, "kind": "k", "at": now(), "data": {}}
    return Write({INSERT: [row]}, then)


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
            await writer.write(append(seq))
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
            await writer.write(append(1))
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
        await writer.write(append(2))
    assert await stored(match_store) == []


async def test_a_shared_statement_runs_once_per_batch_before_each_then(
    match_store: Store,
) -> None:
    writer = GroupCommit(match_store)
    inserts: list[int] = []  # rows per execution of the shared insert
    seen_by_then: list[tuple[int, int]] = []  # (write, events visible to its then)

    def count(connection: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if statement.startswith("INSERT INTO match_events"):
            inserts.append(len(params) if isinstance(params, list) else 1)

    def then(label: int) -> Callable[[Connection], object]:
        def look(connection: Connection) -> None:
            rows = connection.execute(select(func.count()).select_from(match_events)).scalar()
            seen_by_then.append((label, int(rows or 0)))

        return look

    event.listen(match_store.engine, "before_cursor_execute", count)
    try:
        async with trio.open_nursery() as nursery:
            for seq in (1, 2, 3):
                nursery.start_soon(writer.write, append(seq, then(seq)))
                await trio.testing.wait_all_tasks_blocked()  # queued, in this order
            await nursery.start(writer.run)
            while writer.writes < 3:
                await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    finally:
        event.remove(match_store.engine, "before_cursor_execute", count)
    assert inserts == [3]  # one executemany with the three rows
    assert seen_by_then == [(1, 3), (2, 3), (3, 3)]  # in queue order, after every row
    assert await stored(match_store) == [1, 2, 3]
