"""The spectators' hook: what the referee tells an observer, and when.

The referee calls :meth:`Observer.publish` once an event is committed
(docs/architecture.md, "The event log is the truth": the event log's writer,
:mod:`duorelay.referee.record`, after each transaction, event by event in
order), and when a game or a tournament starts or ends (once its row is).
``publish`` is synchronous and must never block or raise: an observer that
cannot keep up drops events (or its spectators), never slows the players.
The browser page for Santorini spectators is built on this hook and on the
event log in the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Observer(Protocol):
    """Receives a tournament's events as they happen.

    ``match_id`` is the game's id (32 hex characters, the ``matches`` row), or
    ``None`` for the tournament's own events. ``event`` is a JSON-ready
    mapping with at least ``"kind"``: ``tournament-start``, ``tournament-end``,
    ``game-start``, ``placement``, ``action``, ``outcome`` (the last three are
    also ``match_events`` rows, with their ``seq``).
    """

    def publish(self, match_id: str | None, event: Mapping[str, object]) -> None: ...


class NoObserver:
    """The default observer: nobody watches."""

    def publish(self, match_id: str | None, event: Mapping[str, object]) -> None:
        pass


NO_OBSERVER = NoObserver()
