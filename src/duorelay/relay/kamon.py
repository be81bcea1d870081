"""The Kamon relay handler: two-seat rooms on ``/ws`` and ``/ws/{namespace}``.

The thin layer between a :class:`~duorelay.core.session.Session` and the sans-IO
:mod:`duorelay.protocols.kamon`: it reads the join, claims the seat, then is
the connection's reader, relaying each frame to the other seat's outbox
(docs/protocols.md section 1).

Relaying is done by the sender's reader itself: it awaits room in the other
seat's bounded outbox, so a fast sender is back-pressured by a slow receiver
(rule 9: Hypercorn stops reading the sender's socket while the reader waits).
"Stop relaying to this receiver now" is the receiver's outbox closing when its
connection ends: a sender waiting on it gets ``trio.BrokenResourceError`` at
once, drops that frame (rule 5) and reads on.

With a shared backplane (Redis, :mod:`duorelay.cluster.redis`) the other seat may
be held by another process. A seat is then also a lease (its holder process,
cluster-wide) and an address (the pub/sub channel its holder listens to). A
frame whose peer is not in this process is sent to the other seat's address;
nobody listening there means nobody holds it, and the frame is dropped (rule
5). Frames between two seats of one process never go through Redis.
Frames from another process arrive in the receiver's inbox
(:meth:`~duorelay.core.session.Session.open_inbox`, ``max(outbox_size, max_burst)``
frames, so a sender within its rate limit cannot fill it alone with small frames,
and ``outbox_bytes`` bytes). There is no back-pressure across
processes: a receiver whose inbox is full when a frame arrives is closed with
4430 (docs/protocols.md, close code table).
"""

from __future__ import annotations

import trio

from duorelay.core.backplane import UNAVAILABLE, Backplane, BackplaneUnavailable
from duorelay.core.session import Peer, Session
from duorelay.protocols import CloseCode, ProtocolError, payload_size
from duorelay.protocols.cluster import ClusterMessage, Frame
from duorelay.protocols.kamon import parse_join
from duorelay.relay.rooms import Registry, Seat, SeatTaken

SEAT_TAKEN = "seat {} of this room is already taken"


async def relay(
    session: Session,
    namespace: str,
    rooms: Registry[Peer],
    backplane: Backplane,
    first: str | bytes | None = None,
) -> None:
    """Serve one Kamon connection of ``namespace`` until it ends.

    ``first`` is the connection's first frame when a caller already read it
    (``/ws`` is shared with the XO protocol, told apart by its first frame:
    :mod:`duorelay.services.xo_ws`); else it is read here.

    Close codes, raised as :class:`~duorelay.protocols.ProtocolError`: 4408 if
    no frame arrives within ``join_timeout`` seconds; 4400 if the first frame is
    not a join (rule 2); 4409 if the seat is held (rule 3, the holder is not
    disturbed); 1009 for a frame over ``max_message_size`` (rule 8); 1013 if
    the backplane is shared and still out of reach ``backplane_wait`` seconds
    after the join (a join waits while it connects). Raises
    :class:`~duorelay.transport.Disconnected` when the client goes away. The seat
    is released, at once and synchronously, however this ends (rule 7); with
    a shared backplane its lease and address are given up right after.
    """
    if first is None:
        first = await first_frame(session)
    join = parse_join(first)
    session.where = {"ns": namespace, "room": join.room, "seat": join.seat}
    shared = backplane.shared
    try:
        seat = rooms.claim(namespace, join.room, join.seat, session, joined=not shared)
    except SeatTaken:
        raise ProtocolError(CloseCode.CONFLICT, SEAT_TAKEN.format(join.seat)) from None
    address = peer_address = ""
    stats = session.stats
    try:
        if shared:
            address = seat_address(namespace, join.room, join.seat)
            peer_address = seat_address(namespace, join.room, 1 - join.seat)
            await _join_cluster(seat, session, address, backplane)
        session.log("joined")
        while True:
            frame = await session.receive()
            peer = seat.peer()
            if peer is None:
                if shared:
                    # The other seat may be held by another process.
                    await backplane.send(peer_address, Frame(frame), session)
                else:
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
    except BackplaneUnavailable:
        raise ProtocolError(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE) from None
    finally:
        rooms.release(seat)
        if address:
            backplane.unlisten(address)
            backplane.release(address)


async def first_frame(session: Session) -> str | bytes:
    """The connection's first frame, within ``join_timeout`` seconds (else 4408)."""
    with trio.move_on_after(session.settings.join_timeout):
        return await session.receive()
    raise ProtocolError(CloseCode.TIMEOUT, f"no join within {session.settings.join_timeout:g} s")


def seat_address(namespace: str, room: str, index: int) -> str:
    """The backplane key and address of a seat: ``seat:{namespace}:{index}:{room}``.

    Unambiguous: a namespace has no colon (docs/protocols.md section 1, rule 1)
    and a seat number is one digit.
    """
    return f"seat:{namespace}:{index}:{room}"


async def _join_cluster(
    seat: Seat[Peer], session: Session, address: str, backplane: Backplane
) -> None:
    """Wait for the backplane (``backplane_wait`` seconds at most), listen to the
    seat's address, then take its lease; raises 4409 or
    :class:`~duorelay.core.backplane.BackplaneUnavailable`.

    While it waits, the seat is claimed here but not joined: another join of
    it on this process gets 4409 at once.

    Frames reach the client from the moment the seat is joined (after the
    lease is granted; the "joined" log line), as in one process (rule 7);
    listening first means none sent after that can miss it. Frames that
    arrive before, including those for the holder of a seat this join is
    refused (4409), and frames from this process (sent while this seat was
    not joined: its peer here saw no peer) are dropped.
    """
    inbox = session.open_inbox()

    def deliver(from_here: bool, message: ClusterMessage) -> None:
        stats = session.stats
        if from_here or not seat.joined or not seat.is_held or not isinstance(message, Frame):
            stats.frames_dropped["absent_peer"] += 1
            return
        try:
            inbox.push(message.data)
        except trio.WouldBlock:
            session.close(CloseCode.TOO_SLOW, "too slow: the inbox is full")
            stats.frames_dropped["peer_left"] += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            stats.frames_dropped["peer_left"] += 1
        else:
            stats.frames_relayed += 1
            stats.bytes_relayed += payload_size(message.data)

    def backplane_lost() -> None:
        # Frames from another process may have been lost: a seat whose peer is
        # not here ends (the client reconnects); a pair in this process goes on.
        if seat.peer() is None:
            session.close(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)

    def lease_lost() -> None:
        session.close(CloseCode.CONFLICT, "seat taken over while the backplane was out of reach")

    with trio.move_on_after(session.settings.backplane_wait):
        await backplane.wait_available()  # then listen() raises if it is still out of reach
    await backplane.listen(address, deliver, backplane_lost)
    if not await backplane.acquire(address, lease_lost):
        raise ProtocolError(CloseCode.CONFLICT, SEAT_TAKEN.format(seat.index))
    seat.join()
