"""The publish queue: messages for other processes, published in order by one task.

Handlers queue messages (:meth:`Publisher.send_nowait`, :meth:`Publisher.send`);
the backplane's ``_publish`` task (:meth:`Publisher.run`) writes them to Redis as
PUBLISH commands on one held connection, up to :data:`PUBLISH_BATCH` at a time,
then reads the replies (how many processes received each).

Bound and closer: the queue is a channel of :data:`PUBLISH_QUEUE` +
:data:`MAX_CONTROL` messages, counted in two parts. At most :data:`PUBLISH_QUEUE`
*frames* wait; a frame sender waits for room (back-pressure) or gets
``trio.WouldBlock``. At most :data:`MAX_CONTROL` *control messages* (joins,
answers, closes, leaves: see :func:`duorelay.protocols.cluster.is_frame`) wait;
past that one is refused with :class:`~duorelay.core.backplane.BackplaneUnavailable`,
which every sender handles as it handles Redis out of reach (a join gets 1013; a
lost close, answer or leave is covered as in :mod:`duorelay.cluster.wmbp`). So the
queue holds at most ``PUBLISH_QUEUE * max_message_size`` bytes of frames plus
``MAX_CONTROL`` small messages, whatever clients do. The channel is closed by
:meth:`Publisher.close`, called by the backplane's ``run`` when it stops.
"""

from __future__ import annotations

from collections.abc import Callable

import coredis
import trio

from duorelay.cluster import run_callback
from duorelay.core.backplane import UNAVAILABLE, BackplaneUnavailable, Sender
from duorelay.observability import Stats
from duorelay.protocols import CloseCode

PUBLISH_QUEUE = 1024
"""Frames that may wait for the publisher (each at most ``max_message_size``
bytes); a sender of frames (a Kamon seat, a WMBP host or client) waits while
that many are queued."""

MAX_CONTROL = 4096
"""Control messages that may wait for the publisher (each under 300 bytes: an
address, a player id, a close reason of at most 123 bytes). A connection
queues a few at most (a join, its answer, a close, a leave); the bound is for
a burst of them while Redis is slow, and against a loop that would queue
them without end. Past it, :meth:`Publisher.send_nowait` refuses them."""

CONTROL_QUEUE_FULL = "publish queue full"
"""Why a control message was refused (in :class:`BackplaneUnavailable`)."""

PUBLISH_BATCH = 256
"""Most messages sent to Redis in one batch."""

_Message = tuple["Sender | None", bytes, bytes, "Callable[[], None] | None", bool]
"""A queued message: sender, channel name, data, on_absent, whether it is a frame
(counted against :data:`PUBLISH_QUEUE`, else against :data:`MAX_CONTROL`)."""


class Publisher:
    """The publish queue of one process, and the task that empties it."""

    def __init__(self, stats: Stats, timeout: float) -> None:
        self.stats = stats
        self.timeout = timeout
        # Room for both bounds; send_nowait() checks each bound before it queues,
        # so sending into the channel itself never finds it full.
        self._queue, self._queue_out = trio.open_memory_channel[_Message](
            PUBLISH_QUEUE + MAX_CONTROL
        )
        self._frames_queued = 0
        self._control_queued = 0
        self._room = trio.lowlevel.ParkingLot()  # frame senders waiting for room

    def send_nowait(
        self,
        name: bytes,
        data: bytes,
        sender: Sender | None,
        on_absent: Callable[[], None] | None,
        *,
        frame: bool,
    ) -> None:
        """Queue ``data`` for channel ``name``.

        Raises ``trio.WouldBlock`` for a frame while :data:`PUBLISH_QUEUE` frames
        wait, :class:`~duorelay.core.backplane.BackplaneUnavailable` for a
        control message while :data:`MAX_CONTROL` control messages wait.
        """
        if frame:
            if self._frames_queued >= PUBLISH_QUEUE:
                raise trio.WouldBlock
            self._frames_queued += 1
        else:
            if self._control_queued >= MAX_CONTROL:
                raise BackplaneUnavailable(CONTROL_QUEUE_FULL)
            self._control_queued += 1
        self._queue.send_nowait((sender, name, data, on_absent, frame))

    @property
    def queued(self) -> tuple[int, int]:
        """``(frames, control messages)`` waiting now."""
        return self._frames_queued, self._control_queued

    async def wait_for_room(self) -> None:
        """Wait until the publisher took messages from the queue (or it failed)."""
        await self._room.park()

    def fail_queued(self) -> None:
        """Redis is lost: drop every queued message, closing its sender with 1013,
        and wake the senders waiting for room (they find the backplane unavailable)."""
        while True:
            try:
                sender, _, _, _, _ = self._queue_out.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            if sender is not None:
                run_callback(self.stats, sender.close, CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)
        self._frames_queued = self._control_queued = 0
        self._room.unpark_all()

    def close(self) -> None:
        """Close the queue, both ends; the backplane has stopped."""
        self._queue.close()
        self._queue_out.close()

    async def run(self, client: coredis.Redis[bytes]) -> None:
        """Publish queued messages in order, up to :data:`PUBLISH_BATCH` at a time.

        One connection of the pool is this task's for its whole life: the
        batch's PUBLISH commands are written in order on it, then their
        replies (receiver counts) awaited. (coredis' ``Pipeline`` costs about
        three times as much CPU per message; see docs/benchmarks.md.) A
        message nobody received calls its ``on_absent``, or counts as
        ``absent_peer``. Raises what Redis raises (and ``trio.TooSlowError``
        after ``timeout`` seconds), after closing the batch's senders with 1013.
        """
        async with client.connection_pool.acquire() as connection:
            while True:
                batch = [await self._queue_out.receive()]
                while len(batch) < PUBLISH_BATCH:
                    try:
                        batch.append(self._queue_out.receive_nowait())
                    except trio.WouldBlock:
                        break
                frames = sum(1 for *_, frame in batch if frame)
                self._frames_queued -= frames
                self._control_queued -= len(batch) - frames
                self._room.unpark_all()
                try:
                    with trio.fail_after(self.timeout):
                        requests = [
                            connection.create_request(b"PUBLISH", name, data)
                            for _, name, data, _, _ in batch
                        ]
                        counts = [await request for request in requests]
                except Exception:  # Redis failed: senders told, then re-raised
                    for sender, _, _, _, _ in batch:
                        if sender is not None:
                            run_callback(
                                self.stats, sender.close, CloseCode.TRY_AGAIN_LATER, UNAVAILABLE
                            )
                    raise
                for (_, _, _, on_absent, _), count in zip(batch, counts, strict=True):
                    if count == 0:
                        if on_absent is None:
                            self.stats.frames_dropped["absent_peer"] += 1
                        else:
                            run_callback(self.stats, on_absent)
