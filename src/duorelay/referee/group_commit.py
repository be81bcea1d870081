"""Group commit: the writes of many match tasks in one transaction.

Every move of every live match is one write (its events, and what goes with
them). Committed one by one, they take turns for the store (on SQLite, one
transaction at a time) and each pays a commit and a trip to a worker thread;
under load the turns pile up. :class:`GroupCommit` takes the writes that
queued while the previous transaction ran and commits them together: one
thread trip and one commit for the lot, while each write stays atomic.

A :class:`Write` is rows for statements that many writes share (``bulk``:
the insert of match events, the ``moved_at`` of a match), then its own
statements (``then``). In a batch each shared statement runs once with the
rows of every write (one ``executemany``), in the order the statements first
appear, then each write's ``then`` in queue order. Statement by statement,
SQLAlchemy Core and the driver cost far more CPU than the database does
(docs/benchmarks.md, "UTTT referee"); and each statement in a worker thread
is a wait for Python's GIL, held by the Trio thread.

::

    Matches.run's nursery
     └─ GroupCommit.run    the writer: queue (bounded, QUEUE_SIZE) -> batches of
                           at most MAX_BATCH -> store.run(one transaction)

A write that breaks a unique key (``IntegrityError``: another process stored
that event first) fails alone: the batch is retried with one savepoint per
write, so the others still commit. Any other error fails the whole batch
(every write of it raises it). The queue's send end belongs to the writers
(:meth:`GroupCommit.write`); it ends when :meth:`GroupCommit.run` is cancelled
(the registry stops), and a later write raises ``trio.ClosedResourceError``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio
from sqlalchemy import Connection, Executable
from sqlalchemy.exc import IntegrityError

from duorelay.store.gateway import Store, StoreClosed

QUEUE_SIZE = 256
"""Writes waiting for the writer at most; a writer past it waits (back-pressure)."""

MAX_BATCH = 64
"""Writes committed in one transaction at most."""


Rows = Sequence[Mapping[str, Any]]
"""Parameter rows of one statement."""

Bulk = Mapping[Executable, Rows]
"""Shared statements and one write's rows for each."""


@dataclass(frozen=True, slots=True)
class Write:
    """One atomic write: ``bulk`` maps a statement built once (a module
    constant, so that writes share it) to this write's parameter rows for it;
    ``then``, if any, runs after every shared statement of the batch, in a
    store thread, with the transaction's connection."""

    bulk: Bulk = field(default_factory=dict)
    then: Callable[[Connection], object] | None = None


@dataclass(eq=False, slots=True)
class _Queued:
    write: Write
    done: trio.Event
    error: BaseException | None = None


class GroupCommit:
    """Commits the writes given to :meth:`write` in batches, in ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._send, self._receive = trio.open_memory_channel[_Queued](QUEUE_SIZE)
        self.batches = 0
        """Transactions committed so far (with :attr:`writes`: the mean batch size)."""
        self.writes = 0
        """Writes committed so far."""

    async def write(self, write: Write) -> None:
        """Commit ``write`` in the next transaction; return once it is
        committed. Raises ``IntegrityError`` if it broke a unique key
        (only its own changes were rolled back), the store's error
        (``SQLAlchemyError``, :class:`StoreClosed`) if the transaction failed,
        ``trio.ClosedResourceError`` if the writer has stopped. Cancelled while
        its write is queued or under way, the write may still be committed."""
        item = _Queued(write, trio.Event())
        await self._send.send(item)
        await item.done.wait()
        if item.error is not None:
            raise item.error

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer: commit batches until cancelled. Writes still queued then
        fail with :class:`StoreClosed`."""
        try:
            task_status.started()
            async for first in self._receive:
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except trio.WouldBlock:
                        break
                try:
                    await self.store.run(functools.partial(_commit, batch))
                except Exception as error:  # the transaction failed: every write did
                    for item in batch:
                        item.error = item.error or error
                except BaseException:  # cancelled before the transaction began
                    for item in batch:
                        item.error = item.error or StoreClosed("the server is stopping")
                    raise
                else:
                    self.batches += 1
                    self.writes += len(batch)
                finally:
                    for item in batch:
                        item.done.set()
        finally:
            self._send.close()  # writers waiting for room wake with ClosedResourceError
            _fail_queued(self._receive)
            self._receive.close()


def _commit(batch: list[_Queued], connection: Connection) -> None:
    """In a store thread: every write of ``batch``, in one savepoint; if one
    breaks a unique key, again with a savepoint each, so it fails alone."""
    try:
        with connection.begin_nested():
            _execute(connection, [item.write for item in batch])
        return
    except IntegrityError:
        pass
    for item in batch:
        try:
            with connection.begin_nested():
                _execute(connection, [item.write])
        except IntegrityError as error:
            item.error = error


def _execute(connection: Connection, writes: list[Write]) -> None:
    """Each shared statement once with the rows of all ``writes``, then their ``then``."""
    shared: dict[Executable, list[Mapping[str, Any]]] = {}
    for write in writes:
        for statement, rows in write.bulk.items():
            shared.setdefault(statement, []).extend(rows)
    for statement, rows in shared.items():
        if rows:
            connection.execute(statement, rows)
    for write in writes:
        if write.then is not None:
            write.then(connection)


def _fail_queued(receive: trio.MemoryReceiveChannel[_Queued]) -> None:
    """Writes left in the queue of a stopped writer fail (their writers wake)."""
    while True:
        try:
            item = receive.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return
        item.error = StoreClosed("the server is stopping")
        item.done.set()
