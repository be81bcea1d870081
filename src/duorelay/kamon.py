"""The Kamon relay handler: two-seat rooms on ``/ws`` and ``/ws/{namespace}``.

The thin layer between a :class:`~duorelay.session.Session` and the sans-IO
:mod:`duorelay.protocols.kamon`: it reads the join, claims the seat, then is
the connection's reader, relaying each frame to the other seat's outbox
(PROTOCOLS.md section 1).

Relaying is done by the sender's reader itself: it awaits room in the other
seat's bounded outbox, so a fast sender is back-pressured by a slow receiver
(rule 9: Hypercorn stops reading the sender's socket while the reader waits).
"Stop relaying to this receiver now" is the receiver's outbox closing when its
connection ends: a sender waiting on it gets ``trio.BrokenResourceError`` at
once, drops that frame (rule 5) and reads on.
"""

from __future__ import annotations

import trio

from duorelay.protocols import CloseCode, ProtocolError, payload_size
from duorelay.protocols.kamon import parse_join
from duorelay.rooms import Registry, SeatTaken
from duorelay.session import Session


async def relay(session: Session, namespace: str, rooms: Registry[Session]) -> None:
    """Serve one Kamon connection of ``namespace`` until it ends.

    Close codes, raised as :class:`~duorelay.protocols.ProtocolError`: 4408 if
    no frame arrives within ``join_timeout`` seconds; 4400 if the first frame is
    not a join (rule 2); 4409 if the seat is held (rule 3, the holder is not
    disturbed); 1009 for a frame over ``max_message_size`` (rule 8). Raises
    :class:`~duorelay.session.Disconnected` when the client goes away. The seat
    is released, at once and synchronously, however this ends (rule 7).
    """
    join = None
    with trio.move_on_after(session.settings.join_timeout):
        join = parse_join(await session.receive())
    if join is None:
        raise ProtocolError(
            CloseCode.TIMEOUT, f"no join within {session.settings.join_timeout:g} s"
        )
    session.where = {"ns": namespace, "room": join.room, "seat": join.seat}
    try:
        seat = rooms.claim(namespace, join.room, join.seat, session)
    except SeatTaken:
        raise ProtocolError(
            CloseCode.CONFLICT, f"seat {join.seat} of this room is already taken"
        ) from None
    session.log("joined")
    stats = session.stats
    try:
        while True:
            frame = await session.receive()
            peer = seat.peer()
            if peer is None:
                # Rule 5: nobody holds the other seat; drop, never queue.
                stats.frames_dropped["absent_peer"] += 1
                continue
            try:
                try:
                    # Fast path: room in the outbox. (This loop checkpoints in
                    # session.receive(); `await send` would add a second trip
                    # through the scheduler per frame.)
                    peer.outbox.send_nowait(frame)
                except trio.WouldBlock:
                    await peer.outbox.send(frame)  # back-pressure: rule 9
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # The receiver left while we waited for room in its outbox.
                stats.frames_dropped["peer_left"] += 1
            else:
                stats.frames_relayed += 1
                stats.bytes_relayed += payload_size(frame)
    finally:
        rooms.release(seat)
