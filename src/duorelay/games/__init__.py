"""Sans-IO rules of the server-authoritative games: no trio, no I/O, no clocks.

One module per game (docs/architecture.md, "Layers"): :mod:`.tictactoe`
(k in a row on a w x h board, docs/xogame.md), :mod:`.uttt` (ultimate tic-tac-toe,
docs/uttt.md) and :mod:`.santorini` (docs/santorini.md). Every module keeps the same
contract, so the referee can drive any of them the same way:

- **State** is an immutable, hashable value (a frozen dataclass of tuples). Two
  states are equal exactly when they are the same position with the same player
  on turn and the same result; nothing in a state is ever mutated.
- ``new_game(...) -> State`` builds the start position.
- ``legal_moves(state) -> list[Move]`` lists every move the player on turn may
  make, in a fixed order; it is empty once the game is over.
- ``apply(state, move) -> State`` returns the position after ``move``. It
  accepts exactly the moves ``legal_moves`` lists and raises
  :class:`IllegalMove` for any other, with a human-readable ``reason`` (safe to
  send to the player) naming the rule that was broken. The old state is
  unchanged either way.
- ``outcome(state) -> Outcome | None`` is ``None`` while the game goes on, else
  the winner (``None`` for a draw) and how the game ended.
- ``replay(..., moves) -> State`` rebuilds a state from the game's set-up and
  its moves (the event log is the truth: docs/architecture.md, "One match");
  it raises :class:`IllegalMove` ("move N: reason") at the first move the rules
  refuse. A state replayed from a game's moves equals the live one.

Encodings of a state to the JSON shape of a wire contract, and back, live with
the game (UTTT's ``match_state``, Santorini's board); decoding validates and
raises :class:`InvalidEncoding` with a reason.

What the games share lives in :mod:`.base` and is re-exported here: the seats
(:class:`Player`), :class:`Outcome` and :class:`Ending`, the two exceptions,
and the k-in-a-row line finder used by both tic-tac-toe variants.
"""

from __future__ import annotations

from duorelay.games.base import Ending, IllegalMove, InvalidEncoding, Outcome, Player

__all__ = ["Ending", "IllegalMove", "InvalidEncoding", "Outcome", "Player"]
