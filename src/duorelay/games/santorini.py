"""Santorini without god powers (docs/santorini.md section 4) and its board encoding (section 3).

The board is 6 x 6; a place is ``(x, y)``, x the column 0..5 from west to
east, y the row 0..5 from north to south. Each of the two players (names
``^[a-z]+$``, section 2) has two workers, named by the player's name plus "1"
or "2" in placement order ("alpha1").

A game has two phases:

1. **Placement** (section 3, order step 2): on the empty board, player one
   (:attr:`Player.FIRST`), player two, one, two each place a worker on a free
   place: :class:`Place`. An occupied or off-board place breaks the rules.
2. **Turns** (section 3, order step 3; section 4), player one first: an
   :class:`Action`, one of

   - :class:`MoveBuild`: move one of your own workers to one of its up to 8
     neighbours that is on the board, free of workers, not capped (level 4) and
     at most one floor higher (any drop allowed); then build one floor on a
     neighbour of its new square that is on the board, not capped and free of
     workers (the square just left is free);
   - :class:`WinningMove`: such a move onto level 3, which wins; no build
     follows (section 3, Action);
   - :class:`GiveUp` with the player's own name: the opponent wins.

   A player who can make neither kind of move is stuck; it is still asked,
   and its only legal action is to give up (section 3, order step 4; section 4,
   "Loss"). Moving onto level 3 wins; moving anywhere else must build.

Directions are ``dx, dy`` in -1..1; :data:`EAST_WEST` and :data:`NORTH_SOUTH`
give the wire's names for them ("EAST" is x+1, "NORTH" is y-1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias

from duorelay.games import base
from duorelay.games.base import Ending, IllegalMove, InvalidEncoding, Outcome, Player

__all__ = [
    "CAPPED",
    "EAST_WEST",
    "NORTH_SOUTH",
    "SIZE",
    "TOP_FLOOR",
    "Action",
    "Board",
    "GiveUp",
    "Move",
    "MoveBuild",
    "Place",
    "State",
    "WinningMove",
    "apply",
    "board_of",
    "decode_board",
    "encode_board",
    "encode_placements",
    "is_placing",
    "is_stuck",
    "legal_moves",
    "new_game",
    "outcome",
    "replay",
    "state_from_board",
    "worker_names",
]

SIZE: Final = 6
"""Places per side: coordinates are 0..5 (section 3, Data)."""
CAPPED: Final = 4
"""A building of 4 floors is capped: no worker moves onto it, nobody builds on it."""
TOP_FLOOR: Final = 3
"""Moving a worker onto a building of this height wins (section 4, Win)."""
WORKERS_PER_PLAYER: Final = 2

EAST_WEST: Final[Mapping[str, int]] = {"EAST": 1, "WEST": -1, "PUT": 0}
"""The wire's EW direction names and their ``dx`` (section 3, Action)."""
NORTH_SOUTH: Final[Mapping[str, int]] = {"NORTH": -1, "SOUTH": 1, "PUT": 0}
"""The wire's NS direction names and their ``dy`` (section 3, Action)."""

_NAME = re.compile(r"[a-z]+")
_WORKER_CELL = re.compile(r"([0-4])([a-z]+)([12])")
_NEIGHBOURS = tuple((dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0))
_WORKERS = 2 * WORKERS_PER_PLAYER


@dataclass(frozen=True, slots=True)
class Place:
    """A place on the board, also the placement of a worker there (``[x, y]``)."""

    x: int
    y: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The player ``name`` gives up (the action ``Name``)."""

    name: str


@dataclass(frozen=True, slots=True)
class WinningMove:
    """``worker`` moves by ``(dx, dy)`` onto level 3 and wins (``[Worker, EW, NS]``)."""

    worker: str
    dx: int
    dy: int


@dataclass(frozen=True, slots=True)
class MoveBuild:
    """``worker`` moves by ``(dx, dy)``, then builds at ``(build_dx, build_dy)`` from its new
    place (``[Worker, EW, NS, EW, NS]``)."""

    worker: str
    dx: int
    dy: int
    build_dx: int
    build_dy: int


Action: TypeAlias = GiveUp | WinningMove | MoveBuild
"""A reply to take-turn (section 3)."""
Move: TypeAlias = Place | Action
"""What :func:`apply` takes: a placement while workers are placed, then actions."""


@dataclass(frozen=True, slots=True)
class State:
    """A position.

    - ``players``: the names of player one and player two;
    - ``heights``: 36 building heights 0..4, ``heights[y * 6 + x]``;
    - ``workers``: the places of the workers placed so far, in placement order:
      player one's worker 1, player two's worker 1, one's 2, two's 2;
    - ``to_move``: the player asked next (after a winning move: the one who
      would be next; after a give-up: the one who gave up);
    - ``result``: ``None`` while the game goes on.
    """

    players: tuple[str, str]
    heights: tuple[int, ...]
    workers: tuple[Place, ...]
    to_move: Player
    result: Outcome | None


@dataclass(frozen=True, slots=True)
class Board:
    """What a Board message says: heights (``heights[y * 6 + x]``) and each worker's place,
    as ``(name, place)`` pairs sorted by name."""

    heights: tuple[int, ...]
    workers: tuple[tuple[str, Place], ...]


def new_game(one: str, two: str) -> State:
    """The empty board; player ``one`` places first. ``ValueError`` unless both names match
    ``^[a-z]+$`` (section 2) and differ."""
    for name in (one, two):
        if not _NAME.fullmatch(name):
            raise ValueError(f"player names must match ^[a-z]+$, not {name!r}")
    if one == two:
        raise ValueError("the two players need different names")
    return State((one, two), (0,) * (SIZE * SIZE), (), Player.FIRST, None)


def _worker_name(state: State, index: int) -> str:
    return state.players[index % 2] + str(index // 2 + 1)


def worker_names(state: State) -> dict[str, Place]:
    """Each placed worker's name and place, in placement order."""
    return {_worker_name(state, i): place for i, place in enumerate(state.workers)}


def is_placing(state: State) -> bool:
    """Whether workers are still being placed (phase 1)."""
    return len(state.workers) < _WORKERS


def _on_board(x: int, y: int) -> bool:
    return 0 <= x < SIZE and 0 <= y < SIZE


def _occupant(state: State, x: int, y: int) -> int | None:
    """The index of the worker on ``(x, y)``, if any."""
    for index, place in enumerate(state.workers):
        if place.x == x and place.y == y:
            return index
    return None


def _step_problem(state: State, worker: int, dx: int, dy: int) -> str | None:
    """Why worker number ``worker`` may not move by ``(dx, dy)``; ``None`` if it may."""
    if (dx, dy) not in _NEIGHBOURS:
        return "a worker moves to one of its 8 neighbours (dx, dy in -1..1, not both 0)"
    start = state.workers[worker]
    x, y = start.x + dx, start.y + dy
    if not _on_board(x, y):
        return f"the move leaves the board at ({x}, {y})"
    if (other := _occupant(state, x, y)) is not None:
        return f"({x}, {y}) is occupied by {_worker_name(state, other)}"
    height, was = state.heights[y * SIZE + x], state.heights[start.y * SIZE + start.x]
    if height == CAPPED:
        return f"({x}, {y}) is capped"
    if height > was + 1:
        return f"({x}, {y}) is {height - was} floors up; a worker climbs at most one"
    return None


def _build_problem(state: State, worker: int, dx: int, dy: int, bdx: int, bdy: int) -> str | None:
    """Why the build after a legal step may not be at ``(bdx, bdy)`` from the new place."""
    if (bdx, bdy) not in _NEIGHBOURS:
        return "a worker builds on one of its 8 neighbours (dx, dy in -1..1, not both 0)"
    start = state.workers[worker]
    x, y = start.x + dx + bdx, start.y + dy + bdy
    if not _on_board(x, y):
        return f"the build at ({x}, {y}) is off the board"
    other = _occupant(state, x, y)
    if other is not None and other != worker:
        return f"cannot build on ({x}, {y}): {_worker_name(state, other)} stands there"
    if state.heights[y * SIZE + x] == CAPPED:
        return f"cannot build on ({x}, {y}): it is capped"
    return None


def _own_workers(state: State) -> range:
    return range(state.to_move.index, _WORKERS, 2)


def _actions(state: State) -> list[Action]:
    """The moves of the player on turn, without giving up."""
    actions: list[Action] = []
    for worker in _own_workers(state):
        name, start = _worker_name(state, worker), state.workers[worker]
        for dx, dy in _NEIGHBOURS:
            if _step_problem(state, worker, dx, dy) is not None:
                continue
            if state.heights[(start.y + dy) * SIZE + start.x + dx] == TOP_FLOOR:
                actions.append(WinningMove(name, dx, dy))
                continue
            actions.extend(
                MoveBuild(name, dx, dy, bdx, bdy)
                for bdx, bdy in _NEIGHBOURS
                if _build_problem(state, worker, dx, dy, bdx, bdy) is None
            )
    return actions


def is_stuck(state: State) -> bool:
    """Whether the player on turn can neither move and build nor win: it can only give up
    (section 4, Loss). ``False`` while placing and once the game is over."""
    return state.result is None and not is_placing(state) and not _actions(state)


def legal_moves(state: State) -> list[Move]:
    """Every legal move of the player on turn; ``[]`` once the game is over.

    While placing: every free place, row by row. Then: the winning moves and
    move-builds of worker 1, then of worker 2 (moves in a fixed neighbour order),
    and last :class:`GiveUp` with the player's own name, always legal.
    """
    if state.result is not None:
        return []
    if is_placing(state):
        taken = set(state.workers)
        return [
            place for y in range(SIZE) for x in range(SIZE) if (place := Place(x, y)) not in taken
        ]
    return [*_actions(state), GiveUp(state.players[state.to_move.index])]


def apply(state: State, move: Move) -> State:
    """The position after ``move`` (sections 3 and 4; see the module docstring).

    Raises :class:`IllegalMove` if the game is over; for a placement that is not
    a :class:`Place` or a :class:`Place` after placement; a place off the board
    or occupied; giving up in another's name; a worker that is not the mover's;
    a move or build that breaks section 4; a :class:`WinningMove` that does not
    reach level 3, or a :class:`MoveBuild` that does (it must not build).
    """
    if state.result is not None:
        raise IllegalMove("the game is over")
    if is_placing(state):
        if not isinstance(move, Place):
            raise IllegalMove("workers are still being placed: the reply is a place [x, y]")
        return _place(state, move)
    if isinstance(move, Place):
        raise IllegalMove("all workers are placed: the reply is an action")
    own = state.players[state.to_move.index]
    if isinstance(move, GiveUp):
        if move.name != own:
            raise IllegalMove(f"{move.name!r} is not your name ({own!r}): give up as yourself")
        ending = Ending.STUCK if is_stuck(state) else Ending.FORFEIT
        return State(
            state.players,
            state.heights,
            state.workers,
            state.to_move,
            Outcome(state.to_move.other, ending),
        )
    worker = _own_worker(state, move.worker)
    if (problem := _step_problem(state, worker, move.dx, move.dy)) is not None:
        raise IllegalMove(problem)
    start = state.workers[worker]
    x, y = start.x + move.dx, start.y + move.dy
    workers = (*state.workers[:worker], Place(x, y), *state.workers[worker + 1 :])
    climbed = state.heights[y * SIZE + x] == TOP_FLOOR
    if isinstance(move, WinningMove):
        if not climbed:
            raise IllegalMove(
                "a move without a build must reach level 3; this one does not: add a build"
            )
        result = Outcome(state.to_move, Ending.CLIMB)
        return State(state.players, state.heights, workers, state.to_move.other, result)
    if climbed:
        raise IllegalMove("a move onto level 3 wins and builds nothing: send it without a build")
    problem = _build_problem(state, worker, move.dx, move.dy, move.build_dx, move.build_dy)
    if problem is not None:
        raise IllegalMove(problem)
    at = (y + move.build_dy) * SIZE + x + move.build_dx
    heights = base.replaced(state.heights, at, state.heights[at] + 1)
    return State(state.players, heights, workers, state.to_move.other, None)


def _place(state: State, place: Place) -> State:
    if not _on_board(place.x, place.y):
        raise IllegalMove(f"({place.x}, {place.y}) is off the board (0..{SIZE - 1})")
    if (other := _occupant(state, place.x, place.y)) is not None:
        raise IllegalMove(f"({place.x}, {place.y}) is occupied by {_worker_name(state, other)}")
    return State(state.players, state.heights, (*state.workers, place), state.to_move.other, None)


def _own_worker(state: State, name: str) -> int:
    for index in range(_WORKERS):
        if _worker_name(state, index) == name:
            if index % 2 != state.to_move.index:
                raise IllegalMove(f"{name} is not your worker")
            return index
    raise IllegalMove(f"there is no worker named {name!r}")


def outcome(state: State) -> Outcome | None:
    """``None`` while the game goes on (a stuck player is still asked: see :func:`is_stuck`);
    else the winner and CLIMB, FORFEIT (gave up) or STUCK (gave up with no other action)."""
    return state.result


def replay(one: str, two: str, moves: Iterable[Move]) -> State:
    """The state after ``moves`` (placements, then actions) from :func:`new_game`;
    :class:`IllegalMove` ("move N: ...") at the first illegal one."""
    return base.replay(new_game(one, two), moves, apply)


# -- encodings (section 3, Data) --------------------------------------------------------


def board_of(state: State) -> Board:
    """The :class:`Board` of a state: its heights and its placed workers."""
    return Board(state.heights, tuple(sorted(worker_names(state).items())))


def encode_board(board: Board | State) -> list[list[int | str]]:
    """The Board message: a full 6 x 6 list of rows, ``Board[y][x]``, row 0 north.

    A cell is its height 0..4, or ``"<height><Worker>"`` (``"2alpha1"``) where a
    worker stands. Full rows are sent, never ragged ones (section 3, Data).
    """
    if isinstance(board, State):
        board = board_of(board)
    rows: list[list[int | str]] = [
        list(board.heights[y * SIZE : (y + 1) * SIZE]) for y in range(SIZE)
    ]
    for name, place in board.workers:
        rows[place.y][place.x] = f"{rows[place.y][place.x]}{name}"
    return rows


def encode_placements(state: State) -> list[list[str | int]]:
    """The placement request: ``[[Worker, x, y], ...]``, the workers placed so far in
    placement order (section 3)."""
    return [[name, place.x, place.y] for name, place in worker_names(state).items()]


def decode_board(data: object) -> Board:
    """A Board message as a :class:`Board`, validated (section 3, Data).

    Accepts ragged boards: up to 6 rows of up to 6 cells each, missing cells
    (the reference omits trailing zeros) and missing rows are height 0 with no
    worker. A cell is an integer 0..4 (not a boolean) or a string
    ``<height 0..4><name ^[a-z]+$><1 or 2>``. As the reference's board reader,
    requires exactly two players with workers 1 and 2 each; also refuses a worker
    twice and a worker on a capped building.

    Raises :class:`InvalidEncoding` naming the first bad row or cell.
    """
    if not isinstance(data, list):
        raise InvalidEncoding("a board is a list of rows")
    if len(data) > SIZE:
        raise InvalidEncoding(f"a board has at most {SIZE} rows, not {len(data)}")
    heights = [0] * (SIZE * SIZE)
    workers: dict[str, Place] = {}
    for y, row in enumerate(data):
        if not isinstance(row, list):
            raise InvalidEncoding(f"row {y} is not a list")
        if len(row) > SIZE:
            raise InvalidEncoding(f"row {y} has more than {SIZE} cells")
        for x, cell in enumerate(row):
            heights[y * SIZE + x] = _decode_cell(cell, x, y, workers)
    players = sorted({name[:-1] for name in workers})
    expected = sorted(f"{player}{n}" for player in players for n in (1, 2))
    if len(players) != 2 or sorted(workers) != expected:
        raise InvalidEncoding(
            "a board has two workers (1 and 2) of each of two players, not "
            f"{', '.join(sorted(workers)) or 'none'}"
        )
    return Board(tuple(heights), tuple(sorted(workers.items())))


def _decode_cell(cell: object, x: int, y: int, workers: dict[str, Place]) -> int:
    """The height of one cell; records the worker standing there in ``workers``."""
    if isinstance(cell, int) and not isinstance(cell, bool):
        if not 0 <= cell <= CAPPED:
            raise InvalidEncoding(f"cell ({x}, {y}): a height is 0..{CAPPED}, not {cell}")
        return cell
    if not isinstance(cell, str):
        raise InvalidEncoding(f"cell ({x}, {y}) must be a height or a string, not {cell!r}")
    match = _WORKER_CELL.fullmatch(cell)
    if match is None:
        raise InvalidEncoding(
            f"cell ({x}, {y}) must be <height 0..4><name><1 or 2> like '2alpha1', not {cell!r}"
        )
    height, name = int(match[1]), match[2] + match[3]
    if height == CAPPED:
        raise InvalidEncoding(f"cell ({x}, {y}): {name} cannot stand on a capped building")
    if name in workers:
        raise InvalidEncoding(f"cell ({x}, {y}): {name} is already on the board")
    workers[name] = Place(x, y)
    return height


def state_from_board(
    board: Board, players: tuple[str, str], to_move: Player = Player.FIRST
) -> State:
    """The state of a game in its turns phase with this board, ``players`` (one, two) and
    ``to_move`` on turn; ``result`` is ``None``.

    Raises :class:`InvalidEncoding` unless the board's workers are exactly the
    two workers of each of ``players``; ``ValueError`` for bad names as
    :func:`new_game`.
    """
    start = new_game(*players)
    names = [_worker_name(start, index) for index in range(_WORKERS)]
    found = dict(board.workers)
    if sorted(found) != sorted(names):
        raise InvalidEncoding(
            f"the board's workers {sorted(found)} are not those of {players[0]!r} and "
            f"{players[1]!r}"
        )
    return State(start.players, board.heights, tuple(found[n] for n in names), to_move, None)
