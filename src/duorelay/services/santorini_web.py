"""The Santorini observers: the page, its JSON API and its live feeds (docs/santorini.md,
"Observers").

HTTP (JSON bodies; every error is ``{"error": "..."}`` with its status, never a
traceback):

- ``GET /santorini/``: the page (``static/santorini/index.html``);
- ``GET /santorini/api/tournaments``: ``{"tournaments": [Tournament, ...]}``, the
  newest first (the current one), at most :data:`LIST_LIMIT`;
- ``GET /santorini/api/tournaments/{id}``: a Tournament with ``"games"``: each
  game's ``{"id", "players", "status", "result", "started_at", "finished_at"}``
  in the order played; 404 for an id that is not 1 to 9 digits or not stored;
- ``GET /santorini/api/games/{match_id}``: ``{"id", "tournament", "players",
  "status", "result", "started_at", "finished_at", "events"}``, ``events``
  the stored events as ``{"seq", "kind", **data}``; 404 for an id that is not
  32 lowercase hex characters or not a stored Santorini game;
- any other ``/santorini/api/...`` path: 404.

A Tournament is ``{"id", "status" ("live" | "over"), "started_at",
"finished_at" (ISO 8601 UTC, or null), "players", "schedule", "results"
(null while live)}``. Without ``DUORELAY_SANTORINI_PORT`` the server runs no
tournaments and keeps no store open: the API answers 404 and the feeds close
with 4404.

Websocket feeds, each served by a :class:`~duorelay.core.session.Session`
(the same limits and endings as every connection) fed by the
:class:`~duorelay.referee.spectators.SpectatorHub`; spectators send nothing
(frames they send are read and ignored, within the rate limit):

- ``/santorini/live/{match_id}``: first ``{"kind": "state", "match",
  "tournament", "players", "status", "seq", "board", "result"}`` (``board``
  the Board message of section 3 after the ``seq`` stored events, built by
  replaying them), then each later event as stored (``{"kind", "seq",
  ...}``), in order, none missed, none twice; after ``outcome`` (or at once,
  for a game already over) the feed closes with 1000 "game over". Closes:
  4400 for an id that is not 32 lowercase hex characters, 4404 for an unknown
  game, 4430 when the spectator does not read fast enough;
- ``/santorini/live``: the tournaments feed (no first frame): ``tournament-start``,
  ``game-start`` and ``outcome`` (with ``"match"``), ``tournament-end``; the
  page reloads what it shows on each.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from quart import Quart, Response, send_from_directory
from sqlalchemy import Connection, select

from duorelay.core.session import Handler, Session
from duorelay.games import santorini as rules
from duorelay.protocols import CloseCode, ProtocolError
from duorelay.protocols import santorini as wire
from duorelay.referee.record import GAME
from duorelay.referee.spectators import TOURNAMENTS, SpectatorHub
from duorelay.services.referee_store import RefereeStore, StoreUnavailable
from duorelay.store.gateway import Store, StoreClosed
from duorelay.store.schema import match_events, matches, tournaments

LIST_LIMIT = 50
"""Tournaments listed by ``GET /santorini/api/tournaments``, newest first."""

PAGE_DIR = "santorini"
"""The page's folder in the static folder."""
LIVE_PATH = "/santorini/live"
MATCH_ID = re.compile(r"[0-9a-f]{32}")
TOURNAMENT_ID = re.compile(r"[1-9][0-9]{0,8}")
OFF = "this server runs no Santorini tournaments (DUORELAY_SANTORINI_PORT is not set)"


class NotFound(Exception):
    """What the API answers 404 to; the message is the body's ``error``."""


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite keeps no time zone: every time stored is UTC
        value = value.replace(tzinfo=UTC)
    # PostgreSQL answers in its session's time zone (the server's default): UTC here.
    return value.astimezone(UTC).isoformat()


def _tournament(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": "live" if row.finished_at is None else "over",
        "started_at": _time(row.started_at),
        "finished_at": _time(row.finished_at),
        "players": row.players,
        "schedule": row.schedule,
        "results": row.results,
    }


def _event(row: Any) -> dict[str, Any]:
    return {"kind": row.kind, "seq": row.seq, **row.data}


def list_tournaments(connection: Connection) -> dict[str, Any]:
    """``GET /santorini/api/tournaments``'s body (one transaction)."""
    rows = connection.execute(
        select(tournaments)
        .where(tournaments.c.game == GAME)
        .order_by(tournaments.c.id.desc())
        .limit(LIST_LIMIT)
    ).all()
    return {"tournaments": [_tournament(row) for row in rows]}


def get_tournament(connection: Connection, tournament_id: int) -> dict[str, Any]:
    """``GET /santorini/api/tournaments/{id}``'s body; :class:`NotFound`."""
    row = connection.execute(
        select(tournaments).where(tournaments.c.id == tournament_id, tournaments.c.game == GAME)
    ).first()
    if row is None:
        raise NotFound(f"no tournament {tournament_id}")
    games = connection.execute(
        select(matches)
        .where(matches.c.tournament_id == tournament_id)
        .order_by(matches.c.created_at, matches.c.id)
    ).all()
    return {
        **_tournament(row),
        "games": [
            {
                "id": game.id,
                "players": game.players,
                "status": game.status,
                "result": game.result,
                "started_at": _time(game.created_at),
                "finished_at": _time(game.finished_at),
            }
            for game in games
        ],
    }


def get_game(connection: Connection, match_id: str) -> dict[str, Any]:
    """``GET /santorini/api/games/{match_id}``'s body; :class:`NotFound`."""
    game = connection.execute(
        select(matches).where(matches.c.id == match_id, matches.c.game == GAME)
    ).first()
    if game is None:
        raise NotFound(f"no game {match_id}")
    events = connection.execute(
        select(match_events)
        .where(match_events.c.match_id == match_id)
        .order_by(match_events.c.seq)
    ).all()
    return {
        "id": game.id,
        "tournament": game.tournament_id,
        "players": game.players,
        "status": game.status,
        "result": game.result,
        "started_at": _time(game.created_at),
        "finished_at": _time(game.finished_at),
        "events": [_event(event) for event in events],
    }


def state_message(game: dict[str, Any]) -> dict[str, Any]:
    """The live feed's first frame for ``game`` (:func:`get_game`'s body): the board
    after its stored events, replayed with the rules."""
    one, two = game["players"]
    moves: list[rules.Move] = []
    for event in game["events"]:
        if event["kind"] == "placement":
            moves.append(wire.decode_place(event["place"]))
        elif event["kind"] == "action":
            moves.append(wire.decode_action(event["action"]))
    state = rules.replay(one, two, moves)
    return {
        "kind": "state",
        "match": game["id"],
        "tournament": game["tournament"],
        "players": game["players"],
        "status": game["status"],
        "seq": len(game["events"]),
        "board": rules.encode_board(state),
        "result": game["result"],
    }


@dataclass
class SantoriniWeb:
    """The observers' side of the Santorini service, for one app.

    ``hub`` is the observer given to the tournament's recorder; ``referee``
    holds the app's store (``None``, or a database that could not be opened:
    no tournaments here, the API answers 404); ``static_dir`` holds
    ``santorini/index.html``.
    """

    hub: SpectatorHub
    static_dir: Path
    referee: RefereeStore | None = None

    async def _store(self) -> Store | None:
        """The store, once open; ``None`` if there is none."""
        if self.referee is None:
            return None
        try:
            return (await self.referee.get()).store
        except StoreUnavailable:
            return None

    def install(self, app: Quart) -> None:
        """Add the page's and the API's routes to ``app``."""
        app.add_url_rule("/santorini/", "santorini_page", self._page)
        app.add_url_rule("/santorini/api/tournaments", "santorini_tournaments", self._tournaments)
        app.add_url_rule(
            "/santorini/api/tournaments/<path:tournament_id>",
            "santorini_tournament",
            self._tournament,
        )
        app.add_url_rule("/santorini/api/games/<path:match_id>", "santorini_game", self._game)
        app.add_url_rule("/santorini/api/", "santorini_api", self._no_endpoint)
        app.add_url_rule("/santorini/api/<path:rest>", "santorini_api_other", self._no_endpoint)

    async def _page(self) -> Response:
        return await send_from_directory(self.static_dir / PAGE_DIR, "index.html")

    async def _query(self, fn: Any) -> Response:
        store = await self._store()
        if store is None:
            return _error(OFF, 404)
        try:
            body = await store.run(fn)
        except NotFound as missing:
            return _error(str(missing), 404)
        except StoreClosed:  # the service is stopping
            return _error(OFF, 404)
        return Response(json.dumps(body), content_type="application/json")

    async def _tournaments(self) -> Response:
        return await self._query(list_tournaments)

    async def _tournament(self, tournament_id: str) -> Response:
        if not TOURNAMENT_ID.fullmatch(tournament_id):
            return _error(f"no tournament {tournament_id!r}: an id is a number", 404)
        return await self._query(partial(get_tournament, tournament_id=int(tournament_id)))

    async def _game(self, match_id: str) -> Response:
        if not MATCH_ID.fullmatch(match_id):
            return _error(f"no game {match_id!r}: an id is 32 lowercase hex characters", 404)
        return await self._query(partial(get_game, match_id=match_id))

    async def _no_endpoint(self, rest: str = "") -> Response:
        return _error("no such endpoint: see docs/santorini.md, Observers", 404)

    def websocket_handler(self, path: str) -> Handler | None:
        """The handler of a websocket ``path`` under ``/santorini/live``, else ``None``."""
        if path == LIVE_PATH:
            return self.follow_tournaments
        if path.startswith(LIVE_PATH + "/"):
            return partial(self.watch_game, match_id=path.removeprefix(LIVE_PATH + "/"))
        return None

    async def _open_store(self) -> Store:
        store = await self._store()
        if store is None:
            raise ProtocolError(CloseCode.NOT_FOUND, OFF)
        return store

    async def watch_game(self, session: Session, match_id: str) -> None:
        """The game feed's handler (module docstring): subscribe, load, start, then
        read (and ignore) until the spectator leaves or the hub closes it."""
        if not MATCH_ID.fullmatch(match_id):
            raise ProtocolError(CloseCode.BAD_REQUEST, "a game id is 32 lowercase hex characters")
        store = await self._open_store()
        session.where = {"watching": match_id}
        subscription = self.hub.subscribe(match_id, session, pending=True)
        try:
            try:
                game = await store.run(partial(get_game, match_id=match_id))
            except NotFound as missing:
                raise ProtocolError(CloseCode.NOT_FOUND, str(missing)) from None
            except StoreClosed:  # the service is stopping
                raise ProtocolError(CloseCode.GOING_AWAY, OFF) from None
            state = state_message(game)
            self.hub.start(subscription, json.dumps(state), state["seq"])
            if game["status"] == "over":
                session.close(CloseCode.NORMAL, "game over", flush=True)
            while True:
                await session.receive()
        finally:
            self.hub.unsubscribe(subscription)

    async def follow_tournaments(self, session: Session) -> None:
        """The tournaments feed's handler: events until the spectator leaves."""
        await self._open_store()
        session.where = {"watching": "tournaments"}
        subscription = self.hub.subscribe(TOURNAMENTS, session, pending=False)
        try:
            while True:
                await session.receive()
        finally:
            self.hub.unsubscribe(subscription)


def _error(message: str, status: int) -> Response:
    return Response(json.dumps({"error": message}), status=status, content_type="application/json")
