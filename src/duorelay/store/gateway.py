"""The gateway from Trio to the database: one transaction per call, in a worker thread.

SQLAlchemy's drivers block, so every query runs in a thread
(``trio.to_thread.run_sync``) under one :class:`trio.CapacityLimiter` the size
of the connection pool: at most that many calls run at once, the others wait
their turn in Trio. A call is one transaction; it never spans awaits of other
things.

Cancellation: a call that is cancelled while its thread runs is *not*
abandoned (``abandon_on_cancel=False``): it returns when the transaction has
committed or rolled back, and the cancel takes effect at the caller's next
checkpoint. So a cancelled caller never leaves a half-written record, and a
record it wrote is never unknown to it.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any, Literal, TypeVar

import sqlalchemy
import trio
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import make_url

log = logging.getLogger("duorelay")

T = TypeVar("T")

POOL_SIZE = 5
"""Database connections (and worker threads) one process uses at most."""

SQLITE_BUSY_TIMEOUT_MS = 5000
"""Milliseconds SQLite waits for another process's write lock before failing."""

Synchronous = Literal["full", "normal"]
"""SQLite's ``PRAGMA synchronous`` in WAL mode (https://sqlite.org/pragma.html#pragma_synchronous):
``full`` flushes the log to the disk (``fdatasync``) at every commit, so a
committed transaction survives a power loss; ``normal`` flushes only at
checkpoints, so a committed transaction survives a crash of the process, and
a power loss or an operating-system crash may roll back the last ones (the
file stays consistent)."""

SQLITE_SYNCHRONOUS: Synchronous = "full"
"""The default (``DUORELAY_SQLITE_SYNCHRONOUS``): the event log is the truth
(docs/architecture.md), so by default a stored move survives a power loss."""


def create_engine(url: str, sqlite_synchronous: Synchronous = SQLITE_SYNCHRONOUS) -> Engine:
    """An engine for ``url`` (``sqlite:///file.db``, ``postgresql+psycopg://...``).

    SQLite files get write-ahead logging (readers never wait for the writer),
    ``sqlite_synchronous`` (:data:`Synchronous`), foreign keys on, and a busy
    timeout of :data:`SQLITE_BUSY_TIMEOUT_MS`.
    Raises ``sqlalchemy.exc.ArgumentError`` for a URL SQLAlchemy cannot parse
    and ``sqlalchemy.exc.NoSuchModuleError`` for an unknown driver.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sqlalchemy.create_engine(
            parsed,
            pool_size=POOL_SIZE,
            connect_args={"check_same_thread": False},
        )
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, sqlite_synchronous))
        return engine
    return sqlalchemy.create_engine(parsed, pool_size=POOL_SIZE, pool_pre_ping=True)


def _sqlite_pragmas(synchronous: Synchronous, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={SYNCHRONOUS_PRAGMA[synchronous]}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


SYNCHRONOUS_PRAGMA: dict[str, str] = {"full": "FULL", "normal": "NORMAL"}


class MigrationError(RuntimeError):
    """A migration left rows pointing at rows that do not exist (SQLite)."""


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection of ``engine`` in one transaction, for Alembic's migrations.

    On SQLite, foreign keys are not enforced meanwhile: SQLite changes a table
    (Alembic's batch mode) by copying it and dropping the old one, and dropping
    a table that other rows point to fails while they are enforced. They are
    switched off before the transaction (the pragma does nothing inside one),
    checked at its end (``PRAGMA foreign_key_check``: a dangling reference
    raises :class:`MigrationError` and rolls the migration back), and on again
    after it, as SQLite's documentation of ``ALTER TABLE`` prescribes.
    """
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            with connection.begin():
                yield connection
            return
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
        try:
            with connection.begin():
                yield connection
                dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if dangling:
                    raise MigrationError(f"rows point at missing rows: {dangling[:5]}")
        finally:
            try:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
            except BaseException:
                connection.invalidate()  # never back in the pool without foreign keys
                raise


def alembic_config() -> Config:
    """Alembic's configuration for duorelay's migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("duorelay.store") / "migrations")
    )
    return config


_MIGRATING = threading.Lock()
"""Held while a store of this process migrates: Alembic's ``op`` and
``context`` are module-level proxies, so two migrations at once in one
process (two stores, in two worker threads) would run each other's
statements on the wrong connection (seen: "table ... already exists", and a
segmentation fault inside ``sqlite3`` when two threads used one connection)."""


class StoreClosed(RuntimeError):
    """:meth:`Store.run` or :meth:`Store.migrate` after :meth:`Store.close`."""


class Store:
    """The database of one process: ``await store.run(fn)`` runs ``fn(connection)``
    in one transaction.

    ``url`` is a SQLAlchemy URL (``DUORELAY_DATABASE_URL``). :meth:`migrate`
    brings the schema to the newest revision; :meth:`close` releases the pool:
    at once, or, while calls are under way, when the last of them returns (a
    pool disposed under a running call would leave that call's connection
    open). A call after :meth:`close` raises :class:`StoreClosed`.

    On SQLite the calls of one process take turns (one at a time): SQLite
    lets one transaction write at a time, and a second writer waits in its
    busy handler, which sleeps up to 25 ms between tries; taking turns in
    Trio instead costs no sleep. Other processes on the same file still meet
    the busy handler (``SQLITE_BUSY_TIMEOUT_MS``).
    """

    def __init__(self, url: str, sqlite_synchronous: Synchronous = SQLITE_SYNCHRONOUS) -> None:
        self.url = url
        self.engine = create_engine(url, sqlite_synchronous)
        sqlite = self.engine.dialect.name == "sqlite"
        self._limiter = trio.CapacityLimiter(1 if sqlite else POOL_SIZE)
        self._calls = 0
        self._closed = False

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(connection)`` in one transaction in a worker thread; its result.

        Committed when ``fn`` returns, rolled back when it raises (the error
        is raised here: ``sqlalchemy.exc.IntegrityError`` for a duplicate key,
        ``sqlalchemy.exc.OperationalError`` when the database is out of reach,
        :class:`StoreClosed` after :meth:`close`).
        """
        return await self._call(self._transaction, fn)

    def _transaction(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.begin() as connection:
            return fn(connection)

    async def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` (Alembic); logs each step."""
        await self._call(self._migrate, revision)

    def _migrate(self, revision: str) -> None:
        config = alembic_config()
        with _MIGRATING, migration_connection(self.engine) as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    async def _call(self, work: Callable[[Any], T], argument: Any) -> T:
        """``work(argument)`` in a worker thread, counted as under way."""
        if self._closed:
            raise StoreClosed("the store is closed")
        self._calls += 1
        try:
            return await trio.to_thread.run_sync(
                self._unless_closed, work, argument, limiter=self._limiter
            )
        finally:
            self._calls -= 1
            if self._closed and not self._calls:
                self.engine.dispose()

    def _unless_closed(self, work: Callable[[Any], T], argument: Any) -> T:
        if self._closed:  # closed while this call waited for a thread
            raise StoreClosed("the store is closed")
        return work(argument)

    def close(self) -> None:
        """Close the store: no call starts after this; the pooled connections are
        closed now, or when the last call under way returns. Synchronous,
        idempotent."""
        self._closed = True
        if not self._calls:
            self.engine.dispose()
