"""Mailboxes of a connection: its outbox, and the inbox for senders that cannot wait.

Each connection owns one *outbox*: a bounded mailbox (:func:`open_mailbox`)
whose receive end belongs to its writer task and whose send end is lent to
whoever may address the connection
(:attr:`duorelay.core.session.Session.outbox`). Closing the send end is how
"this receiver is gone" is signalled.

A mailbox is bounded in frames *and* in bytes (``OUTBOX_SIZE`` and
``OUTBOX_BYTES``; docs/architecture.md, invariant 5), so what waits for one
receiver that stopped reading is a number the settings give, whatever the
frames' sizes. It is trio's memory channel (``trio/_channel.py``) cut down to
what a connection needs, plus the byte count: one receiving task, clonable
send ends, senders served first come, first served.

An :class:`Inbox` sits in front of the outbox for senders that must never
wait (the backplane's drain task serves every connection of the process); the
session's pump task moves its frames into the outbox in order
(:meth:`duorelay.core.session.Session.open_inbox`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Protocol

import trio
from outcome import Error, Value
from trio.lowlevel import Abort, RaiseCancelT, Task

from duorelay.transport import Frame

frame_size = sys.getsizeof
"""The bytes a frame counts for in a mailbox: the memory it takes (its payload,
plus about 33 bytes of object header for ``bytes``, 41 to 80 for ``str``; a
text frame takes 1, 2 or 4 bytes a character). Constant for one frame."""


class FrameSink(Protocol):
    """Where frames for a peer go: its outbox (a :class:`Outbox`), its
    :class:`Inbox`, or a stand-in for a peer on another process.

    ``send_nowait`` puts a frame in at once or raises ``trio.WouldBlock``;
    ``send`` waits for room; ``push`` is for a sender that cannot wait (it
    may use a reserve beyond the bounds; ``trio.WouldBlock`` when that is
    full too). All raise ``trio.ClosedResourceError`` or
    ``trio.BrokenResourceError`` once the receiver is gone.
    """

    def send_nowait(self, frame: Frame) -> None: ...

    async def send(self, frame: Frame) -> None: ...

    def push(self, frame: Frame) -> None: ...


@dataclass(frozen=True, slots=True)
class MailboxStatistics:
    """A mailbox now (:meth:`Outbox.statistics`).

    ``current_buffer_used`` frames of ``current_bytes`` bytes (:data:`frame_size`)
    wait for the receiver; ``peak_bytes`` is the most there ever were.
    ``tasks_waiting_send`` senders wait for room, and ``pushed`` frames of
    ``pushed_bytes`` wait in the reserve (:meth:`Outbox.push`).
    """

    current_buffer_used: int
    current_bytes: int
    max_buffer_size: int
    max_bytes: int
    peak_bytes: int
    tasks_waiting_send: int
    pushed: int
    pushed_bytes: int
    open_send_channels: int


class _Pushed:
    """The place in the queue of waiting senders of a pushed frame (no task waits)."""

    __slots__ = ()


class _State:
    """What the ends of one mailbox share."""

    __slots__ = (
        "bytes",
        "frames",
        "max_bytes",
        "max_frames",
        "open_send_channels",
        "peak_bytes",
        "pushed",
        "pushed_bytes",
        "receive_closed",
        "receiver",
        "senders",
    )

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        # A list, not a deque: an empty deque takes 760 bytes, a list 56, and
        # an outbox holds a few frames at most (pop(0) of a short list is cheap).
        self.frames: list[Frame] = []
        self.bytes = 0
        self.peak_bytes = 0
        # Frames not in the buffer yet, first come first served: those of
        # tasks waiting in send() (keyed by the task) and pushed ones.
        # A dict keeps insertion order; a waiting task's custom_sleep_data is
        # the send end it waits on (see Outbox.close).
        self.senders: dict[Task | _Pushed, Frame] = {}
        self.pushed = 0
        self.pushed_bytes = 0
        self.receiver: Task | None = None
        self.open_send_channels = 0
        self.receive_closed = False

    def fits(self, size: int) -> bool:
        """Whether one more frame of ``size`` bytes fits in the buffer: fewer
        than ``max_frames`` frames wait, and the bytes stay within
        ``max_bytes`` or the buffer is empty (a frame larger than the whole
        budget still passes alone, else it could never be delivered)."""
        used = len(self.frames)
        return used < self.max_frames and (not used or self.bytes + size <= self.max_bytes)

    def append(self, frame: Frame, size: int) -> None:
        self.frames.append(frame)
        self.bytes += size
        if self.bytes > self.peak_bytes:
            self.peak_bytes = self.bytes

    def admit_waiting(self) -> None:
        """Move waiting senders' frames into the buffer, in order, while they fit."""
        senders = self.senders
        while senders:
            key, frame = next(iter(senders.items()))
            size = frame_size(frame)
            if not self.fits(size):
                return
            del senders[key]
            self.append(frame, size)
            if isinstance(key, _Pushed):
                self.pushed -= 1
                self.pushed_bytes -= size
            else:
                trio.lowlevel.reschedule(key)


class Outbox:
    """The send end of a mailbox; clonable. Raises ``trio.ClosedResourceError``
    once this end is closed and ``trio.BrokenResourceError`` once the
    receiver is gone."""

    __slots__ = ("_closed", "_state")

    def __init__(self, state: _State) -> None:
        self._state = state
        self._closed = False
        state.open_send_channels += 1

    def statistics(self) -> MailboxStatistics:
        state = self._state
        return MailboxStatistics(
            current_buffer_used=len(state.frames),
            current_bytes=state.bytes,
            max_buffer_size=state.max_frames,
            max_bytes=state.max_bytes,
            peak_bytes=state.peak_bytes,
            tasks_waiting_send=len(state.senders) - state.pushed,
            pushed=state.pushed,
            pushed_bytes=state.pushed_bytes,
            open_send_channels=state.open_send_channels,
        )

    def send_nowait(self, frame: Frame) -> None:
        """Put ``frame`` in the mailbox now, or raise ``trio.WouldBlock`` if it
        does not fit or another sender waits (no frame overtakes a waiting one)."""
        if self._closed:
            raise trio.ClosedResourceError
        state = self._state
        if state.receive_closed:
            raise trio.BrokenResourceError
        receiver = state.receiver
        if receiver is not None:  # the receiver waits: the buffer is empty
            state.receiver = None
            trio.lowlevel.reschedule(receiver, Value(frame))
            return
        size = frame_size(frame)
        # state.fits() and state.append(), inlined: this is the relay's hot path.
        frames = state.frames
        used = len(frames)
        if (
            state.senders
            or used >= state.max_frames
            or (used and state.bytes + size > state.max_bytes)
        ):
            raise trio.WouldBlock
        frames.append(frame)
        state.bytes += size
        if state.bytes > state.peak_bytes:
            state.peak_bytes = state.bytes

    async def send(self, frame: Frame) -> None:
        """Put ``frame`` in the mailbox, waiting (first come, first served) for
        room in frames and bytes. A checkpoint. Woken at once with
        ``trio.ClosedResourceError`` when this end is closed, and with
        ``trio.BrokenResourceError`` when the receiver is gone; cancelled, the
        frame is not sent."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self.send_nowait(frame)
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        task = trio.lowlevel.current_task()
        state = self._state
        state.senders[task] = frame
        task.custom_sleep_data = self

        def abort(_: RaiseCancelT) -> Abort:
            del state.senders[task]
            return Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def push(self, frame: Frame) -> None:
        """Put ``frame`` in the mailbox for a sender that cannot wait.

        If it does not fit now it joins the waiting senders' queue (so it
        keeps its place after frames of senders already waiting) in a
        reserve of as many frames and bytes again as the mailbox holds; a
        full reserve raises ``trio.WouldBlock`` (the caller decides: 4430).
        So at most twice the bounds ever wait (plus one frame each way).
        """
        try:
            self.send_nowait(frame)
            return
        except trio.WouldBlock:
            pass
        state = self._state
        size = frame_size(frame)
        if state.pushed and (
            state.pushed >= state.max_frames or state.pushed_bytes + size > state.max_bytes
        ):
            raise trio.WouldBlock
        state.senders[_Pushed()] = frame
        state.pushed += 1
        state.pushed_bytes += size

    def clone(self) -> Outbox:
        """Another send end of the same mailbox; the receiver sees the end of
        the frames once every send end is closed."""
        if self._closed:
            raise trio.ClosedResourceError
        return Outbox(self._state)

    def close(self) -> None:
        """Close this send end; synchronous, idempotent. Tasks waiting in
        :meth:`send` on it get ``trio.ClosedResourceError`` at once; frames
        already in the mailbox stay for the receiver."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        mine = [
            key
            for key in state.senders
            if not isinstance(key, _Pushed) and key.custom_sleep_data is self
        ]
        for task in mine:
            del state.senders[task]
            trio.lowlevel.reschedule(task, Error(trio.ClosedResourceError()))
        state.open_send_channels -= 1
        if not state.open_send_channels and not state.senders and state.receiver is not None:
            receiver, state.receiver = state.receiver, None
            trio.lowlevel.reschedule(receiver, Error(trio.EndOfChannel()))
        state.admit_waiting()  # pushed frames behind the tasks that left

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class MailboxReceiver:
    """The receive end of a mailbox, for one task at a time (a connection's
    writer, or the pump). Iterate over it until every send end is closed."""

    __slots__ = ("_closed", "_state")

    def __init__(self, state: _State) -> None:
        self._state = state
        self._closed = False

    def receive_nowait(self) -> Frame:
        """The next frame; ``trio.WouldBlock`` if none waits,
        ``trio.EndOfChannel`` once every send end is closed and none is left."""
        if self._closed:
            raise trio.ClosedResourceError
        state = self._state
        if state.frames:
            frame = state.frames.pop(0)
            state.bytes -= frame_size(frame)
            if state.senders:
                state.admit_waiting()
            return frame
        if not state.open_send_channels:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> Frame:
        """The next frame, waiting for one; a checkpoint. Raises
        ``trio.EndOfChannel`` once every send end is closed and none is left."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            frame = self.receive_nowait()
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return frame
        state = self._state
        assert state.receiver is None, "one receiving task at a time"
        state.receiver = trio.lowlevel.current_task()

        def abort(_: RaiseCancelT) -> Abort:
            state.receiver = None
            return Abort.SUCCEEDED

        received: Frame = await trio.lowlevel.wait_task_rescheduled(abort)
        return received

    def __aiter__(self) -> MailboxReceiver:
        return self

    async def __anext__(self) -> Frame:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Close the receive end; synchronous, idempotent. Waiting senders get
        ``trio.BrokenResourceError`` at once; queued frames are dropped."""
        if self._closed:
            return
        self._closed = True
        state = self._state
        state.receive_closed = True
        for key in state.senders:
            if not isinstance(key, _Pushed):
                trio.lowlevel.reschedule(key, Error(trio.BrokenResourceError()))
        state.senders.clear()
        state.pushed = state.pushed_bytes = 0
        state.frames.clear()
        state.bytes = 0

    def __enter__(self) -> MailboxReceiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_mailbox(max_frames: int, max_bytes: int) -> tuple[Outbox, MailboxReceiver]:
    """A mailbox of at most ``max_frames`` frames (at least 1) and
    ``max_bytes`` bytes (:data:`frame_size`; a larger frame passes alone):
    its send end and its receive end."""
    if max_frames < 1 or max_bytes < 1:
        raise ValueError("a mailbox holds at least one frame")
    state = _State(max_frames, max_bytes)
    return Outbox(state), MailboxReceiver(state)


class Inbox:
    """Frames for one connection from senders that cannot wait (the
    backplane's drain task, which serves every connection of the process),
    in front of its outbox.

    :meth:`push` (for those senders) puts a frame straight into the outbox
    when it has room and no earlier frame is still waiting here; else into
    this inbox's mailbox (bounded in frames and bytes), from which the
    session's pump moves frames into the outbox in order. ``waiting`` counts
    the frames in the mailbox or in the pump's hands, so a later frame never
    overtakes an earlier one.

    :meth:`send` is for a sender of this process, which can wait: it waits
    until nothing waits here, then for room in the outbox itself. So senders
    that can wait are back-pressured by the receiver and never take the
    inbox's room from those that cannot.
    """

    def __init__(self, outbox: Outbox, channel: Outbox) -> None:
        self._outbox = outbox
        self._channel = channel
        self._emptied = trio.lowlevel.ParkingLot()
        self._closed = False
        self.waiting = 0

    def push(self, frame: Frame) -> None:
        """Queue ``frame`` for the client. Raises ``trio.WouldBlock`` when the
        inbox is full (the caller decides: 4430), ``trio.ClosedResourceError``
        once the connection's handler has ended."""
        if not self.waiting:
            try:
                self._outbox.send_nowait(frame)
                return
            except trio.WouldBlock:
                pass
        self._channel.send_nowait(frame)
        self.waiting += 1

    def send_nowait(self, frame: Frame) -> None:
        """Put ``frame`` straight into the outbox, or raise ``trio.WouldBlock``
        (the outbox is full, or frames wait in the inbox)."""
        if self.waiting:
            if self._closed:
                raise trio.ClosedResourceError
            raise trio.WouldBlock
        self._outbox.send_nowait(frame)

    async def send(self, frame: Frame) -> None:
        """Wait until no frame waits in the inbox, then for room in the outbox
        (:meth:`Outbox.send`). Raises ``trio.ClosedResourceError`` once the
        connection's handler has ended (at once for a waiting sender)."""
        while self.waiting:
            if self._closed:
                raise trio.ClosedResourceError
            await self._emptied.park()
        await self._outbox.send(frame)

    def moved(self) -> None:
        """The pump moved one frame into the outbox."""
        self.waiting -= 1
        if not self.waiting:
            self._emptied.unpark_all()

    def close(self) -> None:
        """Close the inbox (the connection's handler ended); synchronous."""
        self._closed = True
        self._channel.close()
        self._emptied.unpark_all()
