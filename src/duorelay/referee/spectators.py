"""The spectators hub: an :class:`~duorelay.referee.observer.Observer` that fans
a tournament's events out to watching connections, never slowing the players.

docs/architecture.md, "One match" (spectators): the referee calls
:meth:`SpectatorHub.publish` synchronously once an event is committed. The
hub has **no task and no channel of its own**: each spectator is a connection
(a :class:`~duorelay.core.session.Session`) and its outbox (bounded by
``outbox_size`` frames, closed by the session when its handler ends) is the
only queue an event waits in. ``publish`` serialises an event once and puts
the frame into each watcher's outbox with ``send_nowait``:

- a full outbox means the spectator does not read fast enough: it is closed
  with **4430** ("too slow") and dropped; the tournament never waits;
- a closed outbox means the spectator is leaving: it is dropped.

Two feeds (*keys*):

- a game (``match_id``, 32 hex characters): its stored events, exactly as
  published (``{"kind": "placement" | "action" | "outcome", "seq": n, ...}``).
  After ``outcome`` each watcher is closed with 1000 "game over" (its outbox
  flushed first) and the game's key is forgotten;
- the tournaments (key ``None``): ``tournament-start`` and ``tournament-end``
  as published, and ``game-start`` and ``outcome`` of every game with
  ``"match": match_id`` added. Placements and actions are not sent there.

Joining a game in progress without missing or repeating an event
(:meth:`subscribe`, then load from the store, then :meth:`start`): a new
subscription is *pending*: events published meanwhile are held in a list of
at most ``backlog`` frames (more: 4430, as a full outbox). :meth:`start` puts
the first frame (the state built from the store, up to ``seq``) into the
outbox, then the held events whose ``seq`` is greater than that, in order,
and from then on events go straight to the outbox. All of :meth:`start` is
synchronous, so no event can slip between the held ones and the live ones.
A game feed never sends an event whose ``seq`` is not greater than the last
one it sent: the event log's writer publishes a committed batch event by
event, letting other tasks run in between, so a spectator may load events
that are committed but not yet published (:mod:`duorelay.referee.record`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Protocol

import trio

from duorelay.core.mailboxes import FrameSink
from duorelay.protocols import CloseCode

TOO_SLOW_REASON = "too slow: the spectator's outbox is full"
GAME_OVER_REASON = "game over"
TOURNAMENTS: None = None
"""The key of the tournaments feed (the referee's ``match_id`` for its own events)."""


class Spectator(Protocol):
    """A watching connection: a :class:`~duorelay.core.session.Session`."""

    @property
    def outbox(self) -> FrameSink: ...

    def close(self, code: int, reason: str, *, flush: bool = False) -> None: ...


class Subscription:
    """One spectator's place on one feed (``key``: a match id, or ``None``)."""

    def __init__(self, key: str | None, spectator: Spectator, *, pending: bool) -> None:
        self.key = key
        self.spectator = spectator
        self.held: list[tuple[int, str, bool]] | None = [] if pending else None
        """While pending: the events published since :meth:`SpectatorHub.subscribe`,
        as ``(seq, frame, last)``; ``None`` once live."""
        self.active = True
        self.seq = 0
        """The last event sent on a game feed (its state's ``seq`` at first)."""


class SpectatorHub:
    """Spectators per feed; ``publish`` never blocks and never raises.

    ``backlog`` bounds the events held for a pending subscription (use the
    connections' ``outbox_size``).
    """

    def __init__(self, backlog: int) -> None:
        self.backlog = backlog
        self._feeds: dict[str | None, list[Subscription]] = {}
        self.dropped = 0
        """Spectators closed with 4430 so far."""

    def watchers(self, key: str | None) -> int:
        """How many spectators watch feed ``key``."""
        return len(self._feeds.get(key, ()))

    def subscribe(self, key: str | None, spectator: Spectator, *, pending: bool) -> Subscription:
        """Add ``spectator`` to feed ``key``. ``pending``: hold events until
        :meth:`start` (a game feed that is loading its state)."""
        subscription = Subscription(key, spectator, pending=pending)
        self._feeds.setdefault(key, []).append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Remove ``subscription`` (idempotent; call it when the connection ends)."""
        if not subscription.active:
            return
        subscription.active = False
        subscription.held = None
        feed = self._feeds.get(subscription.key)
        if feed is not None:
            feed.remove(subscription)
            if not feed:
                del self._feeds[subscription.key]

    def start(self, subscription: Subscription, first: str, seq: int) -> None:
        """Send ``first`` (the state up to event ``seq``), then the held events
        after ``seq``; the subscription is live from here on. Synchronous."""
        held, subscription.held = subscription.held or [], None
        if not subscription.active:
            return
        subscription.seq = seq
        self._deliver(subscription, first, last=False)
        for event_seq, frame, last in held:
            if event_seq > subscription.seq and subscription.active:
                subscription.seq = event_seq
                self._deliver(subscription, frame, last=last)

    def publish(self, match_id: str | None, event: Mapping[str, object]) -> None:
        """The :class:`~duorelay.referee.observer.Observer` hook (see the module)."""
        kind = event.get("kind")
        if match_id is not None and isinstance(seq := event.get("seq"), int):
            last = kind == "outcome"
            if match_id in self._feeds:
                self._fan_out(match_id, seq, json.dumps(dict(event)), last=last)
        if TOURNAMENTS in self._feeds and (match_id is None or kind in ("game-start", "outcome")):
            body = dict(event) if match_id is None else {**event, "match": match_id}
            self._fan_out(TOURNAMENTS, 0, json.dumps(body), last=False)

    def _fan_out(self, key: str | None, seq: int, frame: str, *, last: bool) -> None:
        for subscription in list(self._feeds.get(key, ())):
            if subscription.held is not None:
                if len(subscription.held) >= self.backlog:
                    self._drop_slow(subscription)
                else:
                    subscription.held.append((seq, frame, last))
            elif key is TOURNAMENTS or seq > subscription.seq:  # else in its state
                subscription.seq = seq
                self._deliver(subscription, frame, last=last)

    def _deliver(self, subscription: Subscription, frame: str, *, last: bool) -> None:
        spectator = subscription.spectator
        try:
            spectator.outbox.send_nowait(frame)
        except trio.WouldBlock:
            self._drop_slow(subscription)
            return
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self.unsubscribe(subscription)  # the connection is ending
            return
        if last:
            spectator.close(CloseCode.NORMAL, GAME_OVER_REASON, flush=True)
            self.unsubscribe(subscription)

    def _drop_slow(self, subscription: Subscription) -> None:
        self.dropped += 1
        subscription.spectator.close(CloseCode.TOO_SLOW, TOO_SLOW_REASON)
        self.unsubscribe(subscription)
