"""A TCP connection as a stream of JSON values: the transport of the Santorini server.

docs/santorini.md section 1: each direction is a stream of JSON values with
no framing. :class:`TcpTransport` gives a :class:`trio.SocketStream` the face
of :class:`~duorelay.transport.Transport`, so a
:class:`~duorelay.core.session.Session` serves it with the same tasks, bounded
outbox and endings as a websocket. A frame, here, is the text of one JSON
value: :meth:`TcpTransport.receive` returns each value's text as the client
sent it (the protocol's handler decodes it with
:func:`duorelay.protocols.json_stream.loads`), :meth:`TcpTransport.send` writes
a frame's text (the handler's frames already end with "\\n").

Bad input ends the connection: bytes that are no JSON value, or a value over
``max_value`` bytes, raise :class:`~duorelay.protocols.ProtocolError` (400 or
1009 in the session's log; TCP has no close codes to send), and the session
then ends our side of the stream. Memory: the values not yet taken are held
in one buffer of at most ``max_value`` bytes plus one read of ``read_size``.
"""

from __future__ import annotations

import contextlib

import trio

from duorelay.protocols import CloseCode, ProtocolError
from duorelay.protocols.json_stream import JsonStream, NotJson, StreamEnd, ValueTooLarge
from duorelay.transport import Disconnected, Frame

READ_SIZE = 4096
"""Bytes asked of the socket per read."""


class TcpTransport:
    """One accepted TCP connection, read as JSON values and written as text.

    It owns no task and never closes the socket: ``trio.serve_tcp`` closes
    each accepted stream when its handler returns.
    """

    def __init__(
        self, stream: trio.SocketStream, max_value: int, read_size: int = READ_SIZE
    ) -> None:
        self.stream = stream
        self.read_size = read_size
        self._values = JsonStream(max_value)
        try:
            host, port, *_ = stream.socket.getpeername()
            self._client = f"{host}:{port}"
        except OSError:  # the client already reset the connection
            self._client = "?"

    @property
    def client(self) -> str:
        """The client's address as ``host:port``, for logs."""
        return self._client

    async def accept(self) -> bool:
        """Nothing to do for TCP: the connection was accepted by the listener."""
        return True

    async def receive(self) -> Frame:
        """The text of the client's next JSON value, in the order sent.

        Raises :class:`Disconnected` when the client closed its side (1000) or
        reset the connection (1006), once every complete value before that
        was returned; :class:`ProtocolError` with 400 for bytes that are not a
        JSON value (or a stream that ends inside one) and 1009 for a value over
        ``max_value`` bytes.
        """
        while True:
            try:
                text = self._values.next_text()
            except ValueTooLarge as error:
                raise ProtocolError(CloseCode.MESSAGE_TOO_BIG, error.reason) from None
            except NotJson as error:
                raise ProtocolError(CloseCode.BAD_REQUEST, error.reason) from None
            if text is StreamEnd.END:
                raise Disconnected(CloseCode.NORMAL)
            if isinstance(text, str):
                return text
            try:
                data = await self.stream.receive_some(self.read_size)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise Disconnected(1006) from None
            self._values.receive_data(data)

    async def send(self, frame: Frame) -> None:
        """Write ``frame`` (text as UTF-8). A client that is gone is not an error
        here: the bytes are dropped, and the reader learns of it from the socket."""
        data = frame.encode() if isinstance(frame, str) else frame
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.stream.send_all(data)

    async def close(self, code: int, reason: str) -> None:
        """End our side of the stream (a FIN after everything sent); TCP carries no
        ``code`` or ``reason``: they are for the session's log line."""
        gone = (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError)
        with contextlib.suppress(*gone):
            await self.stream.send_eof()

    async def drain(self, quiet: float) -> None:
        """Read and drop bytes until the client closes its side, resets, or sends
        nothing for ``quiet`` seconds (each read restarts the period)."""
        while True:
            with trio.move_on_after(quiet) as silence:
                try:
                    if not await self.stream.receive_some(self.read_size):
                        return
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return
            if silence.cancelled_caught:
                return
