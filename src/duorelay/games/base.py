"""What the game modules share: seats, results, errors, replay and the line finder.

Nothing here knows a particular game; see the package docstring for the
contract every game module keeps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import TypeVar

__all__ = [
    "EMPTY",
    "Ending",
    "IllegalMove",
    "InvalidEncoding",
    "Outcome",
    "Player",
    "completes_line",
    "line_owners",
    "replaced",
    "replay",
]

S = TypeVar("S")
M = TypeVar("M")

EMPTY = 0
"""The value of an empty cell in a grid of marks (a mark is a :class:`Player` value)."""


class Player(IntEnum):
    """A seat: ``FIRST`` moves first. The values 1 and 2 are the marks on a board.

    Tic-tac-toe's X is ``FIRST`` and O ``SECOND`` (XOGAME.md, Rules); in UTTT
    ``FIRST`` is player_a, mark 1, and ``SECOND`` player_b, mark 2 (UTTT.md,
    Rules); in Santorini ``FIRST`` is player one, who places first and moves
    first (docs/santorini.md section 3, order within one encounter).
    """

    FIRST = 1
    SECOND = 2

    @property
    def other(self) -> Player:
        """The opponent of this seat."""
        return Player.SECOND if self is Player.FIRST else Player.FIRST

    @property
    def index(self) -> int:
        """0 for ``FIRST``, 1 for ``SECOND``: the position in a pair such as player names."""
        return self.value - 1


class Ending(Enum):
    """How a game ended."""

    LINE = "line"
    """k marks in a row (tic-tac-toe), three won sub-boards in a row (UTTT)."""
    DRAW = "draw"
    """A full board (tic-tac-toe), every sub-board decided without a line (UTTT)."""
    FORFEIT = "forfeit"
    """A player gave up (Santorini) or lost the match outside the board (UTTT's
    end_match and revoke time)."""
    CLIMB = "climb"
    """Santorini: a worker moved onto level 3."""
    STUCK = "stuck"
    """Santorini: the player on turn had no legal action and gave up."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of a finished game: ``winner`` is ``None`` for a draw."""

    winner: Player | None
    ending: Ending

    @property
    def is_draw(self) -> bool:
        """Whether the game ended without a winner."""
        return self.winner is None


class IllegalMove(ValueError):
    """The rules refuse a move; ``reason`` says which rule, in words a player can read.

    ``apply`` raises it and leaves the state it was given unchanged (states are
    immutable). The reason names the move's problem, never internal details.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidEncoding(ValueError):
    """A JSON value is not a valid encoding of a game state; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def replay(start: S, moves: Iterable[M], apply: Callable[[S, M], S]) -> S:
    """Apply ``moves`` in order to ``start`` and return the final state.

    Raises :class:`IllegalMove` at the first move ``apply`` refuses, its reason
    prefixed with the move's 1-based number ("move 3: ...").
    """
    state = start
    for number, move in enumerate(moves, start=1):
        try:
            state = apply(state, move)
        except IllegalMove as exc:
            raise IllegalMove(f"move {number}: {exc.reason}") from exc
    return state


def replaced(cells: tuple[int, ...], index: int, value: int) -> tuple[int, ...]:
    """A copy of ``cells`` with ``cells[index]`` set to ``value``."""
    return (*cells[:index], value, *cells[index + 1 :])


_DIRECTIONS = ((1, 0), (0, 1), (1, 1), (1, -1))


Line = tuple[int, ...]


@functools.cache
def _lines_through(width: int, height: int, length: int) -> tuple[tuple[Line, ...], ...]:
    """For each cell index ``y * width + x``, every line of ``length`` cells through it.

    A line is a row, column or diagonal segment (both diagonal directions) that
    lies wholly on the board; cells are row-major indexes.
    """
    through: list[list[Line]] = [[] for _ in range(width * height)]
    for y in range(height):
        for x in range(width):
            for dx, dy in _DIRECTIONS:
                end_x, end_y = x + dx * (length - 1), y + dy * (length - 1)
                if not (0 <= end_x < width and 0 <= end_y < height):
                    continue
                line = tuple((y + dy * i) * width + x + dx * i for i in range(length))
                for index in line:
                    through[index].append(line)
    return tuple(tuple(lines) for lines in through)


def completes_line(cells: Sequence[int], width: int, height: int, length: int, index: int) -> bool:
    """Whether the mark at ``cells[index]`` is in ``length`` equal marks in a row.

    ``cells`` is a row-major ``width x height`` grid (``cells[y * width + x]``)
    of marks, 0 for empty. Rows, columns and both diagonals count. An empty
    cell completes nothing. Checking only the lines through the cell just
    marked is enough after each move: a line without it existed before.
    """
    mark = cells[index]
    if mark == EMPTY:
        return False
    return any(
        all(cells[i] == mark for i in line)
        for line in _lines_through(width, height, length)[index]
    )


def line_owners(cells: Sequence[int], width: int, height: int, length: int) -> frozenset[int]:
    """The marks (non-zero values) that have ``length`` in a row anywhere in ``cells``.

    Same grid layout as :func:`completes_line`; used to check a decoded
    position, where the last move alone does not tell.
    """
    return frozenset(
        cells[index]
        for index in range(width * height)
        if completes_line(cells, width, height, length, index)
    )
