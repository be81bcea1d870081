"""Elo ratings (docs/uttt.md, Rating): start 1000, K = 20, Python's ``round``.

:func:`rated` is the arithmetic; :func:`record_result` and :func:`standing`
run in a store thread, inside the transaction that stores a match's result
("updated in the same transaction as the result").
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from duorelay.store import accounts as queries

K = 20
"""The Elo K-factor."""
TOP = 100
"""Accounts in the top list."""


def expected(own: int, opponent: int) -> float:
    """The expected score of a player rated ``own`` against ``opponent`` (0..1)."""
    return 1 / (1 + 10 ** ((opponent - own) / 400))


def rated(own: int, opponent: int, score: float) -> int:
    """The new rating after a game scored ``score`` (1 win, 0.5 draw, 0 loss)."""
    return round(own + K * (score - expected(own, opponent)))


@dataclass(frozen=True, slots=True)
class Standing:
    """An account's rating and rank (``None`` for a temporary account) and the
    top list ``(name, rating)``, highest first."""

    rating: int | None
    rank: int | None
    top: tuple[tuple[str, int], ...]


def record_result(
    connection: Connection, game: str, a_id: int, b_id: int, score_a: float
) -> tuple[int, int]:
    """Apply one ranked result to accounts ``a_id`` and ``b_id`` (``score_a``:
    1, 0.5 or 0 for ``a``); their new ratings. Both are computed from the
    ratings before the game."""
    a = queries.rating(connection, a_id, game)
    b = queries.rating(connection, b_id, game)
    new_a, new_b = rated(a, b, score_a), rated(b, a, 1 - score_a)
    queries.set_rating(connection, a_id, game, new_a)
    queries.set_rating(connection, b_id, game, new_b)
    return new_a, new_b


def standing(connection: Connection, game: str, account: queries.Account) -> Standing:
    """``account``'s :class:`Standing` in ``game`` now."""
    top = tuple(queries.top(connection, game, TOP))
    if account.temporary:
        return Standing(None, None, top)
    value = queries.rating(connection, account.id, game)
    return Standing(value, queries.rank(connection, game, value), top)
