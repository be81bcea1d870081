"""A stream of JSON values without framing, sans-IO (docs/santorini.md section 1).

The Santorini wire (:mod:`duorelay.protocols.santorini`) is TCP with no
framing: each direction is a stream of JSON values, split across reads or
several to a read, with whitespace between them. :class:`JsonStream` finds the
values in such a byte stream, incrementally and within a bound: feed it bytes
with :meth:`JsonStream.receive_data`, take complete values with
:meth:`JsonStream.next_text` (their text) or :meth:`JsonStream.next_value`
(decoded). Each byte is scanned once, so a large value arriving one byte at a
time costs linear time; a value over ``max_value`` bytes raises
:class:`ValueTooLarge` as soon as it is known to be, so the buffer never
holds more than ``max_value`` bytes plus one read. :func:`encode` writes a
value followed by "\\n", as the reference does.

Errors: every error here is a :class:`StreamError` (a ``ValueError``) with a
``reason`` a person can read.
"""

from __future__ import annotations

import json
import re
from enum import Enum
from typing import Final

MAX_DEPTH: Final = 16
"""Deepest nesting of lists and objects accepted in one value (a board is 2 deep):
a bound on the decoder's recursion, far below Python's recursion limit."""


class StreamError(ValueError):
    """Bad input on a JSON value stream; ``reason`` says what, in words a person can read."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotJson(StreamError):
    """The bytes are not a stream of JSON values (or not UTF-8, or nested too deeply)."""


class ValueTooLarge(StreamError):
    """One JSON value is longer than the stream's ``max_value`` bytes."""


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
