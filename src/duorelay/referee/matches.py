"""Live matches of the turn-based services (UTTT, XO): one task per match while
anyone watches it, one writer of its event log.

docs/architecture.md, "One match"::

    app serving nursery
     └─ Matches.run                  the registry's nursery
         ├─ GroupCommit.run          the writer: the appends of every match,
         │                           batched into transactions (group_commit.py)
         └─ match task (one per live match): Matches._serve
              reads submissions from the match inbox (bounded, INBOX_SIZE),
              decides with the game (sans-IO), appends the events to the
              store (through the writer), then tells the listeners, then
              replies to the submitter

A match is its event log in the store; the task exists only while a listener
(a player's connection) watches it or a submission waits in its inbox. The
task is the only writer of its match in this process, so moves are checked
against the state they will follow. Across processes the database decides:
events are appended under the ``(match_id, seq)`` primary key, and a write
that loses the race (``IntegrityError``) reloads the state from the store and
decides the submission again (:meth:`Matches.refresh` reloads on demand, for a
front-end told by the backplane that another process wrote).

Ending: a match task ends when nobody has listened and nothing has waited in
its inbox for ``linger`` seconds (:data:`LINGER`; with ``linger=0``, at once:
when :meth:`Matches.watch` exits or after a submission), or when
:meth:`Matches.run` is cancelled (the server stops). Its inbox's send end is
closed at that moment, in the same step that removes it from the registry, so
a submission never lands in a dead inbox: it raises
``trio.ClosedResourceError`` inside :meth:`submit`, which starts a new task
and tries again.

Listeners and replies are synchronous callables, run by the match task: they
must not wait (a connection's ``Outbox.push``; a full outbox is that
connection's problem, never the match's).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import trio
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from duorelay.referee.group_commit import GroupCommit, Write
from duorelay.store.accounts import now
from duorelay.store.gateway import Store, StoreClosed
from duorelay.store.schema import match_events

log = logging.getLogger("duorelay")

S = TypeVar("S")
C = TypeVar("C", contravariant=True)

INBOX_SIZE = 16
"""Submissions that wait for one match at most; a submitter past it waits (back-pressure)."""

LINGER = 60.0
"""Seconds a match task outlives its last listener and submission, waiting for
the next one: a match played move by move keeps its state in memory instead of
replaying its events from the store for every move. 0: it ends at once."""

_INSERT_EVENT = match_events.insert()


class Refused(Exception):
    """The game refuses a submission; ``reason`` is safe to show to the player."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of a match's event log: ``kind`` and its JSON ``data``;
    ``seq`` (from 1, no gaps) is given when it is stored."""

    kind: str
    data: Mapping[str, Any]
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Decision(Generic[S]):
    """What the game decided: the ``state`` after it, the ``events`` to append
    (numbered when stored), and ``extra``, anything the game's :meth:`write`
    or the listeners need (rating changes, say)."""

    state: S
    events: tuple[Event, ...]
    extra: Any = None


class Game(Protocol[S, C]):
    """The rules of one service's matches, as the match task drives them.

    ``load`` runs in a store thread, inside one transaction; ``decide`` and
    ``write`` are plain calls (sans-IO; ``decide`` raises :class:`Refused`).
    """

    def load(self, connection: Connection, match_id: str) -> tuple[S, int] | None:
        """The match's state and its last event's ``seq``; ``None`` if unknown."""
        ...

    def decide(self, state: S, seq: int, command: C) -> Decision[S]:
        """The decision on ``command`` in ``state`` (last event ``seq``), or :class:`Refused`."""
        ...

    def write(self, match_id: str, decision: Decision[S]) -> Write:
        """What goes with the decision's events (``moved_at``, status, result,
        ratings), committed in their transaction, after them: shared
        statements' rows in ``bulk``, the rest in ``then``
        (:class:`~duorelay.referee.group_commit.Write`)."""
        ...


Listener = Callable[["Match[Any]", Decision[Any]], None]
"""Told each decision after its events are stored, in order; must not wait."""
Reply = Callable[[Decision[Any] | Refused], None]
"""Given the submitter's decision (after the listeners) or the refusal; must not wait."""


@dataclass(slots=True)
class _Submission:
    command: object
    reply: Reply


_REFRESH = _Submission(None, lambda _: None)
"""Reload the state from the store (another process appended events)."""


@dataclass(eq=False)
class Match(Generic[S]):
    """A live match: ``state`` after event ``seq``, its ``listeners``."""

    id: str
    state: S
    seq: int
    listeners: set[Listener] = field(default_factory=set)
    _inbox: trio.MemorySendChannel[_Submission] | None = None


class Matches(Generic[S, C]):
    """The live matches of one game (``game``) over ``store``.

    :meth:`run` owns their tasks (start it in the app's serving nursery with
    ``await nursery.start(matches.run)``; cancelling it ends every match
    task). :meth:`watch` and :meth:`submit` start a match's task on demand.
    """

    def __init__(self, store: Store, game: Game[S, C], name: str, linger: float = LINGER) -> None:
        self.store = store
        self.linger = linger
        self.game = game
        self.name = name
        self._live: dict[str, Match[S]] = {}
        self._starting: dict[str, trio.Event] = {}
        self._nursery: trio.Nursery | None = None
        self.writer = GroupCommit(store)
        """The writer of every match's events (group commit), a task of :meth:`run`."""

    def __len__(self) -> int:
        return len(self._live)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the match tasks until cancelled (then they are all cancelled)."""
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.writer.run)
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for match in self._live.values():
                if match._inbox is not None:
                    match._inbox.close()
            self._live.clear()

    def live(self, match_id: str) -> Match[S] | None:
        """The live match ``match_id`` of this process, if its task runs."""
        return self._live.get(match_id)

    @asynccontextmanager
    async def watch(self, match_id: str, listener: Listener) -> AsyncIterator[Match[S] | None]:
        """Tell ``listener`` every decision of ``match_id`` while in the block;
        yields the live match (its current state), ``None`` if the store does
        not know the match. On exit the listener is removed (and the task
        ended if nobody else listens and nothing waits)."""
        match = await self._open(match_id)
        if match is None:
            yield None
            return
        match.listeners.add(listener)
        try:
            yield match
        finally:
            match.listeners.discard(listener)
            if not self.linger:
                self._stop_if_idle(match)

    async def submit(self, match_id: str, command: C, reply: Reply) -> bool:
        """Put ``command`` in the match's inbox (waiting while it is full);
        ``reply`` gets the decision or the refusal later, from the match task.
        ``False`` if the store does not know the match."""
        while True:
            match = await self._open(match_id)
            if match is None:
                return False
            assert match._inbox is not None
            try:
                await match._inbox.send(_Submission(command, reply))
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                continue  # the task ended under us: start another one
            return True

    def refresh(self, match_id: str) -> None:
        """Have the live match (if any) reload its state from the store before
        its next submission (another process appended events)."""
        match = self._live.get(match_id)
        if match is not None and match._inbox is not None:
            try:
                match._inbox.send_nowait(_REFRESH)
            except trio.WouldBlock:
                pass  # a full inbox: the next write that loses the race reloads
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass

    async def _open(self, match_id: str) -> Match[S] | None:
        while True:
            match = self._live.get(match_id)
            if match is not None:
                return match
            starting = self._starting.get(match_id)
            if starting is None:
                break
            await starting.wait()
            if match_id not in self._live:
                return None
        if self._nursery is None:
            raise RuntimeError(f"{self.name}: Matches.run is not running")
        self._starting[match_id] = started = trio.Event()
        try:
            loaded = await self.store.run(lambda c: self.game.load(c, match_id))
            if loaded is None or self._nursery is None:
                return None
            send, receive = trio.open_memory_channel[_Submission](INBOX_SIZE)
            match = Match(match_id, loaded[0], loaded[1], _inbox=send)
            self._live[match_id] = match
            self._nursery.start_soon(self._serve, match, receive)
            return match
        finally:
            del self._starting[match_id]
            started.set()

    def _stop_if_idle(self, match: Match[S]) -> None:
        """Remove ``match`` and close its inbox if nobody listens and nothing
        waits; synchronous, so no submission slips in between."""
        inbox = match._inbox
        if match.listeners or inbox is None or inbox.statistics().current_buffer_used:
            return
        if self._live.get(match.id) is match:
            del self._live[match.id]
        inbox.close()  # the task sees the end of its inbox and returns
        match._inbox = None

    async def _serve(
        self, match: Match[S], receive: trio.MemoryReceiveChannel[_Submission]
    ) -> None:
        """The match task: one submission at a time, until the inbox ends
        (closed by :meth:`_stop_if_idle`: after each submission when
        ``linger`` is 0, else once it waited ``linger`` seconds for one)."""
        with receive:
            while True:
                submission = None
                with trio.move_on_after(self.linger or math.inf):
                    try:
                        submission = await receive.receive()
                    except trio.EndOfChannel:
                        return
                if submission is None:  # idle for linger seconds
                    self._stop_if_idle(match)
                    continue
                try:
                    if submission is _REFRESH:
                        await self._reload(match)
                    else:
                        await self._decide(match, submission)
                except (SQLAlchemyError, StoreClosed) as error:
                    # The database is out of reach: this submission is refused,
                    # the match goes on (its state is what was stored).
                    log.warning("%s: match %s: store error %s", self.name, match.id, error)
                    submission.reply(Refused("the server could not store that; try again"))
                if not self.linger:
                    self._stop_if_idle(match)

    async def _decide(self, match: Match[S], submission: _Submission) -> None:
        for attempt in (1, 2):
            try:
                decision = self.game.decide(match.state, match.seq, submission.command)  # type: ignore[arg-type]
            except Refused as refused:
                submission.reply(refused)
                return
            numbered = tuple(
                Event(event.kind, event.data, match.seq + number)
                for number, event in enumerate(decision.events, start=1)
            )
            decision = Decision(decision.state, numbered, decision.extra)
            try:
                await self.writer.write(self._append(match.id, decision))
            except IntegrityError:
                if attempt == 2:
                    submission.reply(Refused("the match changed meanwhile; try again"))
                    return
                await self._reload(match)  # another process appended first
                continue
            match.state = decision.state
            match.seq += len(numbered)
            for listener in list(match.listeners):
                listener(match, decision)
            submission.reply(decision)
            return

    def _append(self, match_id: str, decision: Decision[S]) -> Write:
        """The decision's events and what the game stores with them, as one write."""
        at = now()
        events = [
            {"match_id": match_id, "seq": e.seq, "kind": e.kind, "at": at, "data": dict(e.data)}
            for e in decision.events
        ]
        write = self.game.write(match_id, decision)
        return Write({_INSERT_EVENT: events, **write.bulk}, write.then)

    async def _reload(self, match: Match[S]) -> None:
        loaded = await self.store.run(lambda c: self.game.load(c, match.id))
        if loaded is not None:
            match.state, match.seq = loaded
