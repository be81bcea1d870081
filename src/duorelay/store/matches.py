"""Queries on two-player matches of the turn-based services (UTTT), and the
UTTT login sessions' expiry rule.

Plain functions of a SQLAlchemy ``Connection``, each inside the transaction
of one :meth:`~duorelay.store.gateway.Store.run` call. A match is a
``matches`` row (``players`` the two names in seat order, ``ranked``,
``moved_at``) with its two ``match_players`` rows (seat 0 moves first), so an
account's matches are one indexed query. Tables: :mod:`duorelay.store.schema`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, and_, bindparam, func, select, update
from sqlalchemy.orm import aliased

from duorelay.store.accounts import Account, _account, new_id, now, touch_session
from duorelay.store.schema import accounts, login_sessions, match_players, matches

MAX_OPEN = 5
"""Live matches one account may have at once (docs/uttt.md, Rules)."""

MOVED = update(matches).where(matches.c.id == bindparam("match")).values(moved_at=bindparam("at"))
"""Note a match's last move: executed with rows ``{"match": id, "at": datetime}``
(built once: one ``executemany`` for the moves of a whole group commit)."""


def moved(match_id: str, at: datetime) -> dict[str, object]:
    """The row of :data:`MOVED` for a move of ``match_id`` at ``at``."""
    return {"match": match_id, "at": at}


@dataclass(frozen=True, slots=True)
class MatchRow:
    """A match as stored: ``names`` and ``account_ids`` in seat order."""

    id: str
    names: tuple[str, str]
    account_ids: tuple[int, int]
    status: str
    ranked: bool
    moved_at: datetime


def match_row(connection: Connection, match_id: str, game: str) -> MatchRow | None:
    """Match ``match_id`` of ``game`` with its two seats, or ``None``."""
    row = connection.execute(
        select(
            matches.c.id,
            matches.c.players,
            matches.c.status,
            matches.c.ranked,
            matches.c.moved_at,
            matches.c.created_at,
        ).where(matches.c.id == match_id, matches.c.game == game)
    ).first()
    if row is None:
        return None
    seats = connection.execute(
        select(match_players.c.account_id)
        .where(match_players.c.match_id == match_id)
        .order_by(match_players.c.seat)
    ).all()
    if len(seats) != 2:
        return None
    names = tuple(row.players)
    moved_at = row.moved_at or row.created_at
    # SQLite returns naive UTC; PostgreSQL the session's time zone.
    if moved_at.tzinfo is None:
        moved_at = moved_at.replace(tzinfo=UTC)
    moved_at = moved_at.astimezone(UTC)
    return MatchRow(
        row.id,
        (str(names[0]), str(names[1])),
        (int(seats[0][0]), int(seats[1][0])),
        row.status,
        bool(row.ranked),
        moved_at,
    )


def open_count(connection: Connection, account_id: int, game: str) -> int:
    """How many live matches of ``game`` the account plays."""
    return int(
        connection.execute(
            select(func.count())
            .select_from(match_players.join(matches, matches.c.id == match_players.c.match_id))
            .where(
                match_players.c.account_id == account_id,
                matches.c.game == game,
                matches.c.status == "live",
            )
        ).scalar_one()
    )


def opponents(connection: Connection, account_id: int, game: str) -> set[int]:
    """The accounts the account plays a live match of ``game`` with."""
    mine = aliased(match_players)
    theirs = aliased(match_players)
    rows = connection.execute(
        select(theirs.c.account_id)
        .select_from(mine)
        .join(theirs, and_(theirs.c.match_id == mine.c.match_id, theirs.c.seat != mine.c.seat))
        .join(matches, matches.c.id == mine.c.match_id)
        .where(mine.c.account_id == account_id, matches.c.game == game, matches.c.status == "live")
    )
    return {int(account) for (account,) in rows}


def create_match(connection: Connection, game: str, a: Account, b: Account) -> str:
    """A new live match of ``game``, ``a`` in seat 0 (moves first), ``b`` in seat 1;
    ranked when neither is temporary. Its id (32 hex). Or a reason it cannot
    start, raised as ``ValueError``: the same account twice, either at
    :data:`MAX_OPEN` live matches, or the two already playing one."""
    if a.id == b.id:
        raise ValueError("you cannot play against yourself")
    for account, who in ((a, "you have"), (b, f"{b.name} has")):
        if open_count(connection, account.id, game) >= MAX_OPEN:
            raise ValueError(f"{who} {MAX_OPEN} open matches already")
    if b.id in opponents(connection, a.id, game):
        raise ValueError(f"you already play a match with {b.name}")
    match_id = new_id()
    at = now()
    connection.execute(
        matches.insert().values(
            id=match_id,
            game=game,
            players=[a.name, b.name],
            status="live",
            created_at=at,
            ranked=not (a.temporary or b.temporary),
            moved_at=at,
        )
    )
    connection.execute(
        match_players.insert(),
        [
            {"match_id": match_id, "seat": 0, "account_id": a.id, "seen": False},
            {"match_id": match_id, "seat": 1, "account_id": b.id, "seen": False},
        ],
    )
    return match_id


SHOWN_FINISHED = 10
"""Finished matches a player has not seen that a greeting shows at most (the
newest); older unseen ones count as seen (an opponent who starts and ends
matches with an offline player cannot make their greeting grow)."""


def matches_to_show(connection: Connection, account_id: int, game: str) -> list[str]:
    """The account's live matches of ``game`` and the newest :data:`SHOWN_FINISHED`
    finished ones it has not seen, oldest first; older unseen finished ones
    are marked seen."""
    mine = (
        select(matches.c.id, matches.c.created_at)
        .join(match_players, match_players.c.match_id == matches.c.id)
        .where(match_players.c.account_id == account_id, matches.c.game == game)
    )
    live = connection.execute(mine.where(matches.c.status == "live")).all()
    unseen = connection.execute(
        mine.where(matches.c.status == "over", match_players.c.seen.is_(False))
        .order_by(matches.c.finished_at.desc(), matches.c.id.desc())
        .limit(SHOWN_FINISHED + 1)
    ).all()
    if len(unseen) > SHOWN_FINISHED:
        oldest_shown = unseen[SHOWN_FINISHED - 1].id
        cutoff = select(matches.c.finished_at).where(matches.c.id == oldest_shown)
        older = select(matches.c.id).where(
            matches.c.game == game,
            matches.c.status == "over",
            matches.c.finished_at <= cutoff.scalar_subquery(),
            matches.c.id.not_in([row.id for row in unseen[:SHOWN_FINISHED]]),
        )
        connection.execute(
            update(match_players)
            .where(
                match_players.c.account_id == account_id,
                match_players.c.seen.is_(False),
                match_players.c.match_id.in_(older),
            )
            .values(seen=True)
        )
        unseen = unseen[:SHOWN_FINISHED]
    shown = sorted([*live, *unseen], key=lambda row: (row.created_at, row.id))
    return [row.id for row in shown]


def mark_seen(connection: Connection, match_ids: list[str], account_id: int) -> None:
    """The account was shown the result of the finished ones of ``match_ids``."""
    if not match_ids:
        return
    finished = select(matches.c.id).where(matches.c.id.in_(match_ids), matches.c.status == "over")
    connection.execute(
        update(match_players)
        .where(match_players.c.account_id == account_id, match_players.c.match_id.in_(finished))
        .values(seen=True)
    )


def overdue(connection: Connection, game: str, moved_before: datetime, limit: int) -> list[str]:
    """Up to ``limit`` live matches of ``game`` whose last move (or start) is
    before ``moved_before``, oldest first."""
    rows = connection.execute(
        select(matches.c.id)
        .where(
            matches.c.game == game,
            matches.c.status == "live",
            matches.c.moved_at < moved_before,
        )
        .order_by(matches.c.moved_at)
        .limit(limit)
    )
    return [match_id for (match_id,) in rows]


def resume_session(
    connection: Connection, session_id: str, regular_after: datetime, temporary_after: datetime
) -> Account | None:
    """The account of login session ``session_id`` if it is still valid: last
    used after ``regular_after`` (a regular account) or ``temporary_after``
    (a temporary one); then it is marked used now. ``None`` otherwise."""
    row = connection.execute(
        select(
            accounts.c.id,
            accounts.c.name,
            accounts.c.uuid,
            accounts.c.password_hash,
            login_sessions.c.used_at,
        )
        .join(login_sessions, login_sessions.c.account_id == accounts.c.id)
        .where(login_sessions.c.id == session_id)
    ).first()
    if row is None:
        return None
    account = _account(row)
    used_at = row.used_at
    if used_at.tzinfo is None:  # SQLite returns naive UTC
        used_at = used_at.replace(tzinfo=UTC)
    if used_at <= (temporary_after if account.temporary else regular_after):
        return None
    touch_session(connection, session_id)
    return account
