"""Tic-tac-toe on any board from 3 x 3 to 10 x 10, k in a row (docs/xogame.md, Rules).

The XO game service plays the original's fixed game, :func:`xo_game`: 6 x 6,
4 in a row (docs/xogame.md, game_init params). Cells are ``(x, y)``: x the column
0..width-1, y the row 0..height-1 (the ``cell: [x, y]`` of a move command).

Rules (docs/xogame.md, Rules, "as the original's domain code meant them"): X moves
first, then turns alternate; a move must be by the player on turn, on the
board, on an empty cell, before the game is finished; ``line_length`` equal
marks in a row, column or diagonal win; a full board without such a line is a
draw. Which account plays X is the service's business (chosen at game_init).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from duorelay.games import base
from duorelay.games.base import EMPTY, Ending, IllegalMove, Outcome, Player

__all__ = [
    "MAX_SIZE",
    "MIN_LINE_LENGTH",
    "MIN_SIZE",
    "XO_GRID_HEIGHT",
    "XO_GRID_WIDTH",
    "XO_WINNING_LINE_LENGTH",
    "Move",
    "O",
    "State",
    "X",
    "apply",
    "legal_moves",
    "mark_at",
    "new_game",
    "outcome",
    "replay",
    "xo_game",
]

X: Final = Player.FIRST
"""X moves first (docs/xogame.md, Rules: the starter plays X)."""
O: Final = Player.SECOND  # noqa: E741 (the game calls it O)

_SYMBOL: Final = {X: "X", O: "O"}

MIN_SIZE: Final = 3
MAX_SIZE: Final = 10
"""Board widths and heights run from 3 to 10 (the original's grid bounds)."""
MIN_LINE_LENGTH: Final = 3
"""The shortest winning line (the original's ``MIN_WINNING_LINE``); the longest is
``max(width, height)``."""

XO_GRID_WIDTH: Final = 6
XO_GRID_HEIGHT: Final = 6
XO_WINNING_LINE_LENGTH: Final = 4
"""The XO API's fixed game (docs/xogame.md, ``game_init`` params)."""


@dataclass(frozen=True, slots=True)
class Move:
    """``player`` marks the cell ``(x, y)``."""

    player: Player
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class State:
    """A position: ``cells[y * width + x]`` is 0 (empty) or a :class:`Player` value.

    ``to_move`` is the player on turn (after the game ended: the one who would
    be next); ``result`` is ``None`` while the game goes on. Build states with
    :func:`new_game` and :func:`apply`, not by hand.
    """

    width: int
    height: int
    line_length: int
    cells: tuple[int, ...]
    to_move: Player
    result: Outcome | None


def new_game(width: int = 3, height: int = 3, line_length: int = 3) -> State:
    """The empty ``width x height`` board, ``line_length`` in a row wins, X to move.

    Raises ``ValueError`` unless ``3 <= width, height <= 10`` and
    ``3 <= line_length <= max(width, height)``.
    """
    for name, size in (("width", width), ("height", height)):
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(f"the board {name} must be {MIN_SIZE}..{MAX_SIZE}, not {size}")
    longest = max(width, height)
    if not MIN_LINE_LENGTH <= line_length <= longest:
        raise ValueError(
            f"the line length must be {MIN_LINE_LENGTH}..{longest} on a {width}x{height} "
            f"board, not {line_length}"
        )
    return State(width, height, line_length, (EMPTY,) * (width * height), X, None)


def xo_game() -> State:
    """The XO API's game: 6 x 6, 4 in a row (docs/xogame.md, game_init)."""
    return new_game(XO_GRID_WIDTH, XO_GRID_HEIGHT, XO_WINNING_LINE_LENGTH)


def mark_at(state: State, x: int, y: int) -> Player | None:
    """The player whose mark is on ``(x, y)``, ``None`` if empty; ``IndexError`` off the board."""
    if not (0 <= x < state.width and 0 <= y < state.height):
        raise IndexError(f"({x}, {y}) is off the {state.width}x{state.height} board")
    mark = state.cells[y * state.width + x]
    return None if mark == EMPTY else Player(mark)


def legal_moves(state: State) -> list[Move]:
    """Every empty cell for the player on turn, row by row; ``[]`` once the game is over."""
    if state.result is not None:
        return []
    width = state.width
    return [
        Move(state.to_move, index % width, index // width)
        for index, mark in enumerate(state.cells)
        if mark == EMPTY
    ]


def apply(state: State, move: Move) -> State:
    """The position after ``move`` (docs/xogame.md, Rules).

    Raises :class:`IllegalMove` if the game is finished, ``move.player`` is not
    on turn, the cell is off the board or already marked.
    """
    if state.result is not None:
        raise IllegalMove("the game is finished")
    if move.player is not state.to_move:
        raise IllegalMove(f"it is {_SYMBOL[state.to_move]}'s turn, not {_SYMBOL[move.player]}'s")
    if not (0 <= move.x < state.width and 0 <= move.y < state.height):
        raise IllegalMove(
            f"cell ({move.x}, {move.y}) is off the {state.width}x{state.height} board"
        )
    index = move.y * state.width + move.x
    if state.cells[index] != EMPTY:
        raise IllegalMove(f"cell ({move.x}, {move.y}) is already marked")
    cells = base.replaced(state.cells, index, move.player.value)
    result: Outcome | None = None
    if base.completes_line(cells, state.width, state.height, state.line_length, index):
        result = Outcome(move.player, Ending.LINE)
    elif EMPTY not in cells:
        result = Outcome(None, Ending.DRAW)
    return State(state.width, state.height, state.line_length, cells, move.player.other, result)


def outcome(state: State) -> Outcome | None:
    """``None`` while the game goes on; else the winner (LINE) or a draw (DRAW, full board)."""
    return state.result


def replay(moves: Iterable[Move], width: int = 3, height: int = 3, line_length: int = 3) -> State:
    """The state after ``moves`` from :func:`new_game` with these dimensions.

    Raises :class:`IllegalMove` ("move N: reason") at the first illegal move.
    """
    return base.replay(new_game(width, height, line_length), moves, apply)
