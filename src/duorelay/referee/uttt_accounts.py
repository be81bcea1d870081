"""What a UTTT account is told and may change: its login session, its rating
and rank, its friends (docs/uttt.md, "Server -> client" and the friends rows).

Plain functions of a SQLAlchemy ``Connection``, run inside one
:meth:`~duorelay.store.gateway.Store.run` transaction each, returning the wire
messages of :mod:`duorelay.protocols.uttt` or a refusal's reason.
"""

from __future__ import annotations

from sqlalchemy import Connection

from duorelay.protocols import uttt as wire
from duorelay.referee.accounts import valid_name
from duorelay.referee.ratings import standing
from duorelay.referee.uttt import GAME, elo_update
from duorelay.store import accounts as queries
from duorelay.store.accounts import Account


def start_session(connection: Connection, account: Account) -> str:
    """A new login session's id; a regular account gets its rating row (so it is ranked)."""
    if not account.temporary:
        value = queries.rating(connection, account.id, GAME)
        queries.set_rating(connection, account.id, GAME, value)
    return queries.create_session(connection, account.id)


def profile(connection: Connection, account: Account) -> tuple[wire.EloUpdate, wire.FriendsUpdate]:
    """The elo_update and friends_update sent after login and reconnect."""
    return (
        elo_update(standing(connection, GAME, account)),
        friends_update(connection, account.id),
    )


def friends_update(connection: Connection, account_id: int) -> wire.FriendsUpdate:
    """The account's friends (by name) and their ratings."""
    friends = queries.friends_of(connection, account_id, GAME)
    return wire.FriendsUpdate(tuple(n for n, _ in friends), tuple(r for _, r in friends))


def change_friend(connection: Connection, account: Account, user: str, follow: bool) -> str | None:
    """Follow (``follow``) or unfollow ``user``; ``None`` when done, else why not
    (no such player, yourself, already or not a friend). Friends are one-way."""
    name = valid_name(user)
    friend = None if name is None else queries.account_by_name(connection, name)
    if friend is None:
        return f"no player called {user[:16]}"
    if friend.id == account.id:
        return "you cannot be your own friend"
    if follow:
        done = queries.follow(connection, account.id, friend.id)
        return None if done else f"{friend.name} is already your friend"
    done = queries.unfollow(connection, account.id, friend.id)
    return None if done else f"{friend.name} is not your friend"
