"""The event log of tournaments and games: stored first, then published.

docs/architecture.md, "The event log is the truth": every event is written
through :class:`~duorelay.store.gateway.Store` (one transaction per event)
*before* the referee sends the next request, and only then given to the
observer (:mod:`duorelay.referee.observer`). Without a store (``store=None``)
nothing is written and the observer is still told.

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

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from duorelay.referee.observer import NO_OBSERVER, Observer
from duorelay.store.gateway import Store
from duorelay.store.schema import match_events, matches, tournaments

GAME = "santorini"

_INSERT_EVENT = match_events.insert()
"""Built once: executed with each event's values, SQLAlchemy reuses its compiled
form (building ``insert().values(...)`` per event cost about 185 us)."""


def _now() -> datetime:
    return datetime.now(UTC)


class Recorder:
    """Writes events to ``store`` (if any), then tells ``observer``."""

    def __init__(self, store: Store | None, observer: Observer = NO_OBSERVER) -> None:
        self.store = store
        self.observer = observer

    async def tournament_started(
        self, players: list[str], schedule: list[list[str]]
    ) -> int | None:
        """A new ``tournaments`` row; its id (``None`` without a store)."""
        tournament_id = None
        if self.store is not None:

            def insert(connection: Connection) -> int:
                row = tournaments.insert().values(
                    game=GAME, started_at=_now(), players=players, schedule=schedule
                )
                key = connection.execute(row).inserted_primary_key
                assert key is not None
                return int(key[0])

            tournament_id = await self.store.run(insert)
        self.observer.publish(
            None,
            {
                "kind": "tournament-start",
                "tournament": tournament_id,
                "players": players,
                "schedule": schedule,
            },
        )
        return tournament_id

    async def tournament_over(self, tournament_id: int | None, results: list[list[str]]) -> None:
        """Store the tournament's Results."""
        if self.store is not None and tournament_id is not None:

            def update(connection: Connection) -> None:
                connection.execute(
                    tournaments.update()
                    .where(tournaments.c.id == tournament_id)
                    .values(finished_at=_now(), results=results)
                )

            await self.store.run(update)
        self.observer.publish(
            None, {"kind": "tournament-end", "tournament": tournament_id, "results": results}
        )

    async def game_started(
        self, match_id: str, tournament_id: int | None, players: list[str], series: int, game: int
    ) -> None:
        """A new ``matches`` row, ``live``."""
        if self.store is not None:

            def insert(connection: Connection) -> None:
                connection.execute(
                    matches.insert().values(
                        id=match_id,
                        game=GAME,
                        tournament_id=tournament_id,
                        players=players,
                        status="live",
                        created_at=_now(),
                    )
                )

            await self.store.run(insert)
        self.observer.publish(
            match_id,
            {
                "kind": "game-start",
                "tournament": tournament_id,
                "players": players,
                "series": series,
                "game": game,
            },
        )

    async def event(self, match_id: str, seq: int, kind: str, data: Mapping[str, Any]) -> None:
        """Append event ``seq`` of ``kind`` to the game's log."""
        if self.store is not None:

            def insert(connection: Connection) -> None:
                connection.execute(
                    _INSERT_EVENT,
                    {
                        "match_id": match_id,
                        "seq": seq,
                        "kind": kind,
                        "at": _now(),
                        "data": dict(data),
                    },
                )

            await self.store.run(insert)
        self.observer.publish(match_id, {"kind": kind, "seq": seq, **data})

    async def game_over(self, match_id: str, seq: int, result: Mapping[str, Any]) -> None:
        """The last event, ``outcome``, and the ``matches`` row ``over``: one transaction."""
        if self.store is not None:

            def finish(connection: Connection) -> None:
                connection.execute(
                    _INSERT_EVENT,
                    {
                        "match_id": match_id,
                        "seq": seq,
                        "kind": "outcome",
                        "at": _now(),
                        "data": dict(result),
                    },
                )
                connection.execute(
                    matches.update()
                    .where(matches.c.id == match_id)
                    .values(status="over", finished_at=_now(), result=dict(result))
                )

            await self.store.run(finish)
        self.observer.publish(match_id, {"kind": "outcome", "seq": seq, **result})
