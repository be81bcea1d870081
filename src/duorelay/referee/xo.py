"""The XO game's referee: its rules for the match task, and its tokens.

:class:`XoRules` is the :class:`~duorelay.referee.matches.Game` of XO games
(docs/xogame.md, Rules): an XO game's events are ``game_init`` (the opponent
joined: sequence 1), ``move`` (2, 3...) and, in the same decision as the last
move, ``game_over``. Commands are :class:`Join` (``POST /game/connect``) and
:class:`MoveCommand` (a websocket ``command``). Refusals carry the error
shown to the client; :data:`ALREADY_JOINED` and :data:`OWN_GAME` are 409s.

:class:`Tokens` makes and checks the API's JWTs (HS256 only): login tokens
``{"username", "exp"}`` and per-game tokens ``{"player_uuid", "game_uuid",
"exp"}`` (ids dashed).
"""

from __future__ import annotations

import secrets as choice_source
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import Connection

from duorelay.games import IllegalMove, tictactoe
from duorelay.games.base import Player
from duorelay.protocols.xogame import dashed, uuid_hex
from duorelay.referee.group_commit import Bulk, Write
from duorelay.referee.matches import Decision, Event, Refused
from duorelay.store import xo as queries
from duorelay.store.accounts import now
from duorelay.store.matches import MOVED, moved

ALREADY_JOINED = "Game already has an opponent"
OWN_GAME = "You cannot join your own game"
NOT_STARTED = "The game has not started: no opponent yet"
NOT_A_PLAYER = "You are not a player of this game"
ALGORITHM = "HS256"


@dataclass(frozen=True, slots=True)
class XoState:
    """A game: ``players`` (account uuids, 32 hex, the creator first), the
    ``starter`` (X; ``None`` before game_init) and the ``board`` (``None``
    before game_init)."""

    players: tuple[str, ...]
    starter: str | None = None
    board: tictactoe.State | None = None


@dataclass(frozen=True, slots=True)
class Join:
    """Account ``player`` (32 hex) joins as the opponent."""

    player: str


@dataclass(frozen=True, slots=True)
class MoveCommand:
    """``player`` (32 hex, checked against its token already) marks ``cell``
    ``(x, y)`` as event ``sequence``."""

    player: str
    sequence: int
    cell: tuple[int, int]


def _stamp() -> str:
    return datetime.now(UTC).isoformat()


def _mark(state: XoState, player: str) -> Player:
    return tictactoe.X if player == state.starter else tictactoe.O


class XoRules:
    """The :class:`~duorelay.referee.matches.Game` of XO games."""

    def load(self, connection: Connection, match_id: str) -> tuple[XoState, int] | None:
        """The game's state replayed from its events, and its last sequence."""
        game = queries.game(connection, match_id)
        if game is None:
            return None
        state = XoState(game.players[:1])
        events = queries.events(connection, match_id)
        for _, kind, data in events:
            state = self._replayed(state, kind, data)
        return state, events[-1][0] if events else 0

    def _replayed(self, state: XoState, kind: str, data: dict[str, Any]) -> XoState:
        params = data.get("params", {})
        if kind == "game_init":
            board = tictactoe.new_game(
                params["grid_width"], params["grid_height"], params["winning_line_length"]
            )
            players = (str(uuid_hex(params["initiator"])), str(uuid_hex(params["opponent"])))
            return XoState(players, uuid_hex(params["starter"]), board)
        if kind == "move" and state.board is not None:
            player = str(uuid_hex(data["player_uuid"]))
            x, y = params["cell"]
            move = tictactoe.Move(_mark(state, player), x, y)
            return XoState(state.players, state.starter, tictactoe.apply(state.board, move))
        return state  # game_over: the board already knows

    def decide(self, state: XoState, seq: int, command: Join | MoveCommand) -> Decision[XoState]:
        """``game_init`` for a :class:`Join`; ``move`` (and ``game_over``) for a
        :class:`MoveCommand`; :class:`Refused` with the client's error."""
        if isinstance(command, Join):
            return self._join(state, command)
        return self._move(state, seq, command)

    def _join(self, state: XoState, command: Join) -> Decision[XoState]:
        if state.board is not None or len(state.players) != 1:
            raise Refused(ALREADY_JOINED)
        initiator = state.players[0]
        if command.player == initiator:
            raise Refused(OWN_GAME)
        starter = choice_source.choice((initiator, command.player))
        board = tictactoe.xo_game()
        params = {
            "grid_width": board.width,
            "grid_height": board.height,
            "initiator": dashed(initiator),
            "opponent": dashed(command.player),
            "winning_line_length": board.line_length,
            "starter": dashed(starter),
        }
        data = {"player_uuid": dashed(command.player), "timestamp": _stamp(), "params": params}
        after = XoState((initiator, command.player), starter, board)
        return Decision(after, (Event("game_init", data),), command)

    def _move(self, state: XoState, seq: int, command: MoveCommand) -> Decision[XoState]:
        if state.board is None:
            raise Refused(NOT_STARTED)
        if command.player not in state.players:
            raise Refused(NOT_A_PLAYER)
        if command.sequence != seq + 1:
            raise Refused(f"Bad sequence {command.sequence}: the next one is {seq + 1}")
        x, y = command.cell
        try:
            board = tictactoe.apply(
                state.board, tictactoe.Move(_mark(state, command.player), x, y)
            )
        except IllegalMove as illegal:
            raise Refused(f"Illegal move: {illegal.reason}") from None
        stamp = _stamp()
        player = dashed(command.player)
        events = [
            Event(
                "move",
                {
                    "player_uuid": player,
                    "timestamp": stamp,
                    "params": {"player": player, "cell": [x, y]},
                },
            )
        ]
        result = board.result
        if result is not None:
            winner = None
            if result.winner is not None:
                winner = player  # only the mover can complete a line
            over = {"winner": winner, "draw": winner is None}
            events.append(
                Event("game_over", {"player_uuid": player, "timestamp": stamp, "params": over})
            )
        return Decision(XoState(state.players, state.starter, board), tuple(events), command)

    def write(self, match_id: str, decision: Decision[XoState]) -> Write:
        """The game's row: live after game_init, ``moved_at`` after a move,
        over after game_over."""
        row_changes = [e for e in decision.events if e.kind in ("game_init", "game_over")]
        moved_now = len(decision.events) > len(row_changes)  # a move among the events
        touch: Bulk = {MOVED: [moved(match_id, now())] if moved_now else []}
        if not row_changes:
            return Write(touch)

        def then(connection: Connection) -> None:
            for event in row_changes:
                if event.kind == "game_init":
                    queries.join(connection, match_id, decision.state.players[1])
                else:
                    queries.finish(connection, match_id, dict(event.data["params"]))

        return Write(touch, then)


class BadToken(Exception):
    """A token that is not valid (forged, expired, wrong claims, other algorithm)."""


class Tokens:
    """JWT HS256 tokens signed with ``secret``, valid ``lifetime`` seconds."""

    def __init__(self, secret: str, lifetime: float) -> None:
        self.secret = secret
        self.lifetime = lifetime

    def _make(self, claims: dict[str, Any]) -> str:
        claims["exp"] = int(time.time() + self.lifetime)
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def _check(self, token: str, claims: tuple[str, ...]) -> dict[str, Any]:
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", *claims]},
            )
        except jwt.PyJWTError as error:
            raise BadToken(str(error)) from None
        if any(not isinstance(payload[claim], str) for claim in claims):
            raise BadToken("a claim is not a string")
        return payload

    def login(self, name: str) -> str:
        """A login token for account ``name``."""
        return self._make({"username": name})

    def user(self, token: str) -> str:
        """The account name of a login token; :class:`BadToken`."""
        return str(self._check(token, ("username",))["username"])

    def intra(self, player_hex: str, game_hex: str) -> str:
        """A per-game token of player ``player_hex`` for game ``game_hex`` (32 hex)."""
        return self._make({"player_uuid": dashed(player_hex), "game_uuid": dashed(game_hex)})

    def game(self, token: str) -> tuple[str, str]:
        """``(player, game)`` (32 hex each) of a per-game token; :class:`BadToken`."""
        payload = self._check(token, ("player_uuid", "game_uuid"))
        player, game = uuid_hex(payload["player_uuid"]), uuid_hex(payload["game_uuid"])
        if player is None or game is None:
            raise BadToken("the token's ids are not UUIDs")
        return player, game
