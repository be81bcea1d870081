"""Rules of k-in-a-row tic-tac-toe (XOGAME.md, Rules; the XO API's 6 x 6, 4 in a row game)."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duorelay.games import Ending, IllegalMove, Outcome, Player
from duorelay.games import tictactoe as ttt
from duorelay.games.tictactoe import Move, O, X

FAST = settings(max_examples=40, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)
"""Seeds of random play: a game is a pure function of its seed."""


def play(state: ttt.State, *cells: tuple[int, int]) -> ttt.State:
    """Apply moves on ``cells`` alternately, by whoever is on turn."""
    for x, y in cells:
        state = ttt.apply(state, Move(state.to_move, x, y))
    return state


# -- set-up


def test_xo_game_is_six_by_six_four_in_a_row() -> None:
    state = ttt.xo_game()
    assert (state.width, state.height, state.line_length) == (6, 6, 4)
    assert state.to_move is X is Player.FIRST
    assert len(ttt.legal_moves(state)) == 36
    assert ttt.outcome(state) is None


@pytest.mark.parametrize(
    ("width", "height", "line_length"),
    [(3, 3, 3), (10, 10, 10), (3, 10, 10), (10, 3, 7), (7, 4, 3), (6, 6, 4)],
)
def test_any_board_from_3_to_10_and_line_up_to_the_longer_side(
    width: int, height: int, line_length: int
) -> None:
    state = ttt.new_game(width, height, line_length)
    assert len(state.cells) == width * height
    assert len(ttt.legal_moves(state)) == width * height


@pytest.mark.parametrize(
    ("width", "height", "line_length"),
    [(2, 3, 3), (3, 11, 3), (11, 3, 3), (3, 3, 2), (3, 3, 4), (5, 4, 6), (0, 0, 0)],
)
def test_bad_dimensions_are_refused(width: int, height: int, line_length: int) -> None:
    with pytest.raises(ValueError, match=r"must be"):
        ttt.new_game(width, height, line_length)


# -- turns and cells


def test_x_moves_first_then_turns_alternate() -> None:
    state = ttt.xo_game()
    with pytest.raises(IllegalMove, match="X's turn"):
        ttt.apply(state, Move(O, 0, 0))
    state = ttt.apply(state, Move(X, 0, 0))
    assert state.to_move is O
    with pytest.raises(IllegalMove, match="O's turn"):
        ttt.apply(state, Move(X, 1, 1))
    state = ttt.apply(state, Move(O, 1, 1))
    assert state.to_move is X
    assert ttt.mark_at(state, 0, 0) is X
    assert ttt.mark_at(state, 1, 1) is O
    assert ttt.mark_at(state, 5, 5) is None


@pytest.mark.parametrize(("x", "y"), [(-1, 0), (0, -1), (6, 0), (0, 6), (6, 6)])
def test_a_move_off_the_board_is_refused(x: int, y: int) -> None:
    with pytest.raises(IllegalMove, match="off the 6x6 board"):
        ttt.apply(ttt.xo_game(), Move(X, x, y))


def test_a_marked_cell_is_refused() -> None:
    state = play(ttt.xo_game(), (2, 3))
    with pytest.raises(IllegalMove, match=r"\(2, 3\) is already marked"):
        ttt.apply(state, Move(O, 2, 3))


def test_apply_leaves_the_old_state_unchanged_and_states_are_frozen() -> None:
    start = ttt.xo_game()
    after = ttt.apply(start, Move(X, 0, 0))
    assert start == ttt.xo_game()
    assert after != start
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.to_move = X  # type: ignore[misc]
    assert hash(after) == hash(play(ttt.xo_game(), (0, 0)))


def test_mark_at_off_the_board_is_an_index_error() -> None:
    with pytest.raises(IndexError):
        ttt.mark_at(ttt.xo_game(), 6, 0)


# -- wins and draws


@pytest.mark.parametrize(
    "x_cells",
    [
        [(1, 2), (2, 2), (3, 2), (4, 2)],  # row
        [(5, 0), (5, 1), (5, 2), (5, 3)],  # column on the edge
        [(1, 1), (2, 2), (3, 3), (4, 4)],  # diagonal
        [(5, 1), (4, 2), (3, 3), (2, 4)],  # anti-diagonal
        [(2, 5), (3, 4), (4, 3), (5, 2)],  # anti-diagonal to the corner
    ],
)
def test_four_in_a_row_wins_the_xo_game(x_cells: list[tuple[int, int]]) -> None:
    o_cells = [(0, 0), (0, 5), (0, 3)]
    state = ttt.xo_game()
    for turn, cell in enumerate(x_cells):
        assert ttt.outcome(state) is None
        state = play(state, cell)
        if turn < 3:
            state = play(state, o_cells[turn])
    assert ttt.outcome(state) == Outcome(X, Ending.LINE)
    assert ttt.legal_moves(state) == []
    with pytest.raises(IllegalMove, match="finished"):
        ttt.apply(state, Move(state.to_move, 3, 0))


def test_o_can_win_too_and_the_line_may_be_completed_in_the_middle() -> None:
    # O: (0,1), (1,1), (3,1) then (2,1) fills the gap; X plays elsewhere.
    state = play(ttt.xo_game(), (0, 5), (0, 1), (1, 5), (1, 1), (3, 4), (3, 1), (5, 5), (2, 1))
    assert ttt.outcome(state) == Outcome(O, Ending.LINE)


def test_three_in_a_row_does_not_win_a_four_in_a_row_game() -> None:
    state = play(ttt.xo_game(), (0, 0), (5, 5), (1, 0), (5, 4), (2, 0))
    assert ttt.outcome(state) is None


def test_a_line_only_fits_along_the_longer_side() -> None:
    # 3 wide, 5 high, 5 in a row: only columns can win.
    state = ttt.new_game(3, 5, 5)
    state = play(state, (1, 0), (0, 0), (1, 1), (0, 1), (1, 2), (0, 2), (1, 3), (0, 3))
    assert ttt.outcome(state) is None
    state = play(state, (1, 4))
    assert ttt.outcome(state) == Outcome(X, Ending.LINE)


def test_a_full_board_without_a_line_is_a_draw() -> None:
    # X O X / X O O / O X X
    state = play(
        ttt.new_game(), (0, 0), (1, 0), (2, 0), (1, 1), (0, 1), (2, 1), (1, 2), (0, 2), (2, 2)
    )
    assert ttt.outcome(state) == Outcome(None, Ending.DRAW)
    assert ttt.outcome(state).is_draw  # type: ignore[union-attr]
    assert ttt.legal_moves(state) == []


def test_filling_the_board_with_a_line_is_a_win_not_a_draw() -> None:
    # X O X / O X O / O X X: the ninth move fills the board and the diagonal.
    state = play(
        ttt.new_game(), (0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (1, 2), (0, 2), (2, 2)
    )
    assert ttt.outcome(state) == Outcome(X, Ending.LINE)


# -- replay


def test_replay_rebuilds_the_state_and_names_the_first_illegal_move() -> None:
    moves = [Move(X, 0, 0), Move(O, 1, 1), Move(X, 2, 2)]
    assert ttt.replay(moves, 6, 6, 4) == play(ttt.xo_game(), (0, 0), (1, 1), (2, 2))
    with pytest.raises(IllegalMove, match=r"^move 2: .*already marked"):
        ttt.replay([Move(X, 0, 0), Move(O, 0, 0)])


# -- properties


@st.composite
def games(draw: st.DrawFn) -> ttt.State:
    width = draw(st.integers(3, 10))
    height = draw(st.integers(3, 10))
    line_length = draw(st.integers(3, max(width, height)))
    return ttt.new_game(width, height, line_length)


def random_play(start: ttt.State, rng: random.Random) -> tuple[ttt.State, list[Move]]:
    state, moves = start, []
    for _ in range(start.width * start.height):
        legal = ttt.legal_moves(state)
        if not legal:
            break
        move = rng.choice(legal)
        moves.append(move)
        state = ttt.apply(state, move)
    return state, moves


@FAST
@given(games(), SEEDS)
def test_random_legal_play_ends_and_replays_to_the_same_state(start: ttt.State, seed: int) -> None:
    state, moves = random_play(start, random.Random(seed))
    result = ttt.outcome(state)
    assert result is not None
    assert len(moves) <= start.width * start.height
    if result.is_draw:
        assert 0 not in state.cells
    else:
        assert result.winner is moves[-1].player
    assert ttt.replay(moves, start.width, start.height, start.line_length) == state


@FAST
@given(games(), SEEDS, st.data())
def test_exactly_the_legal_moves_are_accepted(
    start: ttt.State, seed: int, data: st.DataObject
) -> None:
    state, moves = random_play(start, random.Random(seed))
    state = ttt.replay(
        moves[: data.draw(st.integers(0, len(moves)))],
        start.width,
        start.height,
        start.line_length,
    )
    legal = set(ttt.legal_moves(state))
    for _ in range(20):
        move = Move(
            data.draw(st.sampled_from(Player)),
            data.draw(st.integers(-1, state.width)),
            data.draw(st.integers(-1, state.height)),
        )
        if move in legal:
            assert ttt.apply(state, move).cells != state.cells
        else:
            with pytest.raises(IllegalMove):
                ttt.apply(state, move)
