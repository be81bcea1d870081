"""Patches over Hypercorn's websocket and TCP code, until Hypercorn fixes them.

duorelay runs on Hypercorn's trio worker. Hypercorn 0.18.0 (with wsproto 1.3.2 and
h11 0.16) has six holes that matter to a relay open to the Internet. :func:`install`
patches them once per process; :func:`duorelay.app.create_app` calls it. Each patch
replaces one function of Hypercorn's (or of wsproto's) or wraps it. Before patching
anything, :func:`install` checks that every one of those functions is exactly the
code the patches were written against (a SHA-256 of its source). After an upgrade
that changed one of them, the app refuses to start with :class:`ShimError`, naming
the function, instead of running a patch over code it no longer understands. Then
look at the hole again in the new code: drop the patch if upstream fixed it, or
update the patch and its fingerprint (:data:`EXPECTED`).

Hypercorn's main branch was still at 0.18.0 when these were written (November 2026),
with none of the holes fixed. The Hypercorn code each patch replaces, and the fix
it waits for:

1. **An oversized frame is buffered without limit.** Over
   ``websocket_max_message_size`` (text counted in characters), Hypercorn sends 1009
   but keeps the connection. It also goes on appending what follows to its buffer:
   ``WebsocketBuffer.extend`` writes first and compares after. Measured: 400 MiB
   streamed after one frame header took the server to 464 MiB RSS.
   *Replaced:* ``hypercorn.protocol.ws_stream.WebsocketBuffer.extend`` (wrapped: it
   refuses the data that would pass the limit before writing it) and
   ``WSStream._handle_events`` (a copy: after the 1009 it empties the buffer and
   ends the stream, which closes the TCP connection).
   *Upstream:* no Hypercorn issue or fix found. It needs both changes in
   ``ws_stream.py``. uvicorn's copy of this buffer (Kludex/uvicorn#2915) tears the
   connection down after the 1009.
2. **Invalid data is dropped without a close frame.** wsproto reports a frame it
   cannot parse as a ``CloseConnection`` event that carries the code to send (1007
   for invalid UTF-8 in a text message, 1002 for a protocol error), and leaves its
   state OPEN. Hypercorn's ``_handle_events`` answers a close only in state
   REMOTE_CLOSING, so it drops the TCP connection with no close frame. RFC 6455
   sections 7.1.7 and 8.1 ask for the close frame first.
   *Replaced:* ``WSStream._handle_events`` (the copy of 1): in state OPEN it sends
   a close frame with wsproto's code and reason, then ends the stream.
   *Upstream:* no issue or fix found. pgjones/hypercorn#127 (open) is about close
   codes in the same branch of ``_handle_events``.
3. **A finished websocket keeps its socket for up to a ping interval.**
   ``WSStream._send_pings`` sleeps ``websocket_ping_interval`` seconds between two
   looks at ``closed``. The connection's task group waits for that task, and the
   socket is closed only after the task group ends. A client that leaves without a
   close handshake (FIN, reset, ``read_timeout``) therefore holds a socket (an fd)
   for up to one interval.
   *Replaced:* ``WSStream._send_pings`` (wrapped: on the trio worker it waits for
   the stream to close, for at most the interval, instead of sleeping). To let it
   wait, ``WSStream.closed`` becomes a property whose setter sets a ``trio.Event``.
   *Upstream:* no issue or fix found. The ping loop has to wake on close: an event,
   or a cancel of the ping task from ``handle(StreamClosed)``.
4. **A response saying ``Connection: close`` leaves the socket open.** An HTTP
   response is finished from the app's task (``app_send`` -> ``StreamClosed`` ->
   ``Closed`` -> ``TCPServer._close``). Quart-Trio cancels that task as soon as the
   response is sent, so ``_close`` raises ``Cancelled`` at its first checkpoint
   (``send_eof``) before the socket is closed. The socket then stays open until the
   client closes it or ``read_timeout`` passes. A websocket handshake refused with
   an HTTP error (a bad ``Sec-WebSocket-Version``: 400) never ends its stream at
   all, so its socket also stays open.
   *Replaced:* ``hypercorn.trio.tcp_server.TCPServer._close`` (a copy, shielded from
   the caller's cancellation and bounded by :data:`CLOSE_TIMEOUT`) and
   ``WSStream._send_error_response`` (a copy, see 5, that ends the stream after the
   response).
   *Upstream:* pgjones/hypercorn#330 "Connection:close ignored?" (open) is this
   symptom. pgjones/hypercorn#106 "Hypercorn skip socket shutdown when cancelled
   with trio" (open) is this cause. pgjones/hypercorn#376 (an open PR) is near it:
   a cancelled app's last ``send`` failing on h2. The fix it needs: ``_close``
   shielded like ``_initiate_server_close``, and ``_send_error_response`` ending
   the stream.
5. **No ``Sec-WebSocket-Version`` on a 400.** RFC 6455 section 4.4: a server that
   refuses a handshake because of its version names the versions it supports.
   *Replaced:* ``WSStream._send_error_response`` (the copy of 4) adds
   ``Sec-WebSocket-Version: 13`` to a 400 answering any other version.
   *Upstream:* no issue or fix found. It needs that header in the same function.
6. **permessage-deflate is always on, and its inflating is unbounded.**
   ``Handshake.accept`` accepts permessage-deflate (RFC 7692) whenever a client
   offers it. wsproto inflates each compressed chunk without a limit: 64 KiB read
   from the socket can inflate to about 64 MiB before Hypercorn's size check sees
   it (a compression bomb).
   *Replaced:* ``WSStream._accept`` (a copy). It lets Hypercorn's ``Handshake``
   negotiate nothing, and negotiates permessage-deflate itself only when the
   config's ``websocket_compression`` attribute is true (duorelay's
   ``DUORELAY_WEBSOCKET_COMPRESSION``; false, or absent as under plain
   ``hypercorn``, means off). It then uses :class:`BoundedPerMessageDeflate`, which
   inflates at most ``websocket_max_message_size`` bytes of a message and closes
   the connection with 1009 past that.
   *Upstream:* pgjones/hypercorn#307 (open) asks for a setting to turn compression
   off. anycorn, a fork of Hypercorn, merged one (davidbrochart/anycorn#29). wsproto
   1.3.2 has no limit on inflated size: python-hyper/wsproto#86 (closed) asked for a
   maximum message size. Its ``PerMessageDeflate`` has to pass a ``max_length`` to
   ``decompress``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import zlib
from collections.abc import Awaitable, Callable, Iterable
from time import time
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.protocol.events import EndBody, Response, StreamClosed
from hypercorn.protocol.ws_stream import (
    ASGIWebsocketState,
    FrameTooLargeError,
    Handshake,
    WebsocketBuffer,
    WSStream,
)
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext as TrioWorkerContext
from hypercorn.typing import WebsocketAcceptEvent
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import CloseConnection, Message, Ping
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol
from wsproto.handshake import WEBSOCKET_VERSION, server_extensions_handshake

__all__ = [
    "CLOSE_TIMEOUT",
    "COMPRESSION_OPTION",
    "EXPECTED",
    "BoundedPerMessageDeflate",
    "ShimError",
    "accept_handshake",
    "install",
]

CLOSE_TIMEOUT = 5.0
"""Seconds :func:`_close` may take to close a socket gracefully: the TLS
``close_notify`` to a client that does not read. After that the socket is closed
without it."""

COMPRESSION_OPTION = "websocket_compression"
"""The Hypercorn config attribute (a bool; absent means false) that turns on
permessage-deflate (patch 6). :class:`duorelay.cli.RelayConfig` sets it."""

EXPECTED: tuple[tuple[type, str, str], ...] = (
    # (owner, function, first 16 hex digits of the SHA-256 of its source)
    (WebsocketBuffer, "extend", "b10bdcb6f21b967d"),  # 1
    (WSStream, "_handle_events", "b90f3f595ff9fd47"),  # 1, 2
    (WSStream, "_send_pings", "4721ce45cbdf91e6"),  # 3
    (TCPServer, "_close", "bc73c4ae25a1ceec"),  # 4
    (WSStream, "_send_error_response", "8b6acae9ca1ce378"),  # 4, 5
    (WSStream, "_accept", "144623ad2e13fc56"),  # 6
    (Handshake, "accept", "e163533bf7919793"),  # 6: negotiates nothing without offers
    (PerMessageDeflate, "frame_inbound_payload_data", "93bc8692346aa787"),  # 6
    (PerMessageDeflate, "frame_inbound_complete", "15ecc689b99856b3"),  # 6
)
"""What :func:`install` patches or relies on, as written in Hypercorn 0.18.0 and
wsproto 1.3.2 (the same on Python 3.11 and 3.13)."""

_CLOSED = "_duorelay_closed"
_CLOSED_EVENT = "_duorelay_closed_event"
_installed = False


class ShimError(RuntimeError):
    """Hypercorn's or wsproto's code is not what these patches were written for."""


def install() -> None:
    """Patch Hypercorn's websocket and TCP code, process-wide (see the module docstring).

    Idempotent: later calls do nothing. Raises :class:`ShimError`, before changing
    anything, when a function to be patched is missing or differs from the one the
    patches were written against.
    """
    global _installed
    if _installed:
        return
    for owner, name, digest in EXPECTED:
        _check(owner, name, digest)
    if "closed" in vars(WSStream) or "__slots__" in vars(WSStream):
        raise ShimError(
            "hypercorn.protocol.ws_stream.WSStream.closed is no longer a plain instance "
            "attribute; patch 3 of duorelay.transport.hypercorn_shims needs updating"
        )
    _replace(WebsocketBuffer, "extend", _checking_first(WebsocketBuffer.extend))
    _replace(WSStream, "_handle_events", _handle_events)
    _replace(WSStream, "closed", property(_get_closed, _set_closed))
    _replace(WSStream, "_send_pings", _pinging_until_closed(WSStream._send_pings))
    _replace(TCPServer, "_close", _close)
    _replace(WSStream, "_send_error_response", _send_error_response)
    _replace(WSStream, "_accept", _accept)
    _installed = True


def _check(owner: type, name: str, digest: str) -> None:
    where = f"{owner.__module__}.{owner.__qualname__}.{name}"
    function = vars(owner).get(name)
    if function is None:
        raise ShimError(f"{where} is gone: duorelay.transport.hypercorn_shims needs updating")
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError) as error:
        raise ShimError(f"cannot read the source of {where} to check it: {error}") from None
    if hashlib.sha256(source.encode()).hexdigest()[:16] != digest:
        installed = ", ".join(f"{name} {_version(name)}" for name in ("hypercorn", "wsproto"))
        raise ShimError(
            f"{where} is not the code duorelay.transport.hypercorn_shims was written for "
            f"(Hypercorn 0.18.0, wsproto 1.3.2; installed: {installed}). See whether the "
            "new version fixed the hole that the module docstring describes for it, then "
            "drop or update that patch and its fingerprint in EXPECTED."
        )


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "(unknown version)"


def _replace(owner: type, name: str, value: object) -> None:
    setattr(owner, name, value)


# 1. Oversized frames


def _checking_first(
    extend: Callable[[WebsocketBuffer, Message[Any]], None],
) -> Callable[[WebsocketBuffer, Message[Any]], None]:
    def checked_extend(self: WebsocketBuffer, event: Message[Any]) -> None:
        """``WebsocketBuffer.extend``, but data that would take the message past
        ``max_length`` (bytes; characters for text) raises ``FrameTooLargeError``
        before anything is written."""
        if self.length + len(event.data) > self.max_length:
            raise FrameTooLargeError()
        extend(self, event)

    return checked_extend


# 1 and 2. Oversized frames, invalid frames


async def _handle_events(self: WSStream) -> None:
    """Hypercorn's ``WSStream._handle_events``; the lines marked "changed" fix holes 1 and 2.

    Hands each message to the app, answers pings and closes. After a 1009 (message
    too big) or a close frame for data wsproto cannot parse (1007, 1002), the stream
    ends: the app gets ``websocket.disconnect`` (code 1006) and the TCP connection
    is closed.
    """
    for event in self.connection.events():
        if isinstance(event, Message):
            try:
                self.buffer.extend(event)
            except FrameTooLargeError:
                self.buffer.clear()  # changed: nothing more of this message is kept
                await self._send_wsproto_event(CloseConnection(code=CloseReason.MESSAGE_TOO_BIG))
                await self.send(StreamClosed(stream_id=self.stream_id))  # changed: drop it
                break

            if event.message_finished:
                assert self.app_put is not None  # set before the handshake is accepted
                await self.app_put(self.buffer.to_message())
                self.buffer.clear()
        elif isinstance(event, Ping):
            await self._send_wsproto_event(event.response())
        elif isinstance(event, CloseConnection):
            if self.connection.state == ConnectionState.REMOTE_CLOSING:
                await self._send_wsproto_event(event.response())
            elif self.connection.state == ConnectionState.OPEN:
                # changed: wsproto could not parse the client's data; it gives the
                # code to fail the connection with, and the client gets it.
                await self._send_wsproto_event(
                    CloseConnection(code=event.code, reason=event.reason)
                )
            await self.send(StreamClosed(stream_id=self.stream_id))


# 3. Pings of a closed websocket


def _closed_event(stream: WSStream) -> trio.Event:
    event = stream.__dict__.get(_CLOSED_EVENT)
    if event is None:
        event = stream.__dict__[_CLOSED_EVENT] = trio.Event()
    return event


def _get_closed(stream: WSStream) -> bool:
    return bool(stream.__dict__.get(_CLOSED, False))


def _set_closed(stream: WSStream, value: bool) -> None:
    stream.__dict__[_CLOSED] = value
    event = _closed_event(stream)
    if value:
        event.set()


def _pinging_until_closed(
    send_pings: Callable[[WSStream], Awaitable[None]],
) -> Callable[[WSStream], Awaitable[None]]:
    async def _send_pings(self: WSStream) -> None:
        """Send a ping every ``websocket_ping_interval`` seconds until the stream is
        closed; return as soon as it is (Hypercorn's sleeps out the interval first).
        Hypercorn's own loop on workers other than trio's."""
        interval = self.config.websocket_ping_interval
        if not isinstance(self.context, TrioWorkerContext) or interval is None:
            await send_pings(self)
            return
        closed = _closed_event(self)
        while not self.closed:
            await self._send_wsproto_event(Ping())
            with trio.move_on_after(interval):
                await closed.wait()

    return _send_pings


# 4. Closing the socket


async def _close(self: TCPServer) -> None:
    """Hypercorn's ``TCPServer._close``: half-close, then close the socket.

    Changed: shielded from the cancellation of the calling task (often the app's,
    cancelled by Quart-Trio once its response is sent), so the socket is always
    closed. Bounded by :data:`CLOSE_TIMEOUT` seconds; past that the socket is
    closed without the TLS goodbye.
    """
    stream: trio.abc.Stream = self.stream
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + CLOSE_TIMEOUT
        try:
            if isinstance(stream, trio.abc.HalfCloseableStream):  # not TLS
                await stream.send_eof()
        except (trio.BrokenResourceError, trio.BusyResourceError, trio.ClosedResourceError):
            pass  # already gone, or the reader is busy with it: aclose still closes it
        finally:
            await stream.aclose()


# 4 and 5. Refused websocket handshakes


async def _send_error_response(self: WSStream, status_code: int) -> None:
    """Hypercorn's ``WSStream._send_error_response``: an HTTP error (400, 403, 404,
    500) instead of the upgrade, with ``Connection: close``.

    Changed: a 400 answering a ``Sec-WebSocket-Version`` other than 13 says
    ``Sec-WebSocket-Version: 13`` (RFC 6455 section 4.4); and the stream ends after
    the response, so the connection is closed (and an app still running gets
    ``websocket.disconnect``).
    """
    headers = [(b"content-length", b"0"), (b"connection", b"close")]
    if status_code == 400 and self.handshake.version != WEBSOCKET_VERSION:
        headers.append((b"sec-websocket-version", WEBSOCKET_VERSION))
    await self.send(Response(stream_id=self.stream_id, status_code=status_code, headers=headers))
    await self.send(EndBody(stream_id=self.stream_id))
    await self.config.log.access(
        self.scope, {"status": status_code, "headers": []}, time() - self.start_time
    )
    await self.send(StreamClosed(stream_id=self.stream_id))


# 6. permessage-deflate


class BoundedPerMessageDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate (RFC 7692) that inflates at most
    ``max_message_size`` bytes of one message.

    A message that would inflate to more fails the connection with 1009: at most
    ``max_message_size + 1`` bytes of it are ever inflated. Messages sent without
    compression are not counted here (Hypercorn's buffer bounds them).
    """

    def __init__(self, max_message_size: int) -> None:
        super().__init__()
        self.max_message_size = max_message_size
        self._inflated = 0  # bytes inflated so far of the current message

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None  # created with the frame's header
        room = self.max_message_size - self._inflated + 1  # >= 1 (0 means no limit)
        try:
            inflated = self._decompressor.decompress(data, room)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(inflated)
        if self._inflated > self.max_message_size:
            return CloseReason.MESSAGE_TOO_BIG
        return inflated

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        result = super().frame_inbound_complete(proto, fin)
        if isinstance(result, bytes):
            self._inflated += len(result)
            if self._inflated > self.max_message_size:
                result = CloseReason.MESSAGE_TOO_BIG
        if fin:
            self._inflated = 0
        return result


def accept_handshake(
    handshake: Handshake,
    config: Config,
    subprotocol: str | None,
    headers: Iterable[tuple[bytes, bytes]],
) -> tuple[int, list[tuple[bytes, bytes]], Connection]:
    """Accept a websocket handshake as ``Handshake.accept`` does, but with
    permessage-deflate only if ``config`` turns it on (:data:`COMPRESSION_OPTION`)
    and the client offers it, and then bounded by ``websocket_max_message_size``.

    Returns the status code (101, or 200 over HTTP/2), the response headers and the
    wsproto connection. Sans-IO.
    """
    offers, handshake.extensions = handshake.extensions, None  # Hypercorn negotiates none
    status_code, response_headers, connection = handshake.accept(subprotocol, headers)
    if offers and getattr(config, COMPRESSION_OPTION, False):
        deflate = BoundedPerMessageDeflate(config.websocket_max_message_size)
        accepted = server_extensions_handshake(offers, [deflate])
        if accepted:
            response_headers.append((b"sec-websocket-extensions", accepted))
            connection = Connection(ConnectionType.SERVER, [deflate])
    return status_code, response_headers, connection


async def _accept(self: WSStream, message: WebsocketAcceptEvent) -> None:
    """Hypercorn's ``WSStream._accept``; changed: the handshake is accepted by
    :func:`accept_handshake`."""
    self.state = ASGIWebsocketState.CONNECTED
    status_code, headers, self.connection = accept_handshake(
        self.handshake, self.config, message.get("subprotocol"), message.get("headers", [])
    )
    await self.send(Response(stream_id=self.stream_id, status_code=status_code, headers=headers))
    await self.config.log.access(
        self.scope, {"status": status_code, "headers": []}, time() - self.start_time
    )
    if self.config.websocket_ping_interval is not None:
        self.task_group.spawn(self._send_pings)
