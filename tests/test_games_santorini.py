"""Rules of Santorini and its board encoding (docs/santorini.md sections 3 and 4)."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duorelay.games import Ending, IllegalMove, InvalidEncoding, Outcome, Player
from duorelay.games import santorini as sa
from duorelay.games.santorini import EAST_WEST, NORTH_SOUTH, GiveUp, MoveBuild, Place, WinningMove

FAST = settings(max_examples=30, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)
"""Seeds of random play: a game is a pure function of its seed."""
ONE, TWO = Player.FIRST, Player.SECOND


def position(rows: list[list[Any]], to_move: Player = ONE) -> sa.State:
    """A turns-phase state of players "one" and "two" from a (ragged) Board message."""
    return sa.state_from_board(sa.decode_board(rows), ("one", "two"), to_move)


def wire(worker: str, *directions: str) -> MoveBuild | WinningMove:
    """An action from its wire form: ``wire("one1", "EAST", "PUT", "PUT", "SOUTH")``."""
    deltas = [
        (EAST_WEST if i % 2 == 0 else NORTH_SOUTH)[name] for i, name in enumerate(directions)
    ]
    if len(deltas) == 2:
        return WinningMove(worker, *deltas)
    return MoveBuild(worker, *deltas)


# one1 at (0,0) on level 0, two1 at (2,0) on level 2, one2 at (4,1), two2 at (5,2):
#   x:    0       1   2        3   4
#   y=0: "0one1", 1,  "2two1", 3,  4
#   y=1:  2,      3,  0,       0,  "0one2"
#   y=2:  0,      0,  0,       0,  0,  "0two2"
BOARD = [
    ["0one1", 1, "2two1", 3, 4],
    [2, 3, 0, 0, "0one2"],
    [0, 0, 0, 0, 0, "0two2"],
]


# -- set-up and placement


@pytest.mark.parametrize(
    ("one", "two"), [("Alpha", "bravo"), ("al1", "bravo"), ("", "b"), ("a", "a")]
)
def test_names_are_lowercase_letters_and_differ(one: str, two: str) -> None:
    with pytest.raises(ValueError, match="names"):
        sa.new_game(one, two)


def test_the_example_encounter_of_section_3() -> None:
    """docs/santorini.md, Example: mallory places first, then makes an illegal move."""
    state = sa.new_game("mallory", "alpha")
    assert sa.is_placing(state)
    assert sa.encode_placements(state) == []
    assert len(sa.legal_moves(state)) == 36
    state = sa.apply(state, Place(0, 0))
    assert sa.encode_placements(state) == [["mallory1", 0, 0]]
    state = sa.apply(state, Place(5, 5))
    assert sa.encode_placements(state) == [["mallory1", 0, 0], ["alpha1", 5, 5]]
    state = sa.apply(state, Place(0, 5))
    assert sa.encode_placements(state) == [
        ["mallory1", 0, 0],
        ["alpha1", 5, 5],
        ["mallory2", 0, 5],
    ]
    state = sa.apply(state, Place(5, 0))
    assert not sa.is_placing(state)
    assert state.to_move is ONE
    assert sa.encode_board(state) == [
        ["0mallory1", 0, 0, 0, 0, "0alpha2"],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        ["0mallory2", 0, 0, 0, 0, "0alpha1"],
    ]
    with pytest.raises(IllegalMove, match="alpha2 is not your worker"):
        sa.apply(state, wire("alpha2", "PUT", "SOUTH", "PUT", "NORTH"))


def test_placements_alternate_and_must_be_free_and_on_the_board() -> None:
    state = sa.apply(sa.new_game("one", "two"), Place(2, 3))
    assert state.to_move is TWO
    assert Place(2, 3) not in sa.legal_moves(state)
    with pytest.raises(IllegalMove, match=r"\(2, 3\) is occupied by one1"):
        sa.apply(state, Place(2, 3))
    for x, y in [(6, 0), (0, 6), (-1, 2)]:
        with pytest.raises(IllegalMove, match="off the board"):
            sa.apply(state, Place(x, y))
    with pytest.raises(IllegalMove, match="still being placed"):
        sa.apply(state, GiveUp("two"))
    state = sa.replay("one", "two", [Place(2, 3), Place(0, 0), Place(1, 1), Place(5, 5)])
    assert sa.worker_names(state) == {
        "one1": Place(2, 3),
        "two1": Place(0, 0),
        "one2": Place(1, 1),
        "two2": Place(5, 5),
    }
    with pytest.raises(IllegalMove, match="all workers are placed"):
        sa.apply(state, Place(4, 4))


# -- moves and builds (section 4)


def test_a_move_and_build_changes_the_board_and_passes_the_turn() -> None:
    state = position(BOARD)
    after = sa.apply(state, wire("one1", "EAST", "PUT", "PUT", "SOUTH"))
    assert sa.encode_board(after)[0][:3] == [0, "1one1", "2two1"]
    assert sa.encode_board(after)[1][1] == 4
    assert after.to_move is TWO
    assert state == position(BOARD)  # unchanged
    with pytest.raises(IllegalMove, match="one2 is not your worker"):
        sa.apply(after, wire("one2", "WEST", "PUT", "WEST", "PUT"))
    sa.apply(after, wire("two2", "WEST", "PUT", "WEST", "PUT"))


def test_a_worker_climbs_at_most_one_floor_and_drops_any() -> None:
    state = position(BOARD)
    with pytest.raises(IllegalMove, match=r"\(0, 1\) is 2 floors up"):
        sa.apply(state, wire("one1", "PUT", "SOUTH", "PUT", "SOUTH"))
    high = position([["0one1", 0, "0two1"], [0, "3one2", 0, 0, 0, "0two2"]])
    # one2 drops from level 3 to level 0 and builds where it stood.
    after = sa.apply(high, wire("one2", "EAST", "PUT", "WEST", "PUT"))
    assert sa.encode_board(after)[1][1:3] == [4, "0one2"]


def test_a_worker_cannot_move_onto_a_worker_a_cap_or_off_the_board_or_stay() -> None:
    state = position(BOARD, to_move=TWO)
    with pytest.raises(IllegalMove, match=r"\(4, 1\) is occupied by one2"):
        sa.apply(state, wire("two2", "WEST", "NORTH", "WEST", "PUT"))
    with pytest.raises(IllegalMove, match="one of its 8 neighbours"):
        sa.apply(state, wire("two1", "PUT", "PUT", "PUT", "SOUTH"))
    with pytest.raises(IllegalMove, match=r"leaves the board at \(2, -1\)"):
        sa.apply(state, wire("two1", "PUT", "NORTH", "PUT", "SOUTH"))
    with pytest.raises(IllegalMove, match=r"leaves the board at \(6, 2\)"):
        sa.apply(state, wire("two2", "EAST", "PUT", "WEST", "PUT"))
    with pytest.raises(IllegalMove, match=r"\(4, 0\) is capped"):
        sa.apply(position(BOARD), wire("one2", "PUT", "NORTH", "PUT", "SOUTH"))


def test_move_deltas_outside_a_step_are_refused() -> None:
    state = position(BOARD)
    with pytest.raises(IllegalMove, match="8 neighbours"):
        sa.apply(state, MoveBuild("one1", 2, 0, 1, 0))
    with pytest.raises(IllegalMove, match="builds on one of its 8 neighbours"):
        sa.apply(state, MoveBuild("one1", 1, 0, 2, 0))


def test_the_build_may_use_the_square_just_left_but_no_worker_or_cap() -> None:
    state = position(BOARD)
    after = sa.apply(state, wire("one1", "EAST", "PUT", "WEST", "PUT"))
    assert sa.encode_board(after)[0][:2] == [1, "1one1"]
    with pytest.raises(IllegalMove, match="on one of its 8 neighbours"):
        sa.apply(state, wire("one1", "EAST", "PUT", "PUT", "PUT"))
    with pytest.raises(IllegalMove, match=r"cannot build on \(2, 0\): two1 stands there"):
        sa.apply(state, wire("one1", "EAST", "PUT", "EAST", "PUT"))
    with pytest.raises(IllegalMove, match="is off the board"):
        sa.apply(state, wire("one1", "EAST", "PUT", "PUT", "NORTH"))
    capped = position([["0one1", 1, 4], [0, 0, 0, 0, "0two1"], ["0one2", 0, "0two2"]])
    with pytest.raises(IllegalMove, match=r"cannot build on \(2, 0\): it is capped"):
        sa.apply(capped, wire("one1", "EAST", "PUT", "EAST", "PUT"))


def test_moving_onto_level_3_wins_without_a_build() -> None:
    state = position(BOARD, to_move=TWO)
    winning = wire("two1", "EAST", "PUT")
    assert winning in sa.legal_moves(state)
    assert not any(
        isinstance(m, MoveBuild) and (m.worker, m.dx, m.dy) == ("two1", 1, 0)
        for m in sa.legal_moves(state)
    )
    with pytest.raises(IllegalMove, match="wins and builds nothing"):
        sa.apply(state, wire("two1", "EAST", "PUT", "WEST", "PUT"))
    with pytest.raises(IllegalMove, match="must reach level 3"):
        sa.apply(state, wire("two1", "PUT", "SOUTH"))
    won = sa.apply(state, winning)
    assert sa.outcome(won) == Outcome(TWO, Ending.CLIMB)
    assert sa.encode_board(won)[0][3] == "3two1"
    assert sa.legal_moves(won) == []
    with pytest.raises(IllegalMove, match="over"):
        sa.apply(won, GiveUp("one"))


def test_giving_up_in_ones_own_name_loses() -> None:
    state = position(BOARD)
    with pytest.raises(IllegalMove, match="'two' is not your name"):
        sa.apply(state, GiveUp("two"))
    assert sa.legal_moves(state)[-1] == GiveUp("one")
    ended = sa.apply(state, GiveUp("one"))
    assert sa.outcome(ended) == Outcome(TWO, Ending.FORFEIT)


def test_a_stuck_player_is_still_asked_and_can_only_give_up() -> None:
    # one1 in the corner between a 2-floor wall; one2 hemmed in by caps and two's workers.
    state = position(
        [
            ["0one1", 2, 0, 0, 4, "0one2"],
            [2, 2, 0, 0, "0two1", "0two2"],
        ]
    )
    assert sa.is_stuck(state)
    assert sa.outcome(state) is None
    assert sa.legal_moves(state) == [GiveUp("one")]
    with pytest.raises(IllegalMove, match="floors up"):
        sa.apply(state, wire("one1", "EAST", "PUT", "WEST", "PUT"))
    ended = sa.apply(state, GiveUp("one"))
    assert sa.outcome(ended) == Outcome(TWO, Ending.STUCK)
    assert not sa.is_stuck(ended)
    # The other player is not stuck on the same board.
    assert not sa.is_stuck(dataclasses.replace(state, to_move=TWO))


def test_unknown_workers_are_refused() -> None:
    with pytest.raises(IllegalMove, match="no worker named 'zed1'"):
        sa.apply(position(BOARD), MoveBuild("zed1", 1, 0, 1, 0))
    with pytest.raises(IllegalMove, match="no worker named 'one3'"):
        sa.apply(position(BOARD), MoveBuild("one3", 1, 0, 1, 0))


def test_replay_names_the_first_illegal_move() -> None:
    with pytest.raises(IllegalMove, match=r"^move 2: \(1, 1\) is occupied by one1"):
        sa.replay("one", "two", [Place(1, 1), Place(1, 1)])


# -- the board encoding (section 3, Data)


def test_ragged_boards_are_accepted_and_full_boards_sent() -> None:
    board = sa.decode_board(
        [["0one1"], [], [0, 0, "2two1", 3], [], ["1one2", 0, 0, 0, 0, "0two2"]]
    )
    assert board.workers == (
        ("one1", Place(0, 0)),
        ("one2", Place(0, 4)),
        ("two1", Place(2, 2)),
        ("two2", Place(5, 4)),
    )
    full = sa.encode_board(board)
    assert full == [
        ["0one1", 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, "2two1", 3, 0, 0],
        [0, 0, 0, 0, 0, 0],
        ["1one2", 0, 0, 0, 0, "0two2"],
        [0, 0, 0, 0, 0, 0],
    ]
    assert sa.decode_board(full) == board


def test_state_from_board_needs_the_players_workers() -> None:
    board = sa.decode_board(BOARD)
    state = sa.state_from_board(board, ("one", "two"))
    assert sa.worker_names(state)["two2"] == Place(5, 2)
    assert sa.board_of(state) == board
    with pytest.raises(InvalidEncoding, match="are not those of 'one' and 'three'"):
        sa.state_from_board(board, ("one", "three"))
    swapped = sa.state_from_board(board, ("two", "one"))
    assert sa.worker_names(swapped)["two1"] == Place(2, 0)
    assert swapped.workers[0] == Place(2, 0)


@pytest.mark.parametrize(
    ("board", "problem"),
    [
        ({"rows": []}, "list of rows"),
        ([[]] * 7, "at most 6 rows"),
        (["0one1"], "row 0 is not a list"),
        ([[0] * 7], "row 0 has more than 6 cells"),
        ([[5]], r"cell \(0, 0\): a height is 0..4"),
        ([[0, -1]], r"cell \(1, 0\): a height is 0..4"),
        ([[True]], r"cell \(0, 0\) must be a height or a string"),
        ([[1.0]], r"cell \(0, 0\) must be a height or a string"),
        ([[None]], r"cell \(0, 0\) must be a height or a string"),
        ([["5one1"]], "must be <height 0..4><name><1 or 2>"),
        ([["2one3"]], "must be <height 0..4><name><1 or 2>"),
        ([["2One1"]], "must be <height 0..4><name><1 or 2>"),
        ([["one1"]], "must be <height 0..4><name><1 or 2>"),
        ([["4one1"]], "one1 cannot stand on a capped building"),
        ([["0one1", "1one1"]], r"cell \(1, 0\): one1 is already on the board"),
        ([["0one1", "0one2", "0two1"]], "two workers .1 and 2. of each of two players"),
        ([["0a1", "0a2", "0b1", "0b2", "0c1", "0c2"]], "of each of two players"),
        ([["0a1", "0a2", "0b1", "0c2"]], "of each of two players, not a1, a2, b1, c2"),
        ([], "not none"),
    ],
)
def test_bad_boards_are_refused(board: object, problem: str) -> None:
    with pytest.raises(InvalidEncoding, match=problem):
        sa.decode_board(board)


# -- properties


def random_play(rng: random.Random, limit: int = 1000) -> tuple[sa.State, list[sa.Move]]:
    """Random legal play; gives up only when stuck, or rarely."""
    state, moves = sa.new_game("ann", "bob"), list[sa.Move]()
    while sa.outcome(state) is None and len(moves) < limit:
        legal = sa.legal_moves(state)
        if not sa.is_placing(state) and len(legal) > 1 and rng.random() > 0.01:
            legal = legal[:-1]
        move = rng.choice(legal)
        moves.append(move)
        state = sa.apply(state, move)
    return state, moves


def strip_trailing_zeros(rows: list[list[Any]]) -> list[list[Any]]:
    """What the reference sends: rows without trailing zeros, no trailing empty rows."""
    ragged = []
    for row in rows:
        cut = list(row)
        while cut and cut[-1] == 0:
            cut.pop()
        ragged.append(cut)
    while ragged and not ragged[-1]:
        ragged.pop()
    return ragged


@FAST
@given(SEEDS)
def test_random_legal_play_ends_and_replays(seed: int) -> None:
    state, moves = random_play(random.Random(seed))
    result = sa.outcome(state)
    assert result is not None
    # Each turn but the last builds a floor: 36 places x 4 floors bound the game.
    assert len(moves) <= 4 + 36 * 4 + 1
    if result.ending is Ending.CLIMB:
        assert isinstance(moves[-1], WinningMove)
    else:
        assert isinstance(moves[-1], GiveUp)
    assert sa.replay("ann", "bob", moves) == state


@FAST
@given(SEEDS)
def test_boards_round_trip_full_and_ragged(seed: int) -> None:
    rng = random.Random(seed)
    _, moves = random_play(rng)
    for count in sorted({4, rng.randrange(4, len(moves) + 1), len(moves)}):
        position_ = sa.replay("ann", "bob", moves[:count])
        full = json.loads(json.dumps(sa.encode_board(position_)))
        assert len(full) == 6 and all(len(row) == 6 for row in full)
        board = sa.decode_board(full)
        assert board == sa.board_of(position_)
        assert sa.decode_board(strip_trailing_zeros(full)) == board
        if sa.outcome(position_) is None:
            assert sa.state_from_board(board, ("ann", "bob"), position_.to_move) == position_


def candidates(state: sa.State) -> st.SearchStrategy[sa.Move]:
    """Random moves of every kind, and legal moves with one field changed."""
    names = [*state.players, "cat"]
    workers = st.builds(lambda n, i: f"{n}{i}", st.sampled_from(names), st.integers(1, 3))
    delta = st.integers(-2, 2)
    coord = st.integers(-1, 6)
    anything = st.one_of(
        st.builds(Place, coord, coord),
        st.builds(GiveUp, st.sampled_from(names)),
        st.builds(WinningMove, workers, delta, delta),
        st.builds(MoveBuild, workers, delta, delta, delta, delta),
    )
    legal = sa.legal_moves(state)
    if not legal:
        return anything
    # Near misses: a legal move with one field changed.
    return st.one_of(
        anything,
        st.sampled_from(legal).flatmap(
            lambda m: st.builds(
                lambda field, value: _tweak(m, field, value),
                st.sampled_from([f.name for f in dataclasses.fields(m)]),
                st.integers(-1, 1),
            )
        ),
    )


def _tweak(move: sa.Move, field: str, step: int) -> sa.Move:
    """``move`` with ``field`` changed: a number by ``step``, a worker's number swapped, a
    player's name reversed."""
    value = getattr(move, field)
    if isinstance(value, str):
        changed = value[:-1] + "21"[int(value[-1]) - 1] if value[-1].isdigit() else value[::-1]
        return dataclasses.replace(move, **{field: changed})  # type: ignore[arg-type]
    return dataclasses.replace(move, **{field: value + step})


@FAST
@given(SEEDS, st.data())
def test_exactly_the_legal_moves_are_accepted(seed: int, data: st.DataObject) -> None:
    _, moves = random_play(random.Random(seed))
    state = sa.replay("ann", "bob", moves[: data.draw(st.integers(0, len(moves)))])
    legal = sa.legal_moves(state)
    assert len(set(legal)) == len(legal)
    for move in legal:
        sa.apply(state, move)
    for _ in range(25):
        move = data.draw(candidates(state))
        if move in legal:
            sa.apply(state, move)
        else:
            with pytest.raises(IllegalMove):
                sa.apply(state, move)
