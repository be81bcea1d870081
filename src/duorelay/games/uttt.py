"""Ultimate tic-tac-toe (docs/uttt.md, Rules) and its ``match_state`` JSON.

The JSON shape is that of docs/uttt.md, "Server -> client".

The board is 3 x 3 sub-boards of 3 x 3 cells. A move names its sub-board
``(sub_x, sub_y)`` and its cell ``(x, y)`` inside it, each 0..2, x the column.

Rules (docs/uttt.md, Rules, and "Where duorelay deliberately differs"):

1. player_a (:attr:`Player.FIRST`, mark 1) moves first; turns alternate, and a
   move counts only from the player on turn.
2. The next move must be in the sub-board named by the last move's ``(x, y)``,
   unless that sub-board is decided (won or full): then in any undecided one.
   The first move is free. A decided sub-board never takes another mark.
3. Three in a line in a sub-board win it (global value = the mark); a full
   sub-board without a line is drawn (global value 3).
4. Three won sub-boards of one player in a line win the game.
5. When every sub-board is decided without such a line the game is a draw (the
   original never ends it).
6. Outside the board (``end_match`` by a participant, a match revoked after
   ``revoke_time``) the referee ends a game with :func:`forfeit`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

from duorelay.games import base
from duorelay.games.base import (
    EMPTY,
    Ending,
    IllegalMove,
    InvalidEncoding,
    Outcome,
    Player,
)

__all__ = [
    "DRAWN",
    "SIZE",
    "DecodedMatch",
    "Move",
    "State",
    "apply",
    "decode_match_state",
    "encode_match_state",
    "forced_board",
    "forfeit",
    "legal_moves",
    "new_game",
    "outcome",
    "replay",
]

SIZE: Final = 3
"""Sub-boards per side and cells per sub-board side."""
DRAWN: Final = 3
"""The ``global_field`` value of a drawn (full, no line) sub-board (docs/uttt.md)."""

_CELLS = SIZE * SIZE
_MARKS = frozenset(Player)
_MATCH_STATE_KEYS = (
    "complete_field",
    "global_field",
    "last_move",
    "game_over",
    "player_won",
    "active_player",
    "player_a",
    "player_b",
    "is_draw",
)
_MOVE_KEYS = ("sub_x", "sub_y", "x", "y")


@dataclass(frozen=True, slots=True)
class Move:
    """``player`` marks cell ``(x, y)`` of sub-board ``(sub_x, sub_y)``; all 0..2."""

    player: Player
    sub_x: int
    sub_y: int
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class State:
    """A position.

    - ``cells``: 81 marks (0 empty, 1 player_a, 2 player_b), sub-board by
      sub-board: ``cells[(sub_y * 3 + sub_x) * 9 + y * 3 + x]``;
    - ``boards``: 9 sub-board results, ``boards[sub_y * 3 + sub_x]``: 0
      undecided, 1 or 2 won by that mark, 3 (:data:`DRAWN`) drawn;
    - ``to_move``: the player on turn (once the game ended by a move: the one
      who would be next, as the original's ``active_player``);
    - ``last_move``: the move that names the next sub-board, ``None`` at start;
    - ``result``: ``None`` while the game goes on.
    """

    cells: tuple[int, ...]
    boards: tuple[int, ...]
    to_move: Player
    last_move: Move | None
    result: Outcome | None


@dataclass(frozen=True, slots=True)
class DecodedMatch:
    """A decoded ``match_state``: the position and the two player names."""

    state: State
    player_a: str
    player_b: str


def new_game() -> State:
    """The empty board, player_a (:attr:`Player.FIRST`) to move anywhere."""
    return State((EMPTY,) * (_CELLS * _CELLS), (EMPTY,) * _CELLS, Player.FIRST, None, None)


def forced_board(state: State) -> tuple[int, int] | None:
    """The sub-board ``(sub_x, sub_y)`` the next move must be in (rule 2).

    ``None`` means free choice among the undecided sub-boards: at the start, or
    when the sub-board the last move names is decided.
    """
    last = state.last_move
    if last is None or state.boards[last.y * SIZE + last.x] != EMPTY:
        return None
    return (last.x, last.y)


def legal_moves(state: State) -> list[Move]:
    """Every move of the player on turn (rules 1-2), sub-board by sub-board, then row by
    row inside each; ``[]`` once the game is over."""
    if state.result is not None:
        return []
    forced = forced_board(state)
    if forced is None:
        boards = [b for b in range(_CELLS) if state.boards[b] == EMPTY]
    else:
        boards = [forced[1] * SIZE + forced[0]]
    player = state.to_move
    return [
        Move(player, b % SIZE, b // SIZE, c % SIZE, c // SIZE)
        for b in boards
        for c in range(_CELLS)
        if state.cells[b * _CELLS + c] == EMPTY
    ]


def apply(state: State, move: Move) -> State:
    """The position after ``move`` (rules 1-5).

    Raises :class:`IllegalMove` if the game is over, ``move.player`` is not on
    turn, a coordinate is not 0..2, the move is outside the forced sub-board,
    its sub-board is decided, or its cell is marked.
    """
    if state.result is not None:
        raise IllegalMove("the game is over")
    if move.player is not state.to_move:
        raise IllegalMove("it is not your turn")
    for name in _MOVE_KEYS:
        value = getattr(move, name)
        if not 0 <= value < SIZE:
            raise IllegalMove(f"{name} must be 0, 1 or 2, not {value}")
    forced = forced_board(state)
    if forced is not None and forced != (move.sub_x, move.sub_y):
        raise IllegalMove(f"the move must be in sub-board (sub_x={forced[0]}, sub_y={forced[1]})")
    b = move.sub_y * SIZE + move.sub_x
    if state.boards[b] != EMPTY:
        decided = "drawn" if state.boards[b] == DRAWN else "won"
        raise IllegalMove(f"sub-board (sub_x={move.sub_x}, sub_y={move.sub_y}) is {decided}")
    index = b * _CELLS + move.y * SIZE + move.x
    if state.cells[index] != EMPTY:
        raise IllegalMove("that cell is taken")

    mark = move.player.value
    cells = base.replaced(state.cells, index, mark)
    sub = cells[b * _CELLS : (b + 1) * _CELLS]
    boards = state.boards
    result: Outcome | None = None
    if base.completes_line(sub, SIZE, SIZE, SIZE, move.y * SIZE + move.x):
        boards = base.replaced(boards, b, mark)
        if base.completes_line(boards, SIZE, SIZE, SIZE, b):
            result = Outcome(move.player, Ending.LINE)
    elif EMPTY not in sub:
        boards = base.replaced(boards, b, DRAWN)
    if result is None and EMPTY not in boards:
        result = Outcome(None, Ending.DRAW)
    return State(cells, boards, move.player.other, move, result)


def forfeit(state: State, loser: Player) -> State:
    """The game ended outside the board: ``loser`` loses (rule 6, Ending.FORFEIT).

    For ``end_match`` (the closer loses) and a revoked match (the player on turn
    loses); whether a forfeit is allowed (ranked, both moved) is the referee's
    call. The player on turn and the board stay as they were. Raises
    :class:`IllegalMove` if the game is already over.
    """
    if state.result is not None:
        raise IllegalMove("the game is over")
    return State(
        state.cells,
        state.boards,
        state.to_move,
        state.last_move,
        Outcome(loser.other, Ending.FORFEIT),
    )


def outcome(state: State) -> Outcome | None:
    """``None`` while the game goes on; else LINE (rule 4), DRAW (rule 5) or FORFEIT (rule 6)."""
    return state.result


def replay(moves: Iterable[Move]) -> State:
    """The state after ``moves`` from :func:`new_game`; :class:`IllegalMove` ("move N: ...")
    at the first illegal one."""
    return base.replay(new_game(), moves, apply)


# -- match_state JSON (docs/uttt.md, Server -> client, match_update) ---------------------------


def encode_match_state(state: State, player_a: str, player_b: str) -> dict[str, Any]:
    """``state`` as the ``match_state`` object of a ``match_update`` (docs/uttt.md).

    Shape: ``{"complete_field": int[9][9], "global_field": int[3][3],
    "last_move": null | {"sub_x", "sub_y", "x", "y"}, "game_over": bool,
    "player_won": name | null, "active_player": name, "player_a": name,
    "player_b": name, "is_draw": bool}``, where
    ``complete_field[sub_y * 3 + y][sub_x * 3 + x]`` is a cell (0 empty, 1
    player_a, 2 player_b) and ``global_field[sub_y][sub_x]`` a sub-board (0, 1,
    2, or 3 drawn), as the original's numpy arrays. ``active_player`` is the
    player on turn, after the end too (the original flips it after every move).

    Raises ``ValueError`` if a name is empty or both are the same (such a
    ``match_state`` would not decode).
    """
    if not player_a or not player_b or player_a == player_b:
        raise ValueError("player_a and player_b must be two different, non-empty names")
    names = (player_a, player_b)
    last = state.last_move
    result = state.result
    return {
        "complete_field": [
            [_cell(state, row, col) for col in range(_CELLS)] for row in range(_CELLS)
        ],
        "global_field": [
            [state.boards[sub_y * SIZE + sub_x] for sub_x in range(SIZE)] for sub_y in range(SIZE)
        ],
        "last_move": None
        if last is None
        else {"sub_x": last.sub_x, "sub_y": last.sub_y, "x": last.x, "y": last.y},
        "game_over": result is not None,
        "player_won": None
        if result is None or result.winner is None
        else names[result.winner.index],
        "active_player": names[state.to_move.index],
        "player_a": player_a,
        "player_b": player_b,
        "is_draw": result is not None and result.is_draw,
    }


def decode_match_state(data: object) -> DecodedMatch:
    """The position and player names of a ``match_state`` object (docs/uttt.md).

    The inverse of :func:`encode_match_state`:
    ``decode_match_state(encode_match_state(s, a, b)) == DecodedMatch(s, a, b)``
    for any state reached by :func:`apply` and :func:`forfeit`. Keys other than
    the nine of the shape are ignored.

    Checks that the object is consistent, not that the position was reachable
    (a ``match_state`` keeps no history): the shapes and value ranges; names
    non-empty and distinct; ``global_field`` equal to the sub-board results the
    cells give, and no sub-board with lines of both players; as many marks of
    player_a as of player_b, or one more, and ``active_player`` the one this
    makes on turn; ``last_move`` null exactly when the board is empty, else on
    a cell of the player who moved last; ``game_over``, ``player_won`` and
    ``is_draw`` agreeing with the board: a line of won sub-boards is a win of
    the last mover (whose move was in that line), all sub-boards decided is a
    draw, and a game over without either is a forfeit, whose ``player_won``
    names either player.

    Raises :class:`InvalidEncoding` naming the first problem found.
    """
    if not isinstance(data, Mapping):
        raise InvalidEncoding("match_state must be an object")
    for key in _MATCH_STATE_KEYS:
        if key not in data:
            raise InvalidEncoding(f"match_state has no {key!r}")
    player_a = _name(data["player_a"], "player_a")
    player_b = _name(data["player_b"], "player_b")
    if player_a == player_b:
        raise InvalidEncoding("player_a and player_b are the same name")
    names = (player_a, player_b)

    rows = _int_grid(data["complete_field"], _CELLS, "complete_field", {EMPTY, *_MARKS})
    cells = tuple(
        rows[(b // SIZE) * SIZE + c // SIZE][(b % SIZE) * SIZE + c % SIZE]
        for b in range(_CELLS)
        for c in range(_CELLS)
    )
    boards = tuple(_board_result(cells[b * _CELLS : (b + 1) * _CELLS], b) for b in range(_CELLS))
    given = _int_grid(data["global_field"], SIZE, "global_field", {EMPTY, *_MARKS, DRAWN})
    if tuple(v for row in given for v in row) != boards:
        raise InvalidEncoding("global_field does not match the sub-boards of complete_field")

    first, second = cells.count(Player.FIRST), cells.count(Player.SECOND)
    if first - second not in (0, 1):
        raise InvalidEncoding(
            f"player_a has {first} marks and player_b {second}: turns alternate from player_a"
        )
    to_move = Player.FIRST if first == second else Player.SECOND
    active = data["active_player"]
    if active != names[to_move.index]:
        raise InvalidEncoding(f"active_player must be {names[to_move.index]!r}")

    last = _last_move(data["last_move"], to_move.other)
    if (last is None) != (first == 0):
        raise InvalidEncoding("last_move must be null exactly when the board is empty")
    if last is not None:
        b = last.sub_y * SIZE + last.sub_x
        if cells[b * _CELLS + last.y * SIZE + last.x] != last.player:
            raise InvalidEncoding("last_move is not on a mark of the player who moved last")

    result = _result(data, boards, last, names)
    return DecodedMatch(State(cells, boards, to_move, last, result), player_a, player_b)


def _cell(state: State, row: int, col: int) -> int:
    """``complete_field[row][col]``: row = sub_y * 3 + y, col = sub_x * 3 + x."""
    b = (row // SIZE) * SIZE + col // SIZE
    return state.cells[b * _CELLS + (row % SIZE) * SIZE + col % SIZE]


def _name(value: object, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidEncoding(f"{key} must be a non-empty string")
    return value


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_grid(value: object, size: int, key: str, allowed: set[int]) -> list[list[int]]:
    """``value`` as a ``size x size`` list of lists of ints from ``allowed``."""
    if not isinstance(value, list) or len(value) != size:
        raise InvalidEncoding(f"{key} must be a list of {size} rows")
    grid: list[list[int]] = []
    for y, row in enumerate(value):
        if not isinstance(row, list) or len(row) != size:
            raise InvalidEncoding(f"{key}[{y}] must be a list of {size} numbers")
        for x, cell in enumerate(row):
            if not _is_int(cell) or cell not in allowed:
                raise InvalidEncoding(
                    f"{key}[{y}][{x}] must be one of {sorted(allowed)}, not {cell!r}"
                )
        grid.append(row)
    return grid


def _board_result(sub: tuple[int, ...], b: int) -> int:
    """The global value of a sub-board from its cells (rule 3)."""
    owners = base.line_owners(sub, SIZE, SIZE, SIZE)
    if len(owners) > 1:
        raise InvalidEncoding(
            f"sub-board (sub_x={b % SIZE}, sub_y={b // SIZE}) has lines of both players"
        )
    if owners:
        return next(iter(owners))
    return DRAWN if EMPTY not in sub else EMPTY


def _last_move(value: object, mover: Player) -> Move | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidEncoding("last_move must be null or an object")
    coords: list[int] = []
    for key in _MOVE_KEYS:
        coord = value.get(key)
        if not _is_int(coord) or not 0 <= coord < SIZE:
            raise InvalidEncoding(f"last_move.{key} must be 0, 1 or 2")
        coords.append(coord)
    return Move(mover, *coords)


def _result(
    data: Mapping[object, object],
    boards: tuple[int, ...],
    last: Move | None,
    names: tuple[str, str],
) -> Outcome | None:
    """The outcome the board implies, checked against the three outcome fields."""
    game_over, player_won, is_draw = data["game_over"], data["player_won"], data["is_draw"]
    if not isinstance(game_over, bool) or not isinstance(is_draw, bool):
        raise InvalidEncoding("game_over and is_draw must be booleans")
    if player_won is not None and player_won not in names:
        raise InvalidEncoding("player_won must be null or the name of a player")
    winners = base.line_owners(boards, SIZE, SIZE, SIZE) - {DRAWN}
    expected: Outcome | None
    if winners:
        if (
            last is None
            or winners != {last.player.value}
            or not base.completes_line(boards, SIZE, SIZE, SIZE, last.sub_y * SIZE + last.sub_x)
        ):
            raise InvalidEncoding("the game was won by a line of sub-boards, not by the last move")
        expected = Outcome(last.player, Ending.LINE)
    elif EMPTY not in boards:
        expected = Outcome(None, Ending.DRAW)
    elif game_over:
        if player_won is None or is_draw:
            raise InvalidEncoding("a game over without a line or a full board must name a winner")
        winner_seat = Player.FIRST if player_won == names[0] else Player.SECOND
        return Outcome(winner_seat, Ending.FORFEIT)
    else:
        expected = None
    won = None if expected is None or expected.winner is None else names[expected.winner.index]
    if (game_over, player_won, is_draw) != (
        expected is not None,
        won,
        expected is not None and expected.is_draw,
    ):
        raise InvalidEncoding(
            "game_over, player_won and is_draw do not match the board: expected "
            f"{expected is not None}, {won!r}, {expected is not None and expected.is_draw}"
        )
    return expected
