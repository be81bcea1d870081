"""``python -m duorelay`` with the changes proposed in docs/benchmarks.md applied
from outside (monkeypatching), so that they can be measured before they are made
in ``src/``: ``bench/run.py --servers duorelay-proposed``. Written against commit
cfd406b. ``BENCH_PROPOSALS`` (comma-separated, default all three) picks them:

``gc``
    ``server.main``: ``gc.freeze()`` the start-up heap and collect the youngest
    generation every 5,000 net allocations instead of 700. (In ``src/`` since
    commit 9472148, ``server.tune_garbage_collector``; applying it twice is
    harmless.)
``send_nowait``
    ``kamon.relay``: put a frame into the peer's outbox with ``send_nowait``
    and fall back to ``await send`` only when the outbox is full. The loop still
    checkpoints once per frame, in ``session.receive()``; what goes is the
    second trip through trio's scheduler that ``MemorySendChannel.send`` makes
    even when the frame fits. (In ``src/`` since commit 9472148.)
``receive``
    ``Session.receive``: decode the ASGI event itself instead of awaiting
    ``WebSocket.receive``: one coroutine fewer per frame. (Not in ``src/`` yet.)
"""

from __future__ import annotations

import gc
import os
import sys

import trio

import duorelay.app  # noqa: F401  (creates the app from the environment, as main() does)
from duorelay import kamon, session
from duorelay.protocols import CloseCode, ProtocolError, payload_size, too_big
from duorelay.protocols.kamon import parse_join
from duorelay.rooms import Registry, SeatTaken
from duorelay.server import main

PROPOSALS = set(os.environ.get("BENCH_PROPOSALS", "gc,send_nowait,receive").split(","))


async def relay(s: session.Session, namespace: str, rooms: Registry[session.Session]) -> None:
    """``kamon.relay`` of cfd406b with the ``send_nowait`` fast path."""
    join = None
    with trio.move_on_after(s.settings.join_timeout):
        join = parse_join(await s.receive())
    if join is None:
        raise ProtocolError(CloseCode.TIMEOUT, f"no join within {s.settings.join_timeout:g} s")
    s.where = {"ns": namespace, "room": join.room, "seat": join.seat}
    try:
        seat = rooms.claim(namespace, join.room, join.seat, s)
    except SeatTaken:
        raise ProtocolError(
            CloseCode.CONFLICT, f"seat {join.seat} of this room is already taken"
        ) from None
    s.log("joined")
    stats = s.stats
    try:
        while True:
            frame = await s.receive()
            peer = seat.peer()
            if peer is None:
                stats.frames_dropped["absent_peer"] += 1
                continue
            try:
                try:
                    peer.outbox.send_nowait(frame)
                except trio.WouldBlock:
                    await peer.outbox.send(frame)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                stats.frames_dropped["peer_left"] += 1
            else:
                stats.frames_relayed += 1
                stats.bytes_relayed += payload_size(frame)
    finally:
        rooms.release(seat)


async def receive(self: session.Session) -> session.Frame:
    """``Session.receive`` of cfd406b with ``WebSocket.receive`` inlined."""
    event = await self.websocket._receive()
    if event["type"] == "websocket.receive":
        frame = event.get("bytes")
        if frame is None:
            frame = event.get("text")
        if frame is None:
            raise RuntimeError("websocket.receive without bytes or text")
    elif event["type"] == "websocket.disconnect":
        raise session.Disconnected(event.get("code", CloseCode.NORMAL))
    else:
        raise RuntimeError(f"unexpected ASGI event {event['type']!r}")
    if too_big(frame, self.settings.max_message_size):
        raise ProtocolError(
            CloseCode.MESSAGE_TOO_BIG,
            f"message too big: the limit is {self.settings.max_message_size} bytes",
        )
    if not self._rate.allow(trio.current_time()):
        raise ProtocolError(
            CloseCode.TOO_MANY,
            f"too many messages: the limit is {self.settings.max_rate:g} per second",
        )
    self.frames_in += 1
    return frame


if __name__ == "__main__":
    if "send_nowait" in PROPOSALS:
        kamon.relay = relay  # type: ignore[assignment]
    if "receive" in PROPOSALS:
        session.Session.receive = receive  # type: ignore[method-assign]
    if "gc" in PROPOSALS:
        gc.collect()
        gc.freeze()
        gc.set_threshold(5000, 10, 10)
    sys.exit(main(sys.argv[1:]))
