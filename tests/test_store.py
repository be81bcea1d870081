"""The store: migrations, one transaction per call, cancellation, SQLite settings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy
import trio
import trio.testing
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, func, select

from duorelay.store.gateway import Store, StoreClosed
from duorelay.store.schema import match_events, matches, metadata

NOW = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.fixture
async def store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'duorelay.db'}")
    await store.migrate()
    yield store  # type: ignore[misc]
    store.close()


def new_match(connection: Connection, match_id: str = "a" * 32) -> None:
    connection.execute(
        matches.insert().values(
            id=match_id, game="santorini", players=["x", "y"], status="live", created_at=NOW
        )
    )


def add_event(connection: Connection, seq: int, match_id: str = "a" * 32) -> None:
    connection.execute(
        match_events.insert().values(match_id=match_id, seq=seq, kind="k", at=NOW, data={})
    )


def count_events(connection: Connection) -> int:
    return connection.execute(select(func.count()).select_from(match_events)).scalar_one()


async def test_migrated_database_matches_the_schema(store: Store) -> None:
    def diff(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    assert await store.run(diff) == []


async def test_migrating_twice_changes_nothing(store: Store) -> None:
    await store.run(new_match)
    await store.migrate()
    assert await store.run(lambda c: c.execute(select(matches.c.id)).scalars().all()) == ["a" * 32]


async def test_sqlite_uses_write_ahead_logging(store: Store) -> None:
    mode = await store.run(lambda c: c.exec_driver_sql("PRAGMA journal_mode").scalar())
    assert mode == "wal"


async def test_a_call_is_one_transaction(store: Store) -> None:
    def half_then_fail(connection: Connection) -> None:
        new_match(connection)
        add_event(connection, 1)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await store.run(half_then_fail)
    assert (
        await store.run(
            lambda c: c.execute(select(func.count()).select_from(matches)).scalar_one()
        )
        == 0
    )


async def test_a_sequence_number_is_taken_once(store: Store) -> None:
    await store.run(new_match)
    await store.run(lambda c: add_event(c, 1))
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        await store.run(lambda c: add_event(c, 1))
    assert await store.run(count_events) == 1


async def test_events_need_their_match(store: Store) -> None:
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        await store.run(lambda c: add_event(c, 1, match_id="b" * 32))


async def test_a_cancelled_call_still_finishes_its_transaction(store: Store) -> None:
    await store.run(new_match)
    entered = trio.Event()
    release = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def slow_write(connection: Connection) -> None:
        add_event(connection, 1)
        trio.from_thread.run_sync(entered.set, trio_token=token)
        trio.from_thread.run(release.wait, trio_token=token)

    call_scope = trio.CancelScope()
    done = trio.Event()

    async def call() -> None:
        with call_scope:
            await store.run(slow_write)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await entered.wait()
        call_scope.cancel()
        await trio.testing.wait_all_tasks_blocked()
        # Cancelled, the call still waits for its thread, inside the transaction.
        assert not done.is_set()
        release.set()
        await done.wait()
    assert await store.run(count_events) == 1


async def test_close_while_a_call_is_under_way_closes_its_connection_after(store: Store) -> None:
    await store.run(new_match)
    entered = trio.Event()
    release = trio.Event()
    done = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def slow_write(connection: Connection) -> None:
        add_event(connection, 1)
        trio.from_thread.run_sync(entered.set, trio_token=token)
        trio.from_thread.run(release.wait, trio_token=token)

    async def call() -> None:
        await store.run(slow_write)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(call)
        await entered.wait()
        pool = store.engine.pool
        store.close()
        with pytest.raises(StoreClosed):
            await store.run(count_events)
        release.set()
        await done.wait()
    # The call committed, and its connection was closed, not left in a pool.
    assert pool.checkedin() == 0 and pool.checkedout() == 0
    reopened = Store(store.url)
    try:
        assert await reopened.run(count_events) == 1
    finally:
        reopened.close()
