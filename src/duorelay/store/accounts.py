"""Queries on accounts, ratings, login sessions, friends and secrets.

Plain functions of a SQLAlchemy ``Connection``: each runs inside the one
transaction of a :meth:`~duorelay.store.gateway.Store.run` call, so callers
compose them (``await store.run(lambda c: ...)``). Tables:
:mod:`duorelay.store.schema`. Names are stored lowercase; callers validate
them first (:data:`duorelay.referee.accounts.NAME`).
"""

from __future__ import annotations

import secrets as token_source
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from duorelay.store.schema import accounts, friends, login_sessions, ratings, secrets

START_RATING = 1000
"""The rating of an account before its first rated result (docs/uttt.md, Rating)."""


def now() -> datetime:
    """The current time, UTC, as stored in every ``DateTime`` column."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh id: 32 lowercase hex characters (a random UUID's hex)."""
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Account:
    """One row of ``accounts``: ``temporary`` accounts have no password."""

    id: int
    name: str
    uuid: str
    password_hash: str | None

    @property
    def temporary(self) -> bool:
        """Whether this is a temporary account (no password, no rating)."""
        return self.password_hash is None


def _account(row: object) -> Account:
    return Account(row.id, row.name, row.uuid, row.password_hash)  # type: ignore[attr-defined]


_ACCOUNT_COLUMNS = (accounts.c.id, accounts.c.name, accounts.c.uuid, accounts.c.password_hash)


def create_account(connection: Connection, name: str, password_hash: str | None) -> Account | None:
    """Insert an account; ``None`` if ``name`` is taken (the unique key decides,
    so two processes signing up one name at once get one account)."""
    account_uuid = new_id()
    try:
        with connection.begin_nested():
            result = connection.execute(
                insert(accounts).values(
                    name=name, uuid=account_uuid, password_hash=password_hash, created_at=now()
                )
            )
    except IntegrityError:
        return None
    (account_id,) = result.inserted_primary_key or (None,)
    assert account_id is not None
    return Account(int(account_id), name, account_uuid, password_hash)


def account_by_name(connection: Connection, name: str) -> Account | None:
    """The account called ``name``, or ``None``."""
    row = connection.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.name == name)).first()
    return None if row is None else _account(row)


def account_by_uuid(connection: Connection, account_uuid: str) -> Account | None:
    """The account whose public id is ``account_uuid`` (32 hex), or ``None``."""
    row = connection.execute(
        select(*_ACCOUNT_COLUMNS).where(accounts.c.uuid == account_uuid)
    ).first()
    return None if row is None else _account(row)


def account_by_id(connection: Connection, account_id: int) -> Account | None:
    """The account with row id ``account_id``, or ``None``."""
    row = connection.execute(select(*_ACCOUNT_COLUMNS).where(accounts.c.id == account_id)).first()
    return None if row is None else _account(row)


def set_password_hash(connection: Connection, account_id: int, password_hash: str) -> None:
    """Replace an account's hash (Argon2's ``check_needs_rehash`` after a login)."""
    connection.execute(
        update(accounts).where(accounts.c.id == account_id).values(password_hash=password_hash)
    )


def rating(connection: Connection, account_id: int, game: str) -> int:
    """The account's rating in ``game``: :data:`START_RATING` before any result."""
    value = connection.execute(
        select(ratings.c.rating).where(ratings.c.account_id == account_id, ratings.c.game == game)
    ).scalar()
    return START_RATING if value is None else int(value)


def set_rating(connection: Connection, account_id: int, game: str, value: int) -> None:
    """Store a rating (insert or update)."""
    done = connection.execute(
        update(ratings)
        .where(ratings.c.account_id == account_id, ratings.c.game == game)
        .values(rating=value)
    )
    if not done.rowcount:
        connection.execute(insert(ratings).values(account_id=account_id, game=game, rating=value))


def rank(connection: Connection, game: str, value: int) -> int:
    """1 + the number of rated accounts with a rating above ``value``
    (docs/uttt.md, Rating)."""
    higher = connection.execute(
        select(func.count()).where(ratings.c.game == game, ratings.c.rating > value)
    ).scalar()
    return 1 + int(higher or 0)


def top(connection: Connection, game: str, limit: int = 100) -> list[tuple[str, int]]:
    """The ``limit`` highest ``(name, rating)`` pairs, highest first, ties by name."""
    rows = connection.execute(
        select(accounts.c.name, ratings.c.rating)
        .join(accounts, accounts.c.id == ratings.c.account_id)
        .where(ratings.c.game == game)
        .order_by(ratings.c.rating.desc(), accounts.c.name)
        .limit(limit)
    )
    return [(name, int(value)) for name, value in rows]


def create_session(connection: Connection, account_id: int) -> str:
    """A new login session for the account; its id (32 hex characters)."""
    session_id = token_source.token_hex(16)
    at = now()
    connection.execute(
        insert(login_sessions).values(
            id=session_id, account_id=account_id, created_at=at, used_at=at
        )
    )
    return session_id


def session_account(
    connection: Connection, session_id: str, used_after: datetime
) -> Account | None:
    """The account of session ``session_id`` if it was used after ``used_after``
    (then its ``used_at`` becomes now); ``None`` for an unknown or expired one."""
    row = connection.execute(
        select(*_ACCOUNT_COLUMNS)
        .join(login_sessions, login_sessions.c.account_id == accounts.c.id)
        .where(login_sessions.c.id == session_id, login_sessions.c.used_at > used_after)
    ).first()
    if row is None:
        return None
    touch_session(connection, session_id)
    return _account(row)


def touch_session(connection: Connection, session_id: str) -> None:
    """Mark a session used now (on connect and when its last connection ends)."""
    connection.execute(
        update(login_sessions).where(login_sessions.c.id == session_id).values(used_at=now())
    )


def delete_sessions_before(connection: Connection, used_before: datetime) -> int:
    """Delete sessions last used before ``used_before``; how many."""
    return connection.execute(
        delete(login_sessions).where(login_sessions.c.used_at < used_before)
    ).rowcount


def follow(connection: Connection, account_id: int, friend_id: int) -> bool:
    """Add ``friend_id`` to the account's friends; ``False`` if already there."""
    try:
        with connection.begin_nested():
            connection.execute(insert(friends).values(account_id=account_id, friend_id=friend_id))
    except IntegrityError:
        return False
    return True


def unfollow(connection: Connection, account_id: int, friend_id: int) -> bool:
    """Remove ``friend_id`` from the account's friends; ``False`` if not there."""
    return bool(
        connection.execute(
            delete(friends).where(
                friends.c.account_id == account_id, friends.c.friend_id == friend_id
            )
        ).rowcount
    )


def friends_of(connection: Connection, account_id: int, game: str) -> list[tuple[str, int]]:
    """The account's friends as ``(name, rating in game)``, by name."""
    rows = connection.execute(
        select(accounts.c.name, ratings.c.rating)
        .select_from(friends)
        .join(accounts, accounts.c.id == friends.c.friend_id)
        .outerjoin(ratings, (ratings.c.account_id == accounts.c.id) & (ratings.c.game == game))
        .where(friends.c.account_id == account_id)
        .order_by(accounts.c.name)
    )
    return [(name, START_RATING if value is None else int(value)) for name, value in rows]


def secret(connection: Connection, name: str, make: str) -> str:
    """The secret called ``name``; stored as ``make`` on first use. Of two
    processes storing one at once, the first wins and both return it."""
    existing = connection.execute(select(secrets.c.value).where(secrets.c.name == name)).scalar()
    if existing is not None:
        return str(existing)
    try:
        with connection.begin_nested():
            connection.execute(insert(secrets).values(name=name, value=make, created_at=now()))
    except IntegrityError:
        return str(
            connection.execute(select(secrets.c.value).where(secrets.c.name == name)).scalar_one()
        )
    return make
