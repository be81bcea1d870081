"""The Santorini remote protocol, sans-IO: the JSON value stream and the messages.

The wire (docs/santorini.md section 1) is TCP with no framing: each direction
is a stream of JSON values, split across reads or several to a read, with
whitespace between them. Two parts, neither of which does I/O:

- the stream: :class:`JsonStream`, :func:`loads` and :func:`encode`, from
  :mod:`duorelay.protocols.json_stream` (re-exported here with its errors);
- the message shapes of section 3, both ways: what a client sends (its name,
  a place, an action) decoded into :mod:`duorelay.games.santorini` moves, with
  :class:`BadMessage` for a wrong shape; what the server sends (playing-as,
  other, placement request, board, results) encoded; and, for clients such as
  the bots, :func:`classify` for the server's messages.

Errors: every error here is a :class:`SantoriniError` (a ``ValueError``) with
a ``reason`` a person can read; none is raised for a well-formed message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from duorelay.games import santorini as rules
from duorelay.games.base import InvalidEncoding
from duorelay.protocols.json_stream import (
    END,
    NEED_DATA,
    JsonStream,
    NotJson,
    StreamEnd,
    StreamError,
    ValueTooLarge,
    encode,
    loads,
)

__all__ = [
    "END",
    "IRREGULAR",
    "NEED_DATA",
    "BadMessage",
    "JsonStream",
    "NotJson",
    "Other",
    "PlacementRequest",
    "PlayingAs",
    "Result",
    "Results",
    "SantoriniError",
    "ServerMessage",
    "StreamEnd",
    "TakeTurn",
    "ValueTooLarge",
    "classify",
    "decode_action",
    "decode_name",
    "decode_place",
    "encode",
    "encode_action",
    "encode_result",
    "loads",
    "playing_as",
    "results_message",
]

NAME: Final = re.compile(r"[a-z]+")
"""A player's name (docs/santorini.md section 2): ``^[a-z]+$``."""

IRREGULAR: Final = "irregular"
"""The third element of a result whose loser broke the rules or the protocol."""

SantoriniError = StreamError
"""Bad input on the Santorini wire, the stream's errors (:class:`NotJson`,
:class:`ValueTooLarge`) and :class:`BadMessage` alike; ``reason`` says what,
in words a player can read."""


class BadMessage(SantoriniError):
    """A JSON value that is not the message expected here (docs/santorini.md section 3)."""


# -- client -> server (section 2 and 3) --------------------------------------------------


def decode_name(value: object) -> str:
    """A registration: a JSON string matching ``^[a-z]+$`` (section 2).

    Raises :class:`BadMessage` for anything else (the connection is closed)."""
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise BadMessage(f"a name is a JSON string of letters a-z, not {_show(value)}")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode_place(value: object) -> rules.Place:
    """A placement reply ``[x, y]`` (two integers; the rules judge the range)."""
    if isinstance(value, list) and len(value) == 2 and all(_is_int(n) for n in value):
        return rules.Place(value[0], value[1])
    raise BadMessage(f"a place is [x, y], two integers, not {_show(value)}")


def decode_action(value: object) -> rules.Action:
    """A take-turn reply (section 3, Action): ``Name`` (give up), ``[Worker, EW, NS]``
    (a winning move) or ``[Worker, EW, NS, EW, NS]`` (move, then build).

    Whether the name is the player's own and the move legal is for the rules
    (:func:`duorelay.games.santorini.apply`); here only the shape.
    """
    if isinstance(value, str):
        return rules.GiveUp(value)
    if isinstance(value, list) and len(value) in (3, 5) and isinstance(value[0], str):
        try:
            steps = [
                (rules.EAST_WEST[ew], rules.NORTH_SOUTH[ns])
                for ew, ns in zip(value[1::2], value[2::2], strict=True)
                if isinstance(ew, str) and isinstance(ns, str)
            ]
        except KeyError:
            steps = []
        if len(steps) == len(value) // 2:
            (dx, dy), *build = steps
            if not build:
                return rules.WinningMove(value[0], dx, dy)
            return rules.MoveBuild(value[0], dx, dy, *build[0])
    raise BadMessage(
        "an action is your name, [Worker, EW, NS] or [Worker, EW, NS, EW, NS] with EW one of "
        f"EAST, WEST, PUT and NS one of NORTH, SOUTH, PUT; not {_show(value)}"
    )


_EW_NAMES = {dx: name for name, dx in rules.EAST_WEST.items()}
_NS_NAMES = {dy: name for name, dy in rules.NORTH_SOUTH.items()}


def encode_action(action: rules.Action) -> str | list[str]:
    """The wire form of ``action`` (the inverse of :func:`decode_action`)."""
    if isinstance(action, rules.GiveUp):
        return action.name
    move = [action.worker, _EW_NAMES[action.dx], _NS_NAMES[action.dy]]
    if isinstance(action, rules.MoveBuild):
        move += [_EW_NAMES[action.build_dx], _NS_NAMES[action.build_dy]]
    return move


# -- server -> client (section 3) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """One line of the Results: ``winner`` beat ``loser``; ``irregular`` when the
    loser broke the rules or the protocol (docs/santorini.md sections 3 and 5)."""

    winner: str
    loser: str
    irregular: bool = False


def encode_result(result: Result) -> list[str]:
    """``[winner, loser]`` or ``[winner, loser, "irregular"]``."""
    line = [result.winner, result.loser]
    return [*line, IRREGULAR] if result.irregular else line


def playing_as(name: str) -> list[str]:
    """The message telling a renamed player its name: ``["playing-as", name]``."""
    return ["playing-as", name]


@dataclass(frozen=True, slots=True)
class PlayingAs:
    """``["playing-as", Name]``: from now on this client is ``name``."""

    name: str


@dataclass(frozen=True, slots=True)
class Other:
    """``Name``: the opponent of the next best-of-3 series."""

    name: str


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """``[[Worker, x, y], ...]``: place a worker; ``workers`` are those placed so far."""

    workers: tuple[tuple[str, rules.Place], ...]


@dataclass(frozen=True, slots=True)
class TakeTurn:
    """``Board``: your turn on this board."""

    board: rules.Board


@dataclass(frozen=True, slots=True)
class Results:
    """The end of the tournament: every result, in schedule order."""

    results: tuple[Result, ...]


ServerMessage: TypeAlias = PlayingAs | Other | PlacementRequest | TakeTurn | Results


def classify(value: object) -> ServerMessage:
    """What a server's message is, tried in the order of section 3: playing-as,
    string, placement request, board, results (``[]`` is a placement request).

    Raises :class:`BadMessage` for anything else.
    """
    if (
        isinstance(value, list)
        and len(value) == 2
        and value[0] == "playing-as"
        and isinstance(value[1], str)
    ):
        return PlayingAs(value[1])
    if isinstance(value, str):
        return Other(value)
    if isinstance(value, list):
        if len(value) <= 4 and all(_is_placed_worker(entry) for entry in value):
            return PlacementRequest(tuple((w, rules.Place(x, y)) for w, x, y in value))
        try:
            return TakeTurn(rules.decode_board(value))
        except InvalidEncoding:
            pass
        if all(_is_result(entry) for entry in value):
            return Results(tuple(Result(e[0], e[1], len(e) == 3) for e in value))
    raise BadMessage(f"not a message of the Santorini protocol: {_show(value)}")


def _is_placed_worker(entry: object) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == 3
        and isinstance(entry[0], str)
        and _is_int(entry[1])
        and _is_int(entry[2])
    )


def _is_result(entry: object) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) in (2, 3)
        and all(isinstance(name, str) for name in entry)
        and (len(entry) == 2 or entry[2] == IRREGULAR)
    )


def _show(value: object, limit: int = 60) -> str:
    """A short JSON rendering of ``value`` for an error's reason."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def results_message(results: Sequence[Result]) -> list[list[str]]:
    """The Results message: each result encoded, in the order given."""
    return [encode_result(result) for result in results]
