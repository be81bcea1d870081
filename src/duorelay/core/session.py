"""One websocket connection: its nursery, writer task and bounded outbox.

This is the only module where a websocket, a nursery and a channel meet
(docs/architecture.md, "One connection"). A protocol's *handler* (for example
:func:`duorelay.relay.kamon.relay`) is the connection's reader: it receives frames
with :meth:`Session.receive` and puts frames for other connections into their
outboxes. Everything else about a connection's life is here, in one place:

Task tree of one connection::

    Hypercorn connection task group
     └─ Session.run            the ASGI call for this websocket
         └─ session nursery
             ├─ (body) handler     reader: websocket -> protocol -> peer outbox(es)
             ├─ _write             writer: this connection's outbox -> websocket
             └─ _pump              only with an inbox: inbox -> outbox

Channels: each session owns exactly one mailbox, its outbox, of ``outbox_size``
frames and ``outbox_bytes`` bytes (:func:`~duorelay.core.mailboxes.open_mailbox`).
The receive end belongs to the writer; the send end,
:attr:`Session.outbox`, is lent to the room registry so peers can address this
connection (the registry holds sessions; peers use ``session.outbox``). The
session closes the send end the moment its handler ends, before
waiting for the writer (which may be stuck in a send to a dead client): that is
how a peer blocked sending to it learns at once that this receiver is gone
(``trio.ClosedResourceError``). The receive end is closed when the writer is
gone. Both closes are synchronous, in ``finally`` blocks.

A handler whose frames may come from another process (through the
backplane, which cannot wait for room in one receiver's outbox) opens an
*inbox* (:meth:`Session.open_inbox`): a second bounded mailbox, whose frames
the ``_pump`` task moves into the outbox in order, waiting for room there
(frames go straight into the outbox while it has room and the inbox is
empty). Its send end is closed with the outbox, which ends the pump.

Endings: a connection ends in exactly one of these ways, each turned into one
:class:`Ending` by :meth:`Session.run` and logged in one line:

- the client closes or the TCP connection drops (also: Hypercorn's idle
  timeout, an oversize frame caught by Hypercorn): ASGI ``websocket.disconnect``,
  raised by :meth:`Session.receive` as
  :class:`~duorelay.transport.Disconnected`;
- the client breaks the protocol or a limit: the handler raises
  :class:`~duorelay.protocols.ProtocolError`; the session sends that close code;
- (both of these also when they come out of a nursery of the handler, in an
  exception group: :meth:`Session._handle` splits it, as Hypercorn's
  ``trio/task_group.py`` does, and lets ``trio.Cancelled`` go on;)
- the server ends it (shutdown: 1001): :meth:`Session.close` cancels the
  handler's cancel scope and the session sends the close code it was given;
- a bug: any other exception; logged with its traceback, close code 1011;
- cancellation from outside (Hypercorn cancelling the connection): the
  ``finally`` blocks release everything synchronously; nothing is sent.

The websocket under a session is a :class:`~duorelay.transport.asgi.WebSocket`
(:mod:`duorelay.transport`), or any other :class:`~duorelay.transport.Transport`:
a TCP stream of JSON values (:class:`~duorelay.transport.tcp.TcpTransport`,
the Santorini server) is served by the same tasks, outbox and endings; there
a frame is one JSON value's text and a "close frame" the end of the stream.
The mailboxes are in :mod:`duorelay.core.mailboxes`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import trio

from duorelay.core.limits import TokenBucket
from duorelay.core.mailboxes import FrameSink, Inbox, MailboxReceiver, Outbox, open_mailbox
from duorelay.observability import Stats
from duorelay.protocols import CloseCode, ProtocolError, clip_reason, too_big
from duorelay.settings import Settings
from duorelay.transport import Disconnected, Frame, Transport

log = logging.getLogger("duorelay")


class Peer(Protocol):
    """What a room holds: a :class:`Session`, or a stand-in for a connection
    on another process (:class:`duorelay.cluster.wmbp.RemoteClient`).

    ``remote`` is True for a stand-in: frames to it wait for room in the
    publish queue, instead of closing it as too slow when that is full.
    """

    remote: bool

    @property
    def outbox(self) -> FrameSink: ...

    @property
    def stats(self) -> Stats: ...

    def close(self, code: int, reason: str, *, flush: bool = False) -> None: ...


CLOSE_TIMEOUT = 5.0
"""Seconds of silence after which the server stops waiting for the client's
side of the close handshake (RFC 6455 section 7.1.1) once it sent its own."""

_connection_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Ending:
    """How a connection ended, for its one log line and its close frame.

    ``close_code`` is the close code the server sends, or ``None`` when the
    client is already gone and nothing can be sent.
    """

    close_code: int | None
    reason: str


GONE = Ending(None, "client went away")
"""The client closed or its TCP connection dropped: nothing to send. (Hypercorn
reports 1006 for a client's clean close too, so the two are not told apart.)"""

CANCELLED = Ending(None, "cancelled")

Handler = Callable[["Session"], Awaitable[None]]
"""A protocol handler: reads the session's frames until an ending is raised.

It raises :class:`Disconnected` (from :meth:`Session.receive`) or
:class:`~duorelay.protocols.ProtocolError`; returning means a normal close (1000).
It releases what it claimed (seats) in its own ``finally``, synchronously.
"""


class Session:
    """One connection (a websocket, or a TCP stream of JSON values), from
    accept to the last frame.

    ``id`` is a process-unique connection number used in logs. ``where`` is set
    by the handler once it knows who the connection is (for example
    ``{"ns": "default", "room": "r", "seat": 0}``) and goes into every log line.
    ``frames_in`` and ``frames_out`` count frames read from and written to this
    client. ``rate_limited`` False skips the ``max_rate``/``max_burst`` limit
    (a protocol whose clients only answer the server's requests).
    """

    __slots__ = (
        "_at_end",
        "_closing",
        "_flush",
        "_handler_done",
        "_handler_scope",
        "_inbox",
        "_nursery",
        "_outbox_receive",
        "_rate",
        "frames_in",
        "frames_out",
        "id",
        "outbox",
        "settings",
        "stats",
        "websocket",
        "where",
    )
    # Slots: one connection is a few hundred bytes lighter without a __dict__.

    remote = False
    """A session is a connection of this process (a :class:`Peer` that is not remote)."""

    def __init__(
        self,
        websocket: Transport,
        settings: Settings,
        stats: Stats,
        *,
        rate_limited: bool = True,
    ) -> None:
        self.id = next(_connection_ids)
        self.websocket = websocket
        self.settings = settings
        self.stats = stats
        self.where: dict[str, str | int] = {}
        self.frames_in = 0
        self.frames_out = 0
        self._rate = (
            TokenBucket(settings.max_rate, settings.max_burst, trio.current_time())
            if rate_limited
            else None
        )
        self._handler_scope = trio.CancelScope()
        self._closing: Ending | None = None
        self._flush = False
        self._handler_done = False
        self._at_end: list[Callable[[], None]] = []
        self._nursery: trio.Nursery | None = None
        self._inbox: Inbox | None = None
        self._outbox_receive: MailboxReceiver
        outbox, self._outbox_receive = open_mailbox(settings.outbox_size, settings.outbox_bytes)
        self.outbox: Outbox = outbox
        """The send end of this connection's outbox (bounded by ``outbox_size``
        frames and ``outbox_bytes`` bytes), where other connections' handlers
        put frames for this client. Closed when the handler ends."""

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        """End this connection with close frame ``code`` and ``reason``.

        Callable from any task; returns at once. The handler is cancelled (what
        it claimed is released by its ``finally``); once it has ended, the
        outbox accepts no more frames. With ``flush``, the frames already in the
        outbox are sent first (for at most :data:`CLOSE_TIMEOUT` seconds);
        without, they are dropped. Then :meth:`run` sends the close frame. The
        first call wins; a call after the connection ended does nothing.
        """
        if self._closing is None and not self._handler_done:
            self._closing = Ending(code, clip_reason(reason))
            self._flush = flush
            self._handler_scope.cancel()

    def open_inbox(self) -> Inbox:
        """Open this connection's :class:`Inbox`, for senders that must never
        wait. Call it from the handler, at most once.

        It holds ``max(outbox_size, max_burst)`` frames (a sender within its
        burst cannot fill it alone with small frames) and ``outbox_bytes``
        bytes. A pump task of
        this session moves the inbox's frames into the outbox, in order,
        waiting for room there. The inbox is closed when the handler ends,
        with the outbox; the pump then ends.
        """
        assert self._nursery is not None and self._inbox is None, "once, from the handler"
        size = max(self.settings.outbox_size, self.settings.max_burst)
        channel, inbox_receive = open_mailbox(size, self.settings.outbox_bytes)
        self._inbox = Inbox(self.outbox, channel)
        self._nursery.start_soon(self._pump, self._inbox, inbox_receive, self.outbox.clone())
        return self._inbox

    def at_end(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (synchronous) when this connection is over.

        Callbacks run in :meth:`run`'s ``finally``, after the close frame and
        the client's answer, in the order given: "when the client's socket is
        gone" (docs/protocols.md section 2, rule 5). Each one runs, even under
        cancellation; one that raises is a bug: it is logged with its
        traceback and the next one runs, and how the connection ended
        (``trio.Cancelled`` included) goes on unchanged.
        """
        self._at_end.append(callback)

    async def receive(self) -> Frame:
        """The client's next frame, no sooner than the rate limit allows.

        Raises :class:`Disconnected` when the client is gone, and
        :class:`~duorelay.protocols.ProtocolError` with 1009 for a frame over
        ``max_message_size`` bytes (docs/protocols.md section 1, rule 8).
        A client sending faster than ``max_rate`` frames per second beyond a
        burst of ``max_burst`` is slowed down, never closed (rule 12): this
        waits until the frame's token is earned (``trio.sleep_until``), and
        meanwhile Hypercorn's queue fills and it stops reading the client's
        socket, so TCP pushes back on the client.
        """
        frame = await self.websocket.receive()
        if too_big(frame, self.settings.max_message_size):
            raise ProtocolError(
                CloseCode.MESSAGE_TOO_BIG,
                f"message too big: the limit is {self.settings.max_message_size} bytes",
            )
        self.frames_in += 1
        if self._rate is not None:
            now = trio.current_time()
            ready = self._rate.take(now)
            if ready > now:
                await trio.sleep_until(ready)
        return frame

    def log(self, event: str, **fields: str | int | float | None) -> None:
        """Log one line about this connection; never a frame's payload.

        The text form is ``conn=ID EVENT key=value ...``; the structured
        fields (``conn``, ``event``, :attr:`where` and ``fields``) go to the
        record's ``extra`` for the JSON log format.
        """
        fields = {**self.where, **fields}
        text = "".join(f" {key}={_show(value)}" for key, value in fields.items())
        log.info(
            "conn=%d %s%s", self.id, event, text, extra={"conn": self.id, "event": event, **fields}
        )

    async def run(self, handler: Handler) -> None:
        """Serve this connection with ``handler`` until it ends, then close it.

        Returns when the connection is over: every task of it has ended, its
        outbox is closed, and (unless the client was already gone) a close
        frame was sent and the client's side of the close awaited (see
        :meth:`Transport.drain`). Raises nothing of its own; cancelled from
        outside, it raises ``trio.Cancelled`` (possibly in a
        ``BaseExceptionGroup``) after its ``finally`` blocks ran.
        """
        started = trio.current_time()
        ending = CANCELLED
        try:
            if not await self.websocket.accept():
                ending = GONE
                return
            self.stats.connections += 1
            self.log("connected", client=self.websocket.client)
            ending = await self._serve(handler)
            if ending.close_code is not None:
                await self.websocket.close(ending.close_code, ending.reason)
                self.stats.closes[ending.close_code] += 1
                await self.websocket.drain(CLOSE_TIMEOUT)
        finally:
            self.log(
                "closed",
                code=ending.close_code,
                reason=ending.reason,
                seconds=round(trio.current_time() - started, 3),
                frames_in=self.frames_in,
                frames_out=self.frames_out,
            )
            for callback in self._at_end:
                try:
                    callback()
                except Exception:  # a bug: logged; the others still run
                    log.exception(
                        "conn=%d at-end callback failed", self.id, extra={"conn": self.id}
                    )

    async def _serve(self, handler: Handler) -> Ending:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._write)
                ending = CANCELLED
                with self._handler_scope:
                    try:
                        ending = await self._handle(handler)
                    finally:
                        # This receiver is gone: wake any peer blocked sending
                        # to it now, not when the writer is done. From here
                        # on, close() does nothing.
                        self._handler_done = True
                        self.outbox.close()
                        if self._inbox is not None:
                            self._inbox.close()
                # close() wins over however the handler ended after it.
                ending = self._closing or ending
                if self._closing is not None and self._flush:
                    # The writer ends by itself once the outbox is empty.
                    nursery.cancel_scope.deadline = trio.current_time() + CLOSE_TIMEOUT
                else:
                    nursery.cancel_scope.cancel()
        finally:
            self._outbox_receive.close()
        return ending

    async def _handle(self, handler: Handler) -> Ending:
        """Run ``handler``; how it ended, as an :class:`Ending`.

        :class:`Disconnected` and :class:`~duorelay.protocols.ProtocolError`
        are endings, bare or in an exception group (a handler's nursery wraps
        them); anything else is a bug (1011, logged with its traceback).
        ``trio.Cancelled`` (and ``KeyboardInterrupt``) propagate: bare, or
        split out of a group and re-raised in a group of their own, after any
        bug beside them was logged (Hypercorn's ``trio/task_group.py`` does
        the same).
        """
        try:
            await handler(self)
        except Exception as error:  # ExceptionGroup included: no Cancelled in it
            return self._ending_of(error)
        except BaseExceptionGroup as group:  # trio.Cancelled among other exceptions
            exceptions, others = group.split(Exception)
            if exceptions is not None:
                self._ending_of(exceptions)  # logs a bug; the ending is cancelled
            assert others is not None
            raise others from None
        return Ending(CloseCode.NORMAL, "")

    def _ending_of(self, error: Exception) -> Ending:
        """The :class:`Ending` of a handler that raised ``error`` (maybe a group).

        A ``ProtocolError`` wins over ``Disconnected`` (its close code says
        why); any other exception is a bug: logged with the traceback, 1011.
        """
        leaves = list(_leaves(error))
        if any(not isinstance(leaf, (Disconnected, ProtocolError)) for leaf in leaves):
            log.error("conn=%d internal error", self.id, exc_info=error, extra={"conn": self.id})
            return Ending(CloseCode.INTERNAL_ERROR, "internal error")
        for leaf in leaves:
            if isinstance(leaf, ProtocolError):
                return Ending(leaf.code, leaf.reason)
        return GONE

    async def _pump(self, inbox: Inbox, frames: MailboxReceiver, outbox: Outbox) -> None:
        """The pump: move the inbox's frames into the outbox, in order.

        ``outbox`` is a clone of the outbox's send end, closed by the pump
        when it ends: the session's own send end closes when the handler ends
        (senders see it at once), while the writer, which ends once every send
        end is closed, still gets the frames the inbox held (a flushing close
        sends them). Ends when the inbox is closed and empty, or cancelled with
        the session's nursery.
        """
        with frames, outbox:
            async for frame in frames:
                try:
                    await outbox.send(frame)
                except trio.BrokenResourceError:
                    return  # the writer is gone
                inbox.moved()

    async def _write(self) -> None:
        """The writer: send this connection's outbox to its websocket, in order.

        Runs until the outbox is closed and empty, or the session's nursery is
        cancelled. Each outbox receive is a checkpoint, so this loop never
        spins on a gone client (Hypercorn returns from a send to a gone client
        without a checkpoint). A failure here is a bug: it is logged and the
        connection closed with 1011, like one in the handler, so that it too
        ends in :meth:`run`.
        """
        try:
            async for frame in self._outbox_receive:
                await self.websocket.send(frame)
                self.frames_out += 1
        except Exception:  # a bug: logged, 1011; trio.Cancelled is not an Exception
            log.exception("conn=%d internal error in the writer", self.id, extra={"conn": self.id})
            self.close(CloseCode.INTERNAL_ERROR, "internal error")


def _leaves(error: BaseException) -> Iterator[BaseException]:
    """The exceptions in ``error``, groups flattened."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error


def _show(value: object) -> str:
    """A log field's text form: strings quoted (room names have spaces), None as -."""
    if value is None:
        return "-"
    return repr(value) if isinstance(value, str) else str(value)
