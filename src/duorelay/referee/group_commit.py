"""Group commit: the writes of many match tasks in one transaction.

Every move of every live match is one write (its events, and what goes with
them). Committed one by one, they take turns for the store (on SQLite, one
transaction at a time) and each pays a commit and a trip to a worker thread;
under load the turns pile up. :class:`GroupCommit` takes the writes that
queued while the previous transaction ran and commits them together: one
thread trip and one commit for the lot, while each write stays atomic.

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
from collections.abc import Callable
from dataclasses import dataclass

import trio
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from duorelay.store.gateway import Store, StoreClosed

QUEUE_SIZE = 256
"""Writes waiting for the writer at most; a writer past it waits (back-pressure)."""

MAX_BATCH = 64
"""Writes committed in one transaction at most."""


@dataclass(eq=False, slots=True)
class _Write:
    work: Callable[[Connection], object]
    done: trio.Event
    error: BaseException | None = None


class GroupCommit:
    """Commits the writes given to :meth:`write` in batches, in ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._send, self._receive = trio.open_memory_channel[_Write](QUEUE_SIZE)
        self.batches = 0
        """Transactions committed so far (with :attr:`writes`: the mean batch size)."""
        self.writes = 0
        """Writes committed so far."""

    async def write(self, work: Callable[[Connection], object]) -> None:
        """Run ``work(connection)`` in the next transaction; return once it is
        committed. Raises ``IntegrityError`` if ``work`` broke a unique key
        (only its own changes were rolled back), the store's error
        (``SQLAlchemyError``, :class:`StoreClosed`) if the transaction failed,
        ``trio.ClosedResourceError`` if the writer has stopped. Cancelled while
        its write is queued or under way, the write may still be committed."""
        item = _Write(work, trio.Event())
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


def _commit(batch: list[_Write], connection: Connection) -> None:
    """In a store thread: every write of ``batch``, in one savepoint; if one
    breaks a unique key, again with a savepoint each, so it fails alone."""
    try:
        with connection.begin_nested():
            for item in batch:
                item.work(connection)
        return
    except IntegrityError:
        pass
    for item in batch:
        try:
            with connection.begin_nested():
                item.work(connection)
        except IntegrityError as error:
            item.error = error


def _fail_queued(receive: trio.MemoryReceiveChannel[_Write]) -> None:
    """Writes left in the queue of a stopped writer fail (their writers wake)."""
    while True:
        try:
            item = receive.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return
        item.error = StoreClosed("the server is stopping")
        item.done.set()
