"""The Santorini remote protocol, sans-IO: the JSON value stream and the messages.

The wire (docs/santorini.md section 1) is TCP with no framing: each direction
is a stream of JSON values, split across reads or several to a read, with
whitespace between them. Two parts, neither of which does I/O:

- :class:`JsonStream` finds the values in a byte stream, incrementally and
  within a bound: feed it bytes with :meth:`JsonStream.receive_data`, take
  complete values with :meth:`JsonStream.next_text` (their text) or
  :meth:`JsonStream.next_value` (decoded). Each byte is scanned once, so a
  large value arriving one byte at a time costs linear time; a value over
  ``max_value`` bytes raises :class:`ValueTooLarge` as soon as it is known to
  be, so the buffer never holds more than ``max_value`` bytes plus one read.
  :func:`encode` writes a value followed by "\\n", as the reference does.
- The message shapes of section 3, both ways: what a client sends (its name,
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
from enum import Enum
from typing import Final, TypeAlias

from duorelay.games import santorini as rules
from duorelay.games.base import InvalidEncoding

__all__ = [
    "IRREGULAR",
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

MAX_DEPTH: Final = 16
"""Deepest nesting of lists and objects accepted in one value (a board is 2 deep):
a bound on the decoder's recursion, far below Python's recursion limit."""


class SantoriniError(ValueError):
    """Bad input on the Santorini wire; ``reason`` says what, in words a player can read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotJson(SantoriniError):
    """The bytes are not a stream of JSON values (or not UTF-8, or nested too deeply)."""


class ValueTooLarge(SantoriniError):
    """One JSON value is longer than the stream's ``max_value`` bytes."""


class BadMessage(SantoriniError):
    """A JSON value that is not the message expected here (docs/santorini.md section 3)."""


class StreamEnd(Enum):
    """What :meth:`JsonStream.next_text` returns when it has no complete value."""

    NEED_DATA = "need data"
    """Nothing complete yet: feed more bytes."""
    END = "end"
    """The stream ended (``receive_data(b"")``) and every value was taken."""


NEED_DATA: Final = StreamEnd.NEED_DATA
END: Final = StreamEnd.END

_WHITESPACE = b" \t\n\r"
_NOT_WHITESPACE = re.compile(rb"[^ \t\n\r]")
_IN_STRING = re.compile(rb'["\\]')
_IN_CONTAINER = re.compile(rb'["\[\]{}]')
_SCALAR_START = frozenset(b"-0123456789tfn")
_AFTER_SCALAR = re.compile(rb"[^A-Za-z0-9+\-.]")


class _Kind(Enum):
    CONTAINER = "container"
    STRING = "string"
    SCALAR = "scalar"


class JsonStream:
    """The JSON values in a byte stream, one at a time (docs/santorini.md section 1).

    ``max_value`` bounds the bytes of one value (whitespace between values is
    dropped and not counted). The stream finds where each value ends by
    scanning its bytes once, keeping only the state needed to resume (inside
    a string or not, the nesting depth); UTF-8 sequences split across reads
    are fine, since a value is decoded only once it is complete. A number or
    literal at the top level ends at the first byte that cannot continue it,
    or at the end of the stream.

    After any error the stream is broken: the connection it belongs to ends.
    """

    def __init__(self, max_value: int) -> None:
        self.max_value = max_value
        self._buffer = bytearray()
        self._kind: _Kind | None = None
        self._scanned = 0
        self._depth = 0
        self._in_string = False
        self._eof = False

    @property
    def buffered(self) -> int:
        """Bytes held: at most ``max_value`` plus the last chunk given."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the wire; ``b""`` means the peer closed its side."""
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_value(self) -> object:
        """The next complete value, decoded, or :data:`NEED_DATA` / :data:`END`.

        Raises :class:`NotJson` or :class:`ValueTooLarge` as :meth:`next_text`
        and :func:`loads` do.
        """
        text = self.next_text()
        return text if isinstance(text, StreamEnd) else loads(text)

    def next_text(self) -> str | StreamEnd:
        """The text of the next complete value (not yet checked to be JSON), or
        :data:`NEED_DATA` / :data:`END`.

        Raises :class:`ValueTooLarge` for a value over ``max_value`` bytes and
        :class:`NotJson` for a byte that cannot start a value, nesting deeper
        than :data:`MAX_DEPTH`, text that is not UTF-8, or a stream that ends
        inside a value. :func:`loads` checks the rest of JSON's grammar.
        """
        if self._kind is None and not self._start():
            return END if self._eof else NEED_DATA
        end = self._scan()
        if end is None:
            if len(self._buffer) > self.max_value:
                raise ValueTooLarge(f"a value is longer than {self.max_value} bytes")
            if not self._eof:
                return NEED_DATA
            if self._kind is not _Kind.SCALAR:
                raise NotJson("the stream ended inside a value")
            end = len(self._buffer)
        if end > self.max_value:
            raise ValueTooLarge(f"a value is longer than {self.max_value} bytes")
        raw = bytes(self._buffer[:end])
        del self._buffer[:end]
        self._kind, self._scanned, self._depth, self._in_string = None, 0, 0, False
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise NotJson("a value is not valid UTF-8") from None

    def _start(self) -> bool:
        """Drop whitespace before the next value and look at its first byte."""
        found = _NOT_WHITESPACE.search(self._buffer)
        if found is None:
            self._buffer.clear()
            return False
        del self._buffer[: found.start()]
        first = self._buffer[0]
        if first in b"[{":
            self._kind, self._depth = _Kind.CONTAINER, 1
        elif first == ord('"'):
            self._kind, self._in_string = _Kind.STRING, True
        elif first in _SCALAR_START:
            self._kind = _Kind.SCALAR
        else:
            raise NotJson(f"a JSON value cannot start with {bytes([first])!r}")
        self._scanned = 1
        return True

    def _scan(self) -> int | None:
        """Scan the unscanned bytes; the end of the value if it is complete."""
        buffer, position = self._buffer, self._scanned
        if self._kind is _Kind.SCALAR:
            found = _AFTER_SCALAR.search(buffer, position)
            self._scanned = len(buffer)
            return None if found is None else found.start()
        while True:
            pattern = _IN_STRING if self._in_string else _IN_CONTAINER
            found = pattern.search(buffer, position)
            if found is None:
                self._scanned = len(buffer)
                return None
            position = found.end()
            byte = buffer[found.start()]
            if self._in_string:
                if byte == ord("\\"):
                    if position == len(buffer):  # the escaped byte is still to come
                        self._scanned = found.start()
                        return None
                    position += 1
                    continue
                self._in_string = False
                if self._kind is _Kind.STRING:
                    return position
            elif byte == ord('"'):
                self._in_string = True
            elif byte in b"[{":
                self._depth += 1
                if self._depth > MAX_DEPTH:
                    raise NotJson(f"a value nests deeper than {MAX_DEPTH} levels")
            else:
                self._depth -= 1
                if self._depth == 0:
                    return position


def _refuse_constant(name: str) -> object:
    raise NotJson(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
"""One decoder for every value (``json.loads`` with an argument builds a new one
per call)."""


def loads(text: str) -> object:
    """One JSON value from ``text``; :class:`NotJson` if it is not exactly one.

    Refuses ``NaN`` and ``Infinity`` (Python's extensions), integers of more
    digits than Python converts (``ValueError``) and nesting beyond the
    recursion limit.
    """
    try:
        return _DECODER.decode(text)
    except NotJson:
        raise
    except (ValueError, RecursionError) as error:
        raise NotJson(f"not JSON: {error}") from None


_ENCODER = json.JSONEncoder(separators=(",", ":"))
"""One encoder for every message (``json.dumps`` with an argument builds a new one
per call: 1.2 us of the 4.9 us of encoding a board)."""


def encode(value: object) -> str:
    """``value`` as compact JSON text followed by "\\n" (docs/santorini.md section 1)."""
    return _ENCODER.encode(value) + "\n"


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
