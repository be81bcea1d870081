"""The UTTT match as :class:`~duorelay.referee.matches.Matches` drives it
(docs/uttt.md, Rules, Rating, and "Where duorelay deliberately differs").

A match is its ``matches`` row and its event log:

- ``move`` ``{"seat", "sub_x", "sub_y", "x", "y"}``: seat 0 is player_a;
- ``forfeit`` ``{"loser": seat, "reason": "end_match" | "revoke", "rated": bool}``.

:meth:`UtttGame.load` replays them (:mod:`duorelay.games.uttt`);
:meth:`UtttGame.decide` takes a :data:`Command`; :meth:`UtttGame.write` gives
what to store in the transaction of the events: ``moved_at``, and once the
match is over its status, ``finished_at``, ``result`` ``{"winner": name | null, "ending":
"line" | "draw" | "forfeit", "rated": bool}`` and, for a rated result, both
ratings (:func:`~duorelay.referee.ratings.record_result`), whose new
standings it leaves in the decision's :class:`Finished` for the elo_updates.

Rated: a ranked match (both players have accounts) that ends by a line, a
draw or a revoke; ended by ``end_match`` only once both players moved (the
closer loses; before that nobody's rating changes).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from duorelay.games import uttt as rules
from duorelay.games.base import IllegalMove, Player
from duorelay.protocols import uttt as wire
from duorelay.referee.group_commit import Bulk, Write
from duorelay.referee.matches import Decision, Event, Refused
from duorelay.referee.ratings import Standing, record_result, standing
from duorelay.store.accounts import account_by_id, now
from duorelay.store.matches import MOVED, MatchRow, mark_seen, match_row, moved
from duorelay.store.schema import match_events, matches

GAME = "uttt"
"""``matches.game`` and ``ratings.game`` of UTTT."""


class NotAPlayer(Refused):
    """A submission from an account that does not play in the match."""


@dataclass(frozen=True, slots=True)
class UtttMatch:
    """A match's state: its ``row`` (players, ranked, ``moved_at``), the
    position, and how many moves were made."""

    row: MatchRow
    state: rules.State
    moves: int

    def seat(self, account_id: int) -> int | None:
        """The account's seat (0 player_a, 1 player_b), ``None`` if not a player."""
        ids = self.row.account_ids
        return ids.index(account_id) if account_id in ids else None


@dataclass(frozen=True, slots=True)
class PlayMove:
    """A move by ``account_id`` at ``at``."""

    account_id: int
    sub_x: int
    sub_y: int
    x: int
    y: int
    at: datetime


@dataclass(frozen=True, slots=True)
class EndMatch:
    """``end_match`` by ``account_id`` at ``at``: the closer loses."""

    account_id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Revoke:
    """Decide the match if its last move was before ``moved_before``: the
    player on turn loses."""

    moved_before: datetime
    at: datetime


Command = PlayMove | EndMatch | Revoke


@dataclass(slots=True)
class Finished:
    """``Decision.extra`` of the decision that ended a match. ``standings``
    (account id -> :class:`Standing`) is filled for a rated result in the
    transaction that stored it (by the ``then`` of :meth:`UtttGame.write`)."""

    winner: str | None
    ending: str
    rated: bool
    seen_by: tuple[int, ...] = ()
    """The players who are told the result now (online): it is not shown to
    them again at their next login."""
    standings: dict[int, Standing] = field(default_factory=dict)


class UtttGame:
    """The :class:`~duorelay.referee.matches.Game` of UTTT matches; ``online``
    tells whether an account has a connection that will be told a result
    (a synchronous, non-blocking call)."""

    def __init__(self, online: Callable[[int], bool] = lambda _: False) -> None:
        self.online = online

    def load(self, connection: Connection, match_id: str) -> tuple[UtttMatch, int] | None:
        """Replay match ``match_id`` from its events; ``None`` if no such UTTT match."""
        row = match_row(connection, match_id, GAME)
        if row is None:
            return None
        events = connection.execute(
            select(match_events.c.seq, match_events.c.kind, match_events.c.data)
            .where(match_events.c.match_id == match_id)
            .order_by(match_events.c.seq)
        ).all()
        state, moves = rules.new_game(), 0
        for _, kind, data in events:
            if kind == "move":
                state = rules.apply(state, _move(Player(data["seat"] + 1), data))
                moves += 1
            elif kind == "forfeit":
                state = rules.forfeit(state, Player(data["loser"] + 1))
        return UtttMatch(row, state, moves), len(events)

    def decide(self, match: UtttMatch, seq: int, command: Command) -> Decision[UtttMatch]:
        """The decision on ``command``; :class:`Refused` (or :class:`NotAPlayer`)."""
        if isinstance(command, Revoke):
            if match.state.result is not None or match.row.moved_at >= command.moved_before:
                raise Refused("the match is not overdue")
            loser = match.state.to_move.index
            return self._forfeit(match, loser, "revoke", match.row.ranked, command.at)
        seat = match.seat(command.account_id)
        if seat is None:
            raise NotAPlayer("you do not play in this match")
        if match.state.result is not None:
            raise Refused("the match is over")
        if isinstance(command, EndMatch):
            rated = match.row.ranked and match.moves >= 2
            return self._forfeit(match, seat, "end_match", rated, command.at)
        try:
            state = rules.apply(match.state, _move(Player(seat + 1), command))
        except IllegalMove as illegal:
            raise Refused(illegal.reason) from None
        data = {
            "seat": seat,
            "sub_x": command.sub_x,
            "sub_y": command.sub_y,
            "x": command.x,
            "y": command.y,
        }
        after = UtttMatch(replace(match.row, moved_at=command.at), state, match.moves + 1)
        finished = None
        if state.result is not None:
            winner = state.result.winner
            finished = Finished(
                None if winner is None else match.row.names[winner.index],
                state.result.ending.value,
                match.row.ranked,
                self._seen_by(match),
            )
        return Decision(after, (Event("move", data),), finished)

    def _forfeit(
        self, match: UtttMatch, loser: int, reason: str, rated: bool, at: datetime
    ) -> Decision[UtttMatch]:
        state = rules.forfeit(match.state, Player(loser + 1))
        after = UtttMatch(match.row, state, match.moves)
        event = Event("forfeit", {"loser": loser, "reason": reason, "rated": rated})
        finished = Finished(match.row.names[1 - loser], "forfeit", rated, self._seen_by(match))
        return Decision(after, (event,), finished)

    def _seen_by(self, match: UtttMatch) -> tuple[int, ...]:
        return tuple(account for account in match.row.account_ids if self.online(account))

    def write(self, match_id: str, decision: Decision[UtttMatch]) -> Write:
        """``moved_at``; once over, also the result and (rated) the ratings."""
        match = decision.state
        finished = decision.extra
        touch: Bulk = {MOVED: [moved(match_id, match.row.moved_at)]}
        if not isinstance(finished, Finished):
            return Write(touch)
        return Write(touch, functools.partial(_finish, match_id, match, finished))


def _finish(match_id: str, match: UtttMatch, finished: Finished, connection: Connection) -> None:
    """Store a finished match's result and (rated) both ratings; their new
    standings go to ``finished.standings``."""
    connection.execute(
        update(matches)
        .where(matches.c.id == match_id)
        .values(
            status="over",
            finished_at=now(),
            result={"winner": finished.winner, "ending": finished.ending, "rated": finished.rated},
        )
    )
    if finished.seen_by:
        mark_seen_by(connection, match_id, finished.seen_by)
    if not finished.rated:
        return
    a_id, b_id = match.row.account_ids
    winner = finished.winner
    score_a = 0.5 if winner is None else (1.0 if winner == match.row.names[0] else 0.0)
    record_result(connection, GAME, a_id, b_id, score_a)
    for account_id in (a_id, b_id):
        account = account_by_id(connection, account_id)
        if account is not None:
            finished.standings[account_id] = standing(connection, GAME, account)


def mark_seen_by(connection: Connection, match_id: str, account_ids: tuple[int, ...]) -> None:
    """The finished match ``match_id`` was shown to ``account_ids``."""
    for account_id in account_ids:
        mark_seen(connection, [match_id], account_id)


def match_update(match_id: str, match: UtttMatch, revoke_time: float) -> wire.MatchUpdate:
    """The ``match_update`` of ``match``; ``revoke_time`` in seconds after the last move."""
    revoke = match.row.moved_at + timedelta(seconds=revoke_time)
    names = match.row.names
    return wire.MatchUpdate(
        match_id,
        revoke.strftime("%Y-%m-%d %H:%M:%S"),
        match.row.ranked,
        rules.encode_match_state(match.state, names[0], names[1]),
    )


def elo_update(value: Standing) -> wire.EloUpdate:
    """The ``elo_update`` of a :class:`Standing`."""
    return wire.EloUpdate(
        value.rating,
        value.rank,
        tuple(name for name, _ in value.top),
        tuple(rating for _, rating in value.top),
    )


def _move(player: Player, move: PlayMove | dict[str, int]) -> rules.Move:
    if isinstance(move, dict):
        return rules.Move(player, move["sub_x"], move["sub_y"], move["x"], move["y"])
    return rules.Move(player, move.sub_x, move.sub_y, move.x, move.y)
