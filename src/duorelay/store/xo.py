"""Queries of the XO game service (docs/xogame.md): games, their players and events.

Plain functions of a SQLAlchemy ``Connection`` (each inside one transaction of
:meth:`~duorelay.store.gateway.Store.run`). An XO game is a ``matches`` row
with ``game`` :data:`GAME`: ``status`` ``waiting`` (no opponent yet), ``live``
or ``over``; ``match_players`` seat 0 is its creator (the initiator), seat 1
its opponent; its events are ``match_events`` rows whose ``data`` is
``{"player_uuid", "timestamp", "params"}`` (ids dashed, as the API shows them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from duorelay.store.accounts import Account, new_id, now
from duorelay.store.schema import accounts, match_events, match_players, matches

GAME = "xo"
"""``matches.game`` of an XO game."""

AWAITING_LIMIT = 10
"""Games listed by ``GET /game/awaiting`` at most, newest first."""


@dataclass(frozen=True, slots=True)
class XoGame:
    """An XO game: ``id`` (32 hex), ``status``, ``players`` the account uuids
    (32 hex) by seat (the creator first), ``created_at`` (UTC)."""

    id: str
    status: str
    players: tuple[str, ...]
    created_at: datetime


def create_game(connection: Connection, account: Account) -> str:
    """A new game created by ``account``, waiting for an opponent; its id."""
    game_id = new_id()
    connection.execute(
        insert(matches).values(
            id=game_id, game=GAME, players=[account.name], status="waiting", created_at=now()
        )
    )
    connection.execute(
        insert(match_players).values(match_id=game_id, seat=0, account_id=account.id, seen=False)
    )
    return game_id


def awaiting(connection: Connection, limit: int = AWAITING_LIMIT) -> list[XoGame]:
    """The games waiting for an opponent, newest first, at most ``limit``."""
    rows = connection.execute(
        select(matches.c.id, matches.c.status, matches.c.created_at, accounts.c.uuid)
        .join(match_players, match_players.c.match_id == matches.c.id)
        .join(accounts, accounts.c.id == match_players.c.account_id)
        .where(matches.c.game == GAME, matches.c.status == "waiting", match_players.c.seat == 0)
        .order_by(matches.c.created_at.desc(), matches.c.id.desc())
        .limit(limit)
    ).all()
    return [XoGame(row.id, row.status, (row.uuid,), row.created_at) for row in rows]


def game(connection: Connection, game_id: str) -> XoGame | None:
    """The XO game ``game_id`` (32 hex), or ``None``."""
    row = connection.execute(
        select(matches.c.status, matches.c.created_at).where(
            matches.c.id == game_id, matches.c.game == GAME
        )
    ).first()
    if row is None:
        return None
    players = connection.execute(
        select(accounts.c.uuid)
        .join(match_players, match_players.c.account_id == accounts.c.id)
        .where(match_players.c.match_id == game_id)
        .order_by(match_players.c.seat)
    ).scalars()
    return XoGame(game_id, row.status, tuple(players), row.created_at)


def events(connection: Connection, game_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    """The game's events in order, as ``(seq, kind, data)``."""
    rows = connection.execute(
        select(match_events.c.seq, match_events.c.kind, match_events.c.data)
        .where(match_events.c.match_id == game_id)
        .order_by(match_events.c.seq)
    ).all()
    return [(row.seq, row.kind, dict(row.data)) for row in rows]


def join(connection: Connection, game_id: str, account_uuid: str) -> None:
    """Seat ``account_uuid`` as the opponent (seat 1); the game is ``live``.
    In the transaction that stores its ``game_init`` event."""
    account_id, name = connection.execute(
        select(accounts.c.id, accounts.c.name).where(accounts.c.uuid == account_uuid)
    ).one()
    connection.execute(
        insert(match_players).values(match_id=game_id, seat=1, account_id=account_id, seen=False)
    )
    players = connection.execute(select(matches.c.players).where(matches.c.id == game_id)).scalar()
    connection.execute(
        update(matches)
        .where(matches.c.id == game_id)
        .values(status="live", players=[*(players or []), name])
    )


def finish(connection: Connection, game_id: str, result: dict[str, Any]) -> None:
    """The game is over with ``result`` (the ``game_over`` params)."""
    at = now()
    connection.execute(
        update(matches)
        .where(matches.c.id == game_id)
        .values(status="over", result=result, finished_at=at, moved_at=at)
    )
