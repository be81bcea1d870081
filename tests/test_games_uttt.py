"""Rules of ultimate tic-tac-toe and the match_state JSON (UTTT.md, Rules and match_update)."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duorelay.games import Ending, IllegalMove, InvalidEncoding, Outcome, Player, uttt
from duorelay.games.uttt import Move

FAST = settings(max_examples=40, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)
"""Seeds of random play: a game is a pure function of its seed."""
A, B = Player.FIRST, Player.SECOND


def field(subs: dict[tuple[int, int], str]) -> list[list[int]]:
    """A complete_field from sub-boards ``(sub_x, sub_y): "AAA/BB./..."`` (A 1, B 2, . 0)."""
    grid = [[0] * 9 for _ in range(9)]
    for (sub_x, sub_y), text in subs.items():
        for y, row in enumerate(text.split("/")):
            for x, char in enumerate(row):
                grid[sub_y * 3 + y][sub_x * 3 + x] = ".AB".index(char)
    return grid


def match_state(
    subs: dict[tuple[int, int], str],
    global_field: list[list[int]],
    last_move: dict[str, int] | None,
    active: str,
    **outcome: Any,
) -> dict[str, Any]:
    return {
        "complete_field": field(subs),
        "global_field": global_field,
        "last_move": last_move,
        "game_over": outcome.get("game_over", False),
        "player_won": outcome.get("player_won"),
        "active_player": active,
        "player_a": "alice",
        "player_b": "bob",
        "is_draw": outcome.get("is_draw", False),
    }


def lm(sub_x: int, sub_y: int, x: int, y: int) -> dict[str, int]:
    return {"sub_x": sub_x, "sub_y": sub_y, "x": x, "y": y}


# A wins sub-boards (0,0) and (1,0); (2,0) has A A . on its top row; B's last move was
# cell (2,0) of sub-board (0,2), which sends A to sub-board (2,0).
NEAR_WIN = match_state(
    {
        (0, 0): "AAA/BB./...",
        (1, 0): "AAA/BB./...",
        (2, 0): "AA./B../...",
        (1, 1): "BBA/.../...",
        (0, 2): "..B/.../...",
        (2, 2): "B../.../...",
    },
    [[1, 1, 0], [0, 0, 0], [0, 0, 0]],
    lm(0, 2, 2, 0),
    "alice",
)

# Every sub-board but (0,2) is decided, in a pattern without a line:
#   A B A / A B B / B A A ; (0,2) is B's, one mark short. B is on turn.
_WON_A, _WON_B = "AAA/BB./...", "BBB/AA./..."
NEAR_DRAW = match_state(
    {
        (0, 0): "AAA/BB./B..",
        (1, 0): _WON_B,
        (2, 0): _WON_A,
        (0, 1): _WON_A,
        (1, 1): _WON_B,
        (2, 1): _WON_B,
        (0, 2): "BB./AA./...",
        (1, 2): _WON_A,
        (2, 2): _WON_A,
    },
    [[1, 2, 1], [1, 2, 2], [0, 1, 1]],
    lm(0, 0, 0, 0),
    "bob",
)


def decoded(data: dict[str, Any]) -> uttt.State:
    return uttt.decode_match_state(data).state


# -- the forced sub-board


def test_the_first_move_is_free_and_player_a_moves_first() -> None:
    state = uttt.new_game()
    assert state.to_move is A
    assert uttt.forced_board(state) is None
    assert len(uttt.legal_moves(state)) == 81
    with pytest.raises(IllegalMove, match="not your turn"):
        uttt.apply(state, Move(B, 0, 0, 0, 0))


def test_the_next_move_goes_to_the_sub_board_named_by_the_last_cell() -> None:
    state = uttt.apply(uttt.new_game(), Move(A, 0, 0, 1, 2))
    assert uttt.forced_board(state) == (1, 2)
    legal = uttt.legal_moves(state)
    assert len(legal) == 9
    assert {(m.sub_x, m.sub_y) for m in legal} == {(1, 2)}
    assert all(m.player is B for m in legal)
    with pytest.raises(IllegalMove, match=r"sub-board \(sub_x=1, sub_y=2\)"):
        uttt.apply(state, Move(B, 2, 2, 0, 0))
    state = uttt.apply(state, Move(B, 1, 2, 0, 0))
    assert uttt.forced_board(state) == (0, 0)
    with pytest.raises(IllegalMove, match="taken"):
        uttt.apply(state, Move(A, 0, 0, 1, 2))


def test_a_won_sub_board_frees_the_choice_among_the_undecided_ones() -> None:
    # A wins sub-board (0,0) with its top row (cells (0,0), (1,0), (2,0)).
    state = uttt.replay(
        [
            Move(A, 0, 0, 0, 0),
            Move(B, 0, 0, 1, 1),
            Move(A, 1, 1, 0, 0),
            Move(B, 0, 0, 2, 2),
            Move(A, 2, 2, 1, 0),
            Move(B, 1, 0, 0, 0),
            Move(A, 0, 0, 1, 0),
            Move(B, 1, 0, 2, 2),
            Move(A, 2, 2, 2, 0),
            Move(B, 2, 0, 0, 0),
            Move(A, 0, 0, 2, 0),
        ]
    )
    assert state.boards[0] == A
    assert uttt.outcome(state) is None
    assert state.last_move == Move(A, 0, 0, 2, 0)
    # The last move names sub-board (2,0), which is open: B must play there.
    assert uttt.forced_board(state) == (2, 0)
    state = uttt.apply(state, Move(B, 2, 0, 0, 1))
    # B's cell (0,1) sends A to sub-board (0,1); A's cell (0,0) there names the won (0,0).
    assert uttt.forced_board(state) == (0, 1)
    state = uttt.apply(state, Move(A, 0, 1, 0, 0))
    assert uttt.forced_board(state) is None
    legal = uttt.legal_moves(state)
    assert {(m.sub_x, m.sub_y) for m in legal} == {
        (x, y) for x in range(3) for y in range(3) if (x, y) != (0, 0)
    }
    with pytest.raises(IllegalMove, match=r"sub-board \(sub_x=0, sub_y=0\) is won"):
        uttt.apply(state, Move(B, 0, 0, 0, 1))


def test_a_full_sub_board_is_drawn_and_frees_the_choice() -> None:
    # Sub-board (1,1) is A B A / A B B / B A . and B's last move, cell (1,1) of sub-board
    # (0,0), sends A there; A's last mark fills it without a line.
    state = decoded(
        match_state(
            {(1, 1): "ABA/ABB/BA.", (0, 0): ".../.B./...", (2, 2): "A../.../..."},
            [[0, 0, 0], [0, 0, 0], [0, 0, 0]],
            lm(0, 0, 1, 1),
            "alice",
        )
    )
    assert uttt.forced_board(state) == (1, 1)
    assert uttt.legal_moves(state) == [Move(A, 1, 1, 2, 2)]
    state = uttt.apply(state, Move(A, 1, 1, 2, 2))
    assert state.boards[4] == uttt.DRAWN
    assert uttt.outcome(state) is None
    # A's cell (2,2) sends B to sub-board (2,2); B's cell (1,1) names the drawn (1,1).
    assert uttt.forced_board(state) == (2, 2)
    state = uttt.apply(state, Move(B, 2, 2, 1, 1))
    assert uttt.forced_board(state) is None
    boards = {(m.sub_x, m.sub_y) for m in uttt.legal_moves(state)}
    assert boards == {(x, y) for x in range(3) for y in range(3)} - {(1, 1)}
    with pytest.raises(IllegalMove, match="is drawn"):
        uttt.apply(state, Move(A, 1, 1, 0, 0))
    encoded = uttt.encode_match_state(state, "alice", "bob")
    assert encoded["global_field"] == [[0, 0, 0], [0, 3, 0], [0, 0, 0]]


@pytest.mark.parametrize("coord", ["sub_x", "sub_y", "x", "y"])
@pytest.mark.parametrize("value", [-1, 3])
def test_coordinates_are_0_to_2(coord: str, value: int) -> None:
    coords = {"sub_x": 1, "sub_y": 1, "x": 1, "y": 1} | {coord: value}
    move = Move(A, **coords)
    with pytest.raises(IllegalMove, match=f"{coord} must be 0, 1 or 2"):
        uttt.apply(uttt.new_game(), move)


# -- the end


def test_three_won_sub_boards_in_a_line_win_the_game() -> None:
    state = decoded(NEAR_WIN)
    assert uttt.forced_board(state) == (2, 0)
    assert [(m.x, m.y) for m in uttt.legal_moves(state)][:2] == [(2, 0), (1, 1)]
    state = uttt.apply(state, Move(A, 2, 0, 2, 0))
    assert uttt.outcome(state) == Outcome(A, Ending.LINE)
    assert uttt.legal_moves(state) == []
    with pytest.raises(IllegalMove, match="over"):
        uttt.apply(state, Move(B, 0, 0, 2, 2))
    encoded = uttt.encode_match_state(state, "alice", "bob")
    assert encoded["game_over"] is True
    assert encoded["player_won"] == "alice"
    assert encoded["is_draw"] is False
    assert encoded["active_player"] == "bob"  # flipped after every move, as the original


def test_all_sub_boards_decided_without_a_line_is_a_draw_even_if_the_last_was_won() -> None:
    # The original only looks for a draw when a sub-board is drawn: here the last one is
    # won, and the original would never end the game (UTTT.md, deliberate differences).
    state = decoded(NEAR_DRAW)
    assert uttt.forced_board(state) is None
    assert {(m.sub_x, m.sub_y) for m in uttt.legal_moves(state)} == {(0, 2)}
    state = uttt.apply(state, Move(B, 0, 2, 2, 0))
    assert state.boards == (1, 2, 1, 1, 2, 2, 2, 1, 1)
    assert uttt.outcome(state) == Outcome(None, Ending.DRAW)
    encoded = uttt.encode_match_state(state, "alice", "bob")
    assert (encoded["game_over"], encoded["player_won"], encoded["is_draw"]) == (True, None, True)
    assert uttt.decode_match_state(encoded).state == state


def test_a_draw_can_also_come_from_a_last_drawn_sub_board() -> None:
    data = copy.deepcopy(NEAR_DRAW)
    # Make (0,2) a board that B fills without a line: B A B / B A A / A B B.
    for y, row in enumerate(["BAB", "BAA", "AB."]):
        for x, char in enumerate(row):
            data["complete_field"][6 + y][x] = ".AB".index(char)
    state = decoded(data)
    state = uttt.apply(state, Move(B, 0, 2, 2, 2))
    assert state.boards[6] == uttt.DRAWN
    assert uttt.outcome(state) == Outcome(None, Ending.DRAW)


def test_forfeit_ends_the_game_for_the_other_player() -> None:
    state = uttt.apply(uttt.new_game(), Move(A, 1, 1, 1, 1))
    ended = uttt.forfeit(state, A)
    assert uttt.outcome(ended) == Outcome(B, Ending.FORFEIT)
    assert ended.cells == state.cells and ended.to_move is state.to_move
    assert uttt.legal_moves(ended) == []
    with pytest.raises(IllegalMove, match="over"):
        uttt.forfeit(ended, B)
    encoded = uttt.encode_match_state(ended, "alice", "bob")
    assert (encoded["game_over"], encoded["player_won"], encoded["is_draw"]) == (
        True,
        "bob",
        False,
    )
    assert uttt.decode_match_state(encoded) == uttt.DecodedMatch(ended, "alice", "bob")


def test_replay_names_the_first_illegal_move() -> None:
    with pytest.raises(IllegalMove, match=r"^move 2: it is not your turn"):
        uttt.replay([Move(A, 0, 0, 0, 0), Move(A, 0, 0, 1, 1)])


# -- match_state JSON


def test_encoding_of_the_start_and_of_one_move() -> None:
    start = uttt.encode_match_state(uttt.new_game(), "alice", "bob")
    assert start == {
        "complete_field": [[0] * 9 for _ in range(9)],
        "global_field": [[0] * 3 for _ in range(3)],
        "last_move": None,
        "game_over": False,
        "player_won": None,
        "active_player": "alice",
        "player_a": "alice",
        "player_b": "bob",
        "is_draw": False,
    }
    state = uttt.apply(uttt.new_game(), Move(A, 2, 0, 1, 2))
    encoded = uttt.encode_match_state(state, "alice", "bob")
    # complete_field[sub_y * 3 + y][sub_x * 3 + x]
    assert encoded["complete_field"][2][7] == 1
    assert sum(map(sum, encoded["complete_field"])) == 1
    assert encoded["last_move"] == {"sub_x": 2, "sub_y": 0, "x": 1, "y": 2}
    assert encoded["active_player"] == "bob"
    assert json.loads(json.dumps(encoded)) == encoded


@pytest.mark.parametrize(("player_a", "player_b"), [("ann", "ann"), ("", "ben"), ("ann", "")])
def test_encoding_needs_two_different_names(player_a: str, player_b: str) -> None:
    with pytest.raises(ValueError, match="two different, non-empty names"):
        uttt.encode_match_state(uttt.new_game(), player_a, player_b)


def test_global_field_is_indexed_sub_y_then_sub_x() -> None:
    state = decoded(NEAR_WIN)
    encoded = uttt.encode_match_state(state, "alice", "bob")
    assert encoded["global_field"] == [[1, 1, 0], [0, 0, 0], [0, 0, 0]]
    assert encoded == NEAR_WIN


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (_drop("is_draw"), "has no 'is_draw'"),
        (_set(("player_b",), "alice"), "same name"),
        (_set(("player_a",), ""), "player_a must be a non-empty string"),
        (_set(("complete_field",), [[0] * 9] * 8), "list of 9 rows"),
        (_set(("complete_field", 4), [0] * 8), r"complete_field\[4\] must be a list of 9"),
        (_set(("complete_field", 8, 8), 3), r"complete_field\[8\]\[8\] must be one of"),
        (_set(("complete_field", 8, 8), True), r"complete_field\[8\]\[8\] must be one of"),
        (_set(("complete_field", 8, 8), "1"), r"complete_field\[8\]\[8\] must be one of"),
        (_set(("global_field", 2, 2), 3), "does not match"),
        (_set(("global_field", 2, 2), 4), r"global_field\[2\]\[2\] must be one of"),
        (_set(("complete_field", 8, 8), 2), "player_a has 9 marks and player_b 10"),
        (_set(("active_player",), "bob"), "active_player must be 'alice'"),
        (_set(("last_move",), None), "null exactly when the board is empty"),
        (_set(("last_move",), lm(0, 0, 0, 0)), "not on a mark of the player who moved last"),
        (_set(("last_move",), {"sub_x": 0, "sub_y": 2, "x": 2}), r"last_move\.y must be"),
        (_set(("last_move",), [0, 2, 2, 0]), "null or an object"),
        (_set(("game_over",), True), "must name a winner"),
        (_set(("is_draw",), 0), "must be booleans"),
        (_set(("player_won",), "carol"), "null or the name of a player"),
        (_set(("player_won",), "alice"), "do not match the board"),
        (_set(("complete_field", 0, 3), 2), "does not match"),
        (_set(("complete_field",), field({(0, 0): "AAA/BBB/A.."})), "lines of both players"),
    ],
)
def test_decoding_refuses_inconsistent_match_states(
    mutate: Callable[[dict[str, Any]], None], problem: str
) -> None:
    data = copy.deepcopy(NEAR_WIN)
    mutate(data)
    with pytest.raises(InvalidEncoding, match=problem):
        uttt.decode_match_state(data)


def test_decoding_refuses_a_non_object_and_a_line_not_made_by_the_last_move() -> None:
    with pytest.raises(InvalidEncoding, match="must be an object"):
        uttt.decode_match_state([])
    state = uttt.apply(decoded(NEAR_WIN), Move(A, 2, 0, 2, 0))
    data = uttt.encode_match_state(state, "alice", "bob")
    data["last_move"] = lm(1, 1, 2, 0)  # an A mark too, but outside the winning line
    with pytest.raises(InvalidEncoding, match="not by the last move"):
        uttt.decode_match_state(data)
    data["last_move"] = lm(2, 0, 2, 0)
    data["game_over"] = False
    with pytest.raises(InvalidEncoding, match="do not match the board"):
        uttt.decode_match_state(data)


def test_decoding_ignores_unknown_keys() -> None:
    data = copy.deepcopy(NEAR_WIN) | {"extra": 1}
    assert uttt.decode_match_state(data).state == decoded(NEAR_WIN)


# -- properties


def random_play(rng: random.Random, limit: int = 81) -> tuple[uttt.State, list[Move]]:
    state, moves = uttt.new_game(), list[Move]()
    while uttt.outcome(state) is None and len(moves) < limit:
        move = rng.choice(uttt.legal_moves(state))
        moves.append(move)
        state = uttt.apply(state, move)
    return state, moves


@FAST
@given(SEEDS)
def test_random_legal_play_ends_replays_and_round_trips(seed: int) -> None:
    rng = random.Random(seed)
    state, moves = random_play(rng)
    result = uttt.outcome(state)
    assert result is not None and len(moves) <= 81
    if result.winner is None:
        assert 0 not in state.boards
    else:
        assert result.winner is moves[-1].player
    assert uttt.replay(moves) == state
    for position in (uttt.replay(moves[: rng.randrange(len(moves))]), state):
        encoded = json.loads(json.dumps(uttt.encode_match_state(position, "ann", "ben")))
        assert uttt.decode_match_state(encoded) == uttt.DecodedMatch(position, "ann", "ben")


@FAST
@given(SEEDS, st.sampled_from(Player))
def test_forfeits_round_trip(seed: int, loser: Player) -> None:
    rng = random.Random(seed)
    state, _ = random_play(rng, limit=rng.randrange(60))
    if uttt.outcome(state) is not None:
        return
    ended = uttt.forfeit(state, loser)
    decoded_match = uttt.decode_match_state(uttt.encode_match_state(ended, "ann", "ben"))
    assert decoded_match.state == ended


@FAST
@given(SEEDS, st.data())
def test_exactly_the_legal_moves_are_accepted(seed: int, data: st.DataObject) -> None:
    state, _ = random_play(random.Random(seed), limit=data.draw(st.integers(0, 81)))
    legal = set(uttt.legal_moves(state))
    coord = st.integers(-1, 3)
    for _ in range(30):
        move = Move(
            data.draw(st.sampled_from(Player)),
            data.draw(coord),
            data.draw(coord),
            data.draw(coord),
            data.draw(coord),
        )
        if move in legal:
            assert uttt.apply(state, move).last_move == move
        else:
            with pytest.raises(IllegalMove):
                uttt.apply(state, move)
    for move in legal:
        uttt.apply(state, move)
