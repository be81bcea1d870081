"""The store, on SQLite and on PostgreSQL: migrations, one transaction per call,
cancellation, each database's settings.

Tests taking ``database_url`` (tests/postgres.py) run on both databases: a new
SQLite file, and a new database of a throwaway PostgreSQL cluster (``nox -s
postgres``). The migration tests are generic over the revisions in
``store/migrations/versions``: a new migration is covered without a new test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import trio
import trio.testing
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, Table, and_, func, select
from sqlalchemy.sql import sqltypes

from duorelay.referee.record import Recorder
from duorelay.services.santorini_web import get_game, get_tournament, list_tournaments
from duorelay.store.gateway import (
    MigrationError,
    Store,
    StoreClosed,
    alembic_config,
    migration_connection,
)
from duorelay.store.schema import match_events, matches, metadata
from postgres import PostgresCluster

NOW = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A store migrated from an empty database to the newest revision."""
    store = Store(database_url)
    await store.migrate()
    yield store
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


async def test_sqlite_uses_write_ahead_logging(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'wal.db'}")
    try:
        mode = await store.run(lambda c: c.exec_driver_sql("PRAGMA journal_mode").scalar())
    finally:
        store.close()
    assert mode == "wal"


@pytest.mark.parametrize(
    ("setting", "pragma"), [(None, 2), ("full", 2), ("normal", 1)]
)  # https://sqlite.org/pragma.html#pragma_synchronous: 1 NORMAL, 2 FULL
async def test_sqlite_synchronous_follows_the_setting(
    tmp_path: Path, setting: str | None, pragma: int
) -> None:
    url = f"sqlite:///{tmp_path / 'sync.db'}"
    store = Store(url) if setting is None else Store(url, setting)  # type: ignore[arg-type]
    try:
        value = await store.run(lambda c: c.exec_driver_sql("PRAGMA synchronous").scalar())
    finally:
        store.close()
    assert value == pragma


async def test_sqlite_migrations_rebuild_tables_that_rows_point_at(tmp_path: Path) -> None:
    # Alembic's batch mode copies a SQLite table and drops the old one: with
    # foreign keys enforced, that fails once rows of another table point at it.
    store = Store(f"sqlite:///{tmp_path / 'rebuild.db'}")
    try:
        await store.migrate()
        await store.run(new_match)
        await store.run(lambda c: add_event(c, 1))
        with migration_connection(store.engine) as connection:
            operations = Operations(MigrationContext.configure(connection))
            with operations.batch_alter_table("matches", recreate="always"):
                pass
        with pytest.raises(MigrationError), migration_connection(store.engine) as connection:
            connection.execute(matches.delete())
        assert await store.run(count_events) == 1
        assert await store.run(lambda c: c.execute(select(matches.c.id)).scalars().all()) == [
            "a" * 32
        ]
        pragma = await store.run(lambda c: c.exec_driver_sql("PRAGMA foreign_keys").scalar())
        assert pragma == 1
    finally:
        store.close()


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


# Migrations, each from the revision before it, with data in the database.

SCRIPTS = ScriptDirectory.from_config(alembic_config())
REVISIONS = [script.revision for script in reversed(list(SCRIPTS.walk_revisions()))]
"""Every revision, oldest first."""

SAMPLE_VALUES: dict[str, dict[str, object]] = {
    "matches": {"status": "live"},
}
"""Values of the sample rows that :func:`sample_value` would not guess (a column
with a CHECK constraint or an enumeration): ``{table: {column: value}}``."""


def sample_value(table: Table, column: sqlalchemy.Column[Any]) -> object:
    """A value for ``column`` of a sample row, by the column's reflected type."""
    if column.name in SAMPLE_VALUES.get(table.name, {}):
        return SAMPLE_VALUES[table.name][column.name]
    kind = column.type
    if isinstance(kind, sqltypes.JSON):
        return {"sample": [1, "two", None, {"zoë": True}]}
    if isinstance(kind, sqltypes.DateTime):
        return NOW
    if isinstance(kind, sqltypes.Boolean):
        return True
    if isinstance(kind, sqltypes.Integer):
        return 7
    if isinstance(kind, sqltypes.Numeric):
        return 1.5
    if isinstance(kind, sqltypes.String):
        return "s" * min(kind.length or 16, 16)
    if isinstance(kind, sqltypes.LargeBinary):
        return b"\x00\x01"
    raise AssertionError(
        f"no sample value for {table.name}.{column.name} ({kind!r}): "
        "add one to SAMPLE_VALUES or sample_value"
    )


def reflect(connection: Connection) -> MetaData:
    """The database's tables (Alembic's own excepted)."""
    found = MetaData()
    found.reflect(connection)
    found.remove(found.tables["alembic_version"])
    return found


def key_of(table: Table, row: dict[str, Any]) -> Any:
    return and_(*(column == row[column.name] for column in table.primary_key.columns))


def insert_samples(connection: Connection) -> dict[str, dict[str, Any]]:
    """One row in every table (foreign keys pointing at the other sample rows);
    each row as read back, by table name."""
    rows: dict[str, dict[str, Any]] = {}
    for table in reflect(connection).sorted_tables:
        values: dict[str, Any] = {}
        for column in table.columns:
            targets = [key.column for key in column.foreign_keys]
            if targets:
                target = targets[0]
                values[column.name] = rows[target.table.name][target.name]
            else:
                values[column.name] = sample_value(table, column)
        connection.execute(table.insert().values(values))
        rows[table.name] = dict(
            connection.execute(select(table).where(key_of(table, values))).one()._mapping
        )
    return rows


def read_samples(
    connection: Connection, before: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The sample rows now, as far as their tables and columns still exist."""
    tables = reflect(connection).tables
    now: dict[str, dict[str, Any]] = {}
    for name, row in before.items():
        if name not in tables:
            continue  # dropped by the migration
        table = tables[name]
        found = connection.execute(select(table).where(key_of(table, row))).one_or_none()
        assert found is not None, f"the sample row of {name} is gone"
        now[name] = {key: value for key, value in found._mapping.items() if key in row}
    return now


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def test_the_revisions_are_one_line() -> None:
    # One head, one base: the migrations apply in the order REVISIONS has.
    assert len(SCRIPTS.get_heads()) == 1
    assert len(SCRIPTS.get_bases()) == 1
    assert REVISIONS[-1] == SCRIPTS.get_current_head()


@pytest.mark.parametrize("revision", REVISIONS)
async def test_a_migration_keeps_the_rows_of_the_revision_before(
    database_url: str, revision: str
) -> None:
    previous = SCRIPTS.get_revision(revision).down_revision
    assert previous is None or isinstance(previous, str)
    store = Store(database_url)
    try:
        before: dict[str, dict[str, Any]] = {}
        if previous is not None:
            await store.migrate(previous)
            before = await store.run(insert_samples)
            assert before, f"revision {previous} has no table to put a row in"
        await store.migrate(revision)
        assert await store.run(current_revision) == revision
        after = await store.run(partial(read_samples, before=before))
    finally:
        store.close()
    for name, row in after.items():
        assert row == {key: value for key, value in before[name].items() if key in row}, name


async def test_the_sample_rows_fit_the_newest_schema(store: Store) -> None:
    # What the next migration's test will put in the database fits this schema.
    rows = await store.run(insert_samples)
    assert set(rows) == set(metadata.tables)
    assert await store.run(partial(read_samples, before=rows)) == rows


async def test_the_recorded_games_read_back_the_same(store: Store) -> None:
    # The referee's rows through the observers' API queries: JSON bodies come
    # back as written, times in UTC (PostgreSQL answers in its session's zone).
    recorder = Recorder(store)
    players = ["alpha", "Zoë 🐢"]
    tournament = await recorder.tournament_started(players, [players])
    assert tournament is not None
    await recorder.game_started("b" * 32, tournament, players, 1, 1)
    placement = {"player": "alpha", "worker": "alpha1", "place": [0, 1], "ms": 3}
    await recorder.event("b" * 32, 1, "placement", placement)
    result = {"winner": "alpha", "loser": "Zoë 🐢", "ending": "win", "series": 1, "game": 1}
    await recorder.game_over("b" * 32, 2, result)
    await recorder.tournament_over(tournament, [["alpha", "Zoë 🐢"]])

    listed = await store.run(list_tournaments)
    one = await store.run(partial(get_tournament, tournament_id=tournament))
    game = await store.run(partial(get_game, match_id="b" * 32))

    assert listed["tournaments"] == [{k: v for k, v in one.items() if k != "games"}]
    assert one["players"] == players and one["schedule"] == [players]
    assert one["results"] == [["alpha", "Zoë 🐢"]] and one["status"] == "over"
    assert game["events"] == [
        {"kind": "placement", "seq": 1, **placement},
        {"kind": "outcome", "seq": 2, **result},
    ]
    assert game["result"] == result and game["status"] == "over"
    times = [one["started_at"], game["started_at"], game["finished_at"], one["finished_at"]]
    for time in times:
        assert time.endswith("+00:00"), time
    parsed = [datetime.fromisoformat(time) for time in times]
    assert parsed == sorted(parsed)
    assert abs(datetime.now(UTC) - parsed[0]).total_seconds() < 3600


@pytest.mark.postgres
async def test_postgresql_connections_dropped_by_the_server_are_replaced(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    # pool_pre_ping: a pooled connection the server closed (a restart, an
    # administrator) is replaced before a call uses it, instead of failing it.
    store = Store(postgres_url)
    try:
        await store.migrate()
        await store.run(new_match)
        database = store.engine.url.database
        with postgres_cluster.connect() as admin:
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            ).fetchone()
        assert ended is not None and ended[0] >= 1
        assert await store.run(lambda c: c.execute(select(matches.c.id)).scalars().all()) == [
            "a" * 32
        ]
    finally:
        store.close()


async def test_stores_of_one_process_migrate_one_at_a_time(tmp_path: Path) -> None:
    # Alembic's `op` and `context` are module-level proxies: two migrations
    # running at once in one process (two servers in one test, say) sent one
    # store's DDL down the other's connection; seen as "table ... already
    # exists", and as a segmentation fault inside sqlite3 on Python 3.11.
    stores = [Store(f"sqlite:///{tmp_path / f'{n}.db'}") for n in range(6)]
    try:
        async with trio.open_nursery() as nursery:
            for store in stores:
                nursery.start_soon(store.migrate)
        for store in stores:
            tables = await store.run(
                lambda c: set(sqlalchemy.inspect(c).get_table_names()) - {"alembic_version"}
            )
            assert tables == set(metadata.tables)
    finally:
        for store in stores:
            store.close()
