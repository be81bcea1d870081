"""The ASGI websocket adapter: one connection's frames as Hypercorn hands them over.

We use the ASGI websocket interface directly instead of Quart's websocket
wrapper: Quart's wrapper cancels the handler on disconnect (quart-trio 0.12),
or buffers without bound and raises ``ClientDisconnectedError`` before the
cancel (quart-trio 0.13, Quart 0.23), and turns an empty binary frame into
``None`` (both). Reading ASGI events ourselves gives one ordered stream, the
same on every version: every frame the client sent, then the disconnect, with
Hypercorn's bounded queue (``max_app_queue_size``) as the only buffer.
"""

from __future__ import annotations

import trio
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    WebsocketAcceptEvent,
    WebsocketCloseEvent,
    WebsocketScope,
    WebsocketSendEvent,
)

from duorelay.protocols import CloseCode, clip_reason
from duorelay.transport import Disconnected, Frame


class WebSocket:
    """The ASGI websocket of one connection: a thin, typed face over ASGI events.

    It owns no task and no buffer. Hypercorn queues at most
    ``max_app_queue_size`` (default 10) received frames for it, and stops
    reading the socket while that queue is full: that is how a sender is
    back-pressured (docs/protocols.md section 1, rule 9).
    """

    def __init__(
        self, scope: WebsocketScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send

    @property
    def client(self) -> str:
        """The client's address as ``host:port``, for logs."""
        client = self.scope.get("client")
        return f"{client[0]}:{client[1]}" if client else "?"

    async def accept(self) -> bool:
        """Complete the websocket handshake; False if the client left before it."""
        event = await self._receive()
        if event["type"] != "websocket.connect":
            return False
        accept: WebsocketAcceptEvent = {
            "type": "websocket.accept",
            "subprotocol": None,
            "headers": [],
        }
        await self._send(accept)
        return True

    async def receive(self) -> Frame:
        """The client's next frame, in the order sent.

        Raises :class:`Disconnected` once the client is gone; every frame it
        sent before that has been returned first.
        """
        event = await self._receive()
        if event["type"] == "websocket.receive":
            data = event.get("bytes")
            if data is not None:
                return data
            text = event.get("text")
            if text is not None:
                return text
        elif event["type"] == "websocket.disconnect":
            raise Disconnected(event.get("code", CloseCode.NORMAL))
        raise RuntimeError(f"unexpected ASGI event {event['type']!r}")

    async def send(self, frame: Frame) -> None:
        """Send ``frame`` as a text (``str``) or binary (``bytes``) frame.

        Hypercorn writes it with one ``send_all`` in a shielded scope; once the
        client is gone it returns at once *without a checkpoint*, so a loop
        that calls this must checkpoint elsewhere (the writer does, on every
        outbox receive).
        """
        message: WebsocketSendEvent
        if isinstance(frame, str):
            message = {"type": "websocket.send", "bytes": None, "text": frame}
        else:
            message = {"type": "websocket.send", "bytes": frame, "text": None}
        await self._send(message)

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame with ``code`` and ``reason`` (cut to 123 bytes)."""
        close: WebsocketCloseEvent = {
            "type": "websocket.close",
            "code": code,
            "reason": clip_reason(reason),
        }
        await self._send(close)

    async def drain(self, quiet: float) -> None:
        """Read and drop frames until the client is gone or silent for ``quiet`` seconds.

        Hypercorn's socket reader blocks, for good, on its full queue to an app
        that no longer reads, even after the socket is closed; so the app must
        not stop reading while the client still sends. Each frame restarts the
        ``quiet`` period, so a client that keeps sending keeps being read (it
        costs reading, not memory).
        """
        while True:
            with trio.move_on_after(quiet) as silence:
                try:
                    await self.receive()
                except Disconnected:
                    return
            if silence.cancelled_caught:
                return
