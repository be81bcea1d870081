"""The event log of tournaments and games: stored first, then published.

docs/architecture.md, "The event log is the truth". A :class:`Recorder` writes
through :class:`~duorelay.store.gateway.Store` and tells the observer
(:mod:`duorelay.referee.observer`) of an event only once it is committed.
Without a store (``store=None``) nothing is written and the observer is told
at once.

Two ways to write:

- **Directly** (a plain ``Recorder(store, observer)``): every call is one
  transaction, awaited (tests, tools).
- **Through a writer** (``async with recorder.writing() as log:``, what a
  tournament does): the referee does not wait for the commit of a move. Each
  event goes into a queue; one writer task commits what queued in one
  transaction (one thread hop, one commit, and one ``executemany`` per
  statement for many events), then publishes those events, in order. It
  gathers a batch for at most :data:`LINGER_SECONDS` after its first write
  (or :data:`MAX_BATCH` writes), and commits at once when a write is awaited.
  Awaited are :meth:`game_over` (a game's outcome and every event before it
  are committed before the series asks anything more: before the next game,
  the series' result and the Results), :meth:`tournament_over` (the Results
  are committed before they are sent) and :meth:`tournament_started` (its id).

Why not one transaction per move, as before: each cost a thread hop and an
``fdatasync``, about 800 µs of CPU per move (docs/benchmarks.md, "Santorini
referee", problems 2 and 4). The wait at each game's end costs no CPU: one
transaction per game (about 15 writes) instead of one per 32 writes, but the
writer then runs while the referee waits instead of contending with it for
the GIL; measured with in-process players, 169-246 µs per move with the wait
against 208-264 without (docs/benchmarks.md).

So: an event is durable before any observer sees it, and before any result
that depends on it is sent. What a crash now loses: the events of the game
under way not yet committed when the process dies (at most
:data:`LINGER_SECONDS` of them, or :data:`QUEUE_SIZE` + :data:`MAX_BATCH`); that
game cannot go on anyway (its players' TCP connections die with the process),
no observer saw them and no result depends on them.

Writer task and queue::

    the caller's task (Tournament.run)
     └─ writing()'s nursery
         ├─ (body)          the tournament: event() etc. put writes in the queue
         └─ _writer         queue (bounded, QUEUE_SIZE; full: the referee waits)
                            -> a batch (at most MAX_BATCH, gathered for at most
                            LINGER_SECONDS, or up to an awaited write) ->
                            store.run(one transaction) -> observer.publish, in
                            order -> wake the waiters

Closer: leaving the ``async with`` closes the queue's send end; the writer
commits what is queued and ends, and the block exits after it. A write that
fails (the store's error: ``SQLAlchemyError``, :class:`StoreClosed`) ends the
writer with that error: the body is cancelled and the ``async with`` raises it
(in an ``ExceptionGroup``), as a failed ``store.run`` failed the tournament
before; the writes of that transaction (it is rolled back whole) and those
queued after it are neither committed nor published. Cancelled from outside
(the server stops), the writer commits what is queued, shielded, in
transactions started within :data:`DRAIN_SECONDS`, then ends; if the store
is closed or failing by then (beside the web server the store's owner is
cancelled at the same moment, ``services/referee_store.py``), what is left
is logged as not stored (one warning) and the writer still ends cancelled.

Rows (:mod:`duorelay.store.schema`):

- ``tournaments``: ``game`` "santorini", ``players`` (names after renaming, in
  registration order), ``schedule`` (``[[one, two], ...]`` in order),
  ``results`` (the Results message) once it is over;
- ``matches``: one per game: ``players`` ``[one, two]``, ``status`` ``live`` then
  ``over``, ``result`` ``{"winner", "loser", "ending", "reason"?, "series", "game"}``;
- ``match_events``: ``seq`` 1..n: ``placement`` ``{"player", "worker", "place",
  "ms"}``, ``action`` ``{"player", "action", "board", "ms"}`` (the board after
  the action), and last ``outcome`` (the match's result). ``ms`` is how long
  the player took, in milliseconds.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import trio
from sqlalchemy import Connection, bindparam
from sqlalchemy.exc import SQLAlchemyError

from duorelay.referee.observer import NO_OBSERVER, Observer
from duorelay.store.gateway import Store, StoreClosed
from duorelay.store.schema import match_events, matches, tournaments

log = logging.getLogger("duorelay")

GAME = "santorini"

QUEUE_SIZE = 256
"""Writes waiting for the writer at most; past it the referee waits (back-pressure).
With the batch under way, at most ``QUEUE_SIZE + MAX_BATCH`` writes are held."""

MAX_BATCH = 32
"""Writes committed in one transaction at most: so at most this many events are
published in one go, half a spectator's outbox (``outbox_size``, 64 by
default; :mod:`duorelay.referee.spectators`), and other tasks (the
spectators' writers) run between two of them: a spectator that keeps up is not
dropped by a batch."""

LINGER_SECONDS = 0.05
"""A write that nobody awaits waits this long at most for others to share its
transaction: an observer sees a move at most this much later, and a game that
ends sooner costs one commit."""

DRAIN_SECONDS = 5.0
"""A cancelled writer starts no transaction after this many seconds (one under
way is never abandoned: :class:`~duorelay.store.gateway.Store`)."""

_INSERT_EVENT = match_events.insert()
"""Built once: executed with each event's values, SQLAlchemy reuses its compiled
form (building ``insert().values(...)`` per event cost about 185 us)."""

_INSERT_GAME = matches.insert()
"""A ``matches`` row, built once (as :data:`_INSERT_EVENT`)."""

_FINISH_GAME = (
    matches.update()
    .where(matches.c.id == bindparam("b_id"))
    .values(
        status="over",
        finished_at=bindparam("b_finished_at", type_=matches.c.finished_at.type),
        result=bindparam("b_result", type_=matches.c.result.type),
    )
)
"""A game's ``matches`` row at its end, built once: ``b_id``, ``b_finished_at``,
``b_result``."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False, slots=True)
class _Write:
    """One queued write: rows to insert or update, or other ``work``; what to
    ``publish`` once it is committed; ``done`` set then, for a waiter."""

    match_id: str | None
    publish: dict[str, Any]
    game: dict[str, Any] | None = None
    """A ``matches`` row to insert."""
    event: dict[str, Any] | None = None
    """A ``match_events`` row to insert."""
    finish: dict[str, Any] | None = None
    """The parameters of :data:`_FINISH_GAME`."""
    work: Callable[[Connection], object] | None = None
    """Anything else, run in its place in the transaction; its result in ``result``."""
    done: trio.Event | None = None
    result: object = None


class Recorder:
    """Writes events to ``store`` (if any), then tells ``observer``.

    Used directly, each call is one awaited transaction; :meth:`writing` gives a
    recorder whose events go through a writer task (module docstring).
    :attr:`batches` and :attr:`writes` count what it committed, with the
    recorders of its :meth:`writing` blocks once they end (their ratio is the
    mean batch size).
    """

    def __init__(self, store: Store | None, observer: Observer = NO_OBSERVER) -> None:
        self.store = store
        self.observer = observer
        self.batches = 0
        self.writes = 0
        self._queue: trio.MemorySendChannel[_Write] | None = None

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[Recorder]:
        """A recorder on the same store and observer whose writes go through a
        writer task, for the duration of the block (module docstring: closer,
        errors, cancellation). Without a store, this recorder itself. Using the
        yielded recorder after the block raises ``trio.ClosedResourceError``."""
        if self.store is None:
            yield self
            return
        recorder = Recorder(self.store, self.observer)
        send, receive = trio.open_memory_channel[_Write](QUEUE_SIZE)
        recorder._queue = send
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(recorder._writer, receive, name="santorini event log writer")
                try:
                    yield recorder
                finally:
                    send.close()  # the writer commits what is queued, then ends
        finally:
            self.batches += recorder.batches
            self.writes += recorder.writes

    async def tournament_started(
        self, players: list[str], schedule: list[list[str]]
    ) -> int | None:
        """A new ``tournaments`` row, committed; its id (``None`` without a store)."""
        event: dict[str, Any] = {
            "kind": "tournament-start",
            "tournament": None,
            "players": players,
            "schedule": schedule,
        }

        def insert(connection: Connection) -> int:
            row = tournaments.insert().values(
                game=GAME, started_at=_now(), players=players, schedule=schedule
            )
            key = connection.execute(row).inserted_primary_key
            assert key is not None
            event["tournament"] = int(key[0])
            return int(key[0])

        await self._write(_Write(None, event, work=insert), wait=True)
        return event["tournament"]  # type: ignore[no-any-return]

    async def tournament_over(self, tournament_id: int | None, results: list[list[str]]) -> None:
        """Store the tournament's Results; returns once they and everything
        before them are committed."""
        event = {"kind": "tournament-end", "tournament": tournament_id, "results": results}

        def update(connection: Connection) -> None:
            if tournament_id is None:  # a tournament that was not stored
                return
            connection.execute(
                tournaments.update()
                .where(tournaments.c.id == tournament_id)
                .values(finished_at=_now(), results=results)
            )

        await self._write(_Write(None, event, work=update), wait=True)

    async def game_started(
        self, match_id: str, tournament_id: int | None, players: list[str], series: int, game: int
    ) -> None:
        """A new ``matches`` row, ``live`` (through a writer: queued, not awaited)."""
        event = {
            "kind": "game-start",
            "tournament": tournament_id,
            "players": players,
            "series": series,
            "game": game,
        }

        row = {
            "id": match_id,
            "game": GAME,
            "tournament_id": tournament_id,
            "players": players,
            "status": "live",
            "created_at": _now(),
        }
        await self._write(_Write(match_id, event, game=row), wait=False)

    async def event(self, match_id: str, seq: int, kind: str, data: Mapping[str, Any]) -> None:
        """Append event ``seq`` of ``kind`` to the game's log (through a writer:
        queued, not awaited; it waits only while the queue is full)."""
        publish = {"kind": kind, "seq": seq, **data}
        if self.store is None:
            self.observer.publish(match_id, publish)
            return
        row = {"match_id": match_id, "seq": seq, "kind": kind, "at": _now(), "data": dict(data)}
        await self._write(_Write(match_id, publish, event=row), wait=False)

    async def game_over(self, match_id: str, seq: int, result: Mapping[str, Any]) -> None:
        """The last event, ``outcome``, and the ``matches`` row ``over``, in one
        transaction; returns once it and every earlier event are committed."""
        event = {"kind": "outcome", "seq": seq, **result}
        now = _now()
        row = {
            "match_id": match_id,
            "seq": seq,
            "kind": "outcome",
            "at": now,
            "data": dict(result),
        }
        finish = {"b_id": match_id, "b_finished_at": now, "b_result": dict(result)}
        await self._write(_Write(match_id, event, event=row, finish=finish), wait=True)

    # -- writing ------------------------------------------------------------------------

    async def _write(self, item: _Write, *, wait: bool) -> object:
        """Commit ``item`` now, or queue it for the writer (and with ``wait``,
        return once it is committed); its work's result."""
        if self.store is None:
            self.observer.publish(item.match_id, item.publish)
            return None
        if self._queue is None:
            await self._commit([item])
            return item.result
        if wait:
            item.done = trio.Event()
        try:
            self._queue.send_nowait(item)  # no scheduler pass while there is room
        except trio.WouldBlock:
            await self._queue.send(item)
        if item.done is not None:
            await item.done.wait()
        return item.result

    async def _commit(self, batch: list[_Write]) -> None:
        """One transaction for ``batch``, then its events published, in order."""
        assert self.store is not None
        await self.store.run(functools.partial(_transaction, batch))
        self.batches += 1
        self.writes += len(batch)
        for index, item in enumerate(batch):
            if index:  # the spectators' writers run between two events, as they did
                await trio.lowlevel.cancel_shielded_checkpoint()
            self.observer.publish(item.match_id, item.publish)
            if item.done is not None:
                item.done.set()

    async def _writer(self, receive: trio.MemoryReceiveChannel[_Write]) -> None:
        """The writer: commit what queued, batch after batch, until the queue's
        send end is closed and it is empty. Cancelled, it first commits,
        shielded, the batch in hand (if its transaction had not started) and
        what is queued. A store error ends it (raised)."""
        batch: list[_Write] = []
        try:
            async for first in receive:
                batch = [first]
                await _gather(batch, receive)
                await self._commit(batch)
                batch = []
        except trio.Cancelled:
            # The batch in hand too: cancelled while it waited for the store's turn.
            with trio.CancelScope(shield=True, deadline=trio.current_time() + DRAIN_SECONDS):
                while True:
                    if not batch:
                        try:
                            batch = _batch(receive.receive_nowait(), receive)
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    try:
                        await self._commit(batch)
                    except (SQLAlchemyError, StoreClosed) as error:
                        # The server stops and its store closed first (it is a
                        # sibling of the tournament in the serving nursery): what
                        # is left is the unfinished game's; the writer still
                        # ends cancelled, not with this error.
                        lost = len(batch) + receive.statistics().current_buffer_used
                        log.warning("santorini: %d events not stored: %s", lost, error)
                        break
                    batch = []
            raise
        # Not closed on an error: a task of the body that queues before its
        # cancellation reaches it must not fail with a second, unrelated error.


async def _gather(batch: list[_Write], receive: trio.MemoryReceiveChannel[_Write]) -> None:
    """Add to ``batch`` what queues within :data:`LINGER_SECONDS` of its first
    write; at once when a write is awaited (a game's end, the Results), when
    it holds :data:`MAX_BATCH`, or when the queue is closed."""
    with trio.move_on_after(LINGER_SECONDS):
        while len(batch) < MAX_BATCH and batch[-1].done is None:
            try:
                batch.append(receive.receive_nowait())
            except trio.WouldBlock:
                try:
                    batch.append(await receive.receive())
                except trio.EndOfChannel:
                    return
            except trio.EndOfChannel:
                return


def _batch(first: _Write, receive: trio.MemoryReceiveChannel[_Write]) -> list[_Write]:
    """``first`` and what queued behind it, at most :data:`MAX_BATCH`."""
    batch = [first]
    while len(batch) < MAX_BATCH:
        try:
            batch.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            break
    return batch


def _transaction(batch: list[_Write], connection: Connection) -> None:
    """In a store thread: the writes of ``batch``; rows as one ``executemany``
    per statement (new games, then events, then finished games: an event's
    game is inserted before it), other work in its place in the order."""
    games: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    finishes: list[dict[str, Any]] = []

    def flush() -> None:
        for statement, rows in (
            (_INSERT_GAME, games),
            (_INSERT_EVENT, events),
            (_FINISH_GAME, finishes),
        ):
            if rows:
                connection.execute(statement, rows)
                rows.clear()

    for item in batch:
        if item.work is not None:
            flush()
            item.result = item.work(connection)
            continue
        if item.game is not None:
            games.append(item.game)
        if item.event is not None:
            events.append(item.event)
        if item.finish is not None:
            finishes.append(item.finish)
    flush()
