"""The WMBP handlers: a host on ``/CREATE``, clients on ``/{CODE}``.

The thin layer between :class:`~duorelay.core.session.Session` and the sans-IO
:mod:`duorelay.protocols.wmbp` (docs/protocols.md section 2). Each connection is a
session like any other (one nursery, one bounded outbox); the host room in the
registry says who is in the room.

Flow control (rule 9) is not the same both ways:

- **Host to clients:** the host's frames go into each client's outbox with
  ``send_nowait``; a full outbox means that client cannot keep up, and it is
  closed with 4430, so one slow phone never stalls the room.
- **Clients to the host:** a client's reader waits for room in the host's
  outbox (:func:`to_host`), as a Kamon sender waits for its peer's, so a phone
  sending fast slows only itself (Hypercorn stops reading its socket). The
  host is the bottleneck: while it reads slowly every sending client waits
  its turn (first come, first served). A host whose outbox stays full while
  a client waits longer than ``host_stall_timeout`` seconds is closed with
  4430, which ends its room (rule 7).
- **The server's own messages to the host** (``state``, ``player_joined``,
  ``error``...) take the same path, so they stay in order with the clients'
  ``from``/``from_str``. Those caused by a connection's reader wait in that
  reader like its frames: the host's answers to its own commands, a client's
  ``player_joined`` and ``state``. Those sent from where nobody can wait (a
  client's leave, reported when its socket is gone; a client dropped as too
  slow; messages from other processes) are pushed (:func:`tell`): they take
  their place behind the waiting frames, in a reserve of as many frames and
  bytes again as the outbox holds (a few per client, each client leaves
  once); a host whose reserve is full too is closed with 4430 at once.

With a shared backplane, a room's code is unique across the cluster and
clients on other processes take part through it: :mod:`duorelay.cluster.wmbp`
calls :func:`host` with a room whose host receives through an inbox and a
:class:`Listing` that registers the code cluster-wide, and puts stand-ins for
remote clients (``remote`` peers) into the room, so everything below holds for
them too. This module never imports ``cluster/`` (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from typing import Protocol

import trio

from duorelay.core.backplane import UNAVAILABLE, BackplaneUnavailable
from duorelay.core.session import Peer, Session
from duorelay.protocols import CloseCode, ProtocolError, payload_size
from duorelay.protocols.wmbp import (
    BadMessage,
    Error,
    From,
    FromStr,
    Kick,
    PlayerJoined,
    PlayerLeft,
    Prepare,
    PrepareReply,
    ServerMessage,
    Start,
    State,
    Stop,
    To,
    ToStr,
    decode,
    encode,
)
from duorelay.relay.rooms import HostRoom, NoFreeCode, Registry, RoomLocked
from duorelay.settings import Settings
from duorelay.transport import Frame

TOO_SLOW = "too slow: the outbox is full"
STALLED = "too slow: the outbox stayed full for {:g} s"


class Listing(Protocol):
    """How a host room's code is made findable: in this process
    (:class:`LocalListing`) or across the cluster too
    (:class:`duorelay.cluster.wmbp.HostListener`)."""

    async def register(self, rooms: Registry[Peer], max_rooms: int, name: str) -> str:
        """Register the room; returns its code. Raises
        :class:`~duorelay.relay.rooms.NoFreeCode` or
        :class:`~duorelay.core.backplane.BackplaneUnavailable`."""
        ...

    def unregister(self) -> None:
        """Give up what :meth:`register` took beyond the registry; synchronous."""
        ...


class LocalListing:
    """A host room findable in this process only (the in-process backplane)."""

    def __init__(self, room: HostRoom[Peer]) -> None:
        self.room = room

    async def register(self, rooms: Registry[Peer], max_rooms: int, name: str) -> str:
        return rooms.register(self.room, max_rooms)

    def unregister(self) -> None:
        pass  # host() unregisters the room from the registry itself


async def host(
    session: Session,
    rooms: Registry[Peer],
    room: HostRoom[Peer] | None = None,
    listing: Listing | None = None,
) -> None:
    """Serve a WMBP host (``/CREATE``) until it stops or goes away.

    ``room`` is the host's room (default: a new one whose host is ``session``)
    and ``listing`` how its code is registered (default: in this process).

    Sends ``state`` at once; then handles the host's messages (rules 1, 2, 5,
    8). Bad frames get an ``error`` and the connection stays. The answers
    wait for room in the host's own outbox (:func:`to_host`: a host that
    stops reading is closed with 4430 after ``host_stall_timeout``). ``stop``
    closes the host with 1001 "The game is done."; no free code or the rooms
    cap: 4429; the backplane still out of reach ``backplane_wait`` seconds
    after ``prepare`` (it waits while the backplane connects): 1013. However
    the host ends, its code is freed at once and every client is closed with 4410
    after the frames already in its outbox (rule 7).
    """
    settings = session.settings
    room = room if room is not None else HostRoom(session)
    listing = listing if listing is not None else LocalListing(room)
    session.where = {"wmbp": "host"}

    async def answer(message: ServerMessage) -> None:
        await tell_waiting(room, message, settings)

    await answer(state_of(room))
    try:
        while True:
            try:
                message = decode(await session.receive())
            except BadMessage as error:
                await answer(Error(str(error)))
                continue
            match message:
                case Prepare() if room.code is not None:
                    await answer(PrepareReply(room.code))
                case Prepare() if message.max_players > settings.wmbp_max_players:
                    await answer(
                        Error(f"prepare: max_players is over {settings.wmbp_max_players}")
                    )
                case Prepare():
                    try:
                        code = await listing.register(rooms, settings.wmbp_max_rooms, message.name)
                    except NoFreeCode as error:
                        await answer(Error(str(error)))
                        # flush: the host gets the error before the close frame
                        session.close(CloseCode.TOO_MANY, str(error), flush=True)
                        return
                    except BackplaneUnavailable:
                        await answer(Error(UNAVAILABLE))
                        session.close(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE, flush=True)
                        return
                    room.prepare(message.max_players, message.name)
                    session.where = {"wmbp": "host", "room": code}
                    session.log("prepared", max_players=message.max_players)
                    await answer(state_of(room))
                    await answer(PrepareReply(code))
                case Start():
                    room.start()
                    await answer(state_of(room))
                case Kick():
                    kicked = room.kick(message.player)
                    if kicked is not None:
                        kicked.close(CloseCode.NORMAL, "kicked", flush=True)
                    await answer(state_of(room))
                case Stop():
                    raise ProtocolError(CloseCode.GOING_AWAY, "The game is done.")
                case To() | ToStr():
                    await _send_to_clients(room, message.to, message.data)
                case None:
                    pass  # a server-to-host command: ignored, as WMBP does
    finally:
        rooms.unregister(room)
        listing.unregister()
        for client in room.close():
            client.close(CloseCode.GONE, "the host closed the room", flush=True)


async def client(session: Session, rooms: Registry[Peer], code: str) -> None:
    """Serve a WMBP client of room ``code`` until it goes away.

    Closes with 4404 if no room has that code and 4423 if the room is full or
    started (the host then gets ``state`` only, rule 3). Once joined, the host
    gets ``player_joined`` and ``state``; each client frame reaches the host as
    ``from``/``from_str`` in order (rule 4); leaving sends ``player_left`` and
    ``state`` (rule 6). Every message for the host waits here for room in its
    outbox (:func:`to_host`): this client is back-pressured by the host, and
    a host that keeps it waiting over ``host_stall_timeout`` is closed with
    4430 (then this client gets 4410).
    """
    settings = session.settings
    room = rooms.find(code)
    if room is None:
        raise ProtocolError(CloseCode.NOT_FOUND, "no room with this code")
    try:
        player = room.join(session)
    except RoomLocked:
        await tell_waiting(room, state_of(room), settings)
        raise ProtocolError(CloseCode.LOCKED, "the room is full or has started") from None
    stats = session.stats
    try:
        session.where = {"room": code, "player": player}
        session.log("joined")
        await tell_waiting(room, PlayerJoined(player), settings)
        await tell_waiting(room, state_of(room), settings)
        # A kick or a drop cancels this loop (Session.close) before it reads
        # again: a removed client's later frames are never forwarded.
        while True:
            frame = await session.receive()
            if await to_host(room, encode(from_message(player, frame)), settings):
                stats.frames_relayed += 1
                stats.bytes_relayed += payload_size(frame)
    finally:
        if room.leave(player):
            # Told when the socket is gone: after a kick, that is once the
            # queued frames and the close frame went out (rule 5).
            session.at_end(lambda: report_leave(room, player))


def from_message(player: int, frame: Frame) -> From | FromStr:
    """``from_str`` for a text frame, ``from`` for a binary one (rule 4)."""
    return FromStr(player, frame) if isinstance(frame, str) else From(player, frame)


def tell_from(room: HostRoom[Peer], player: int, frame: Frame) -> None:
    """:func:`tell` the host a client's frame (for a sender that cannot wait)."""
    tell(room, from_message(player, frame))


def report_leave(room: HostRoom[Peer], player: int) -> None:
    tell(room, PlayerLeft(player))
    tell(room, state_of(room))


def state_of(room: HostRoom[Peer]) -> State:
    return State(
        name=room.name,
        players=tuple(room.clients),
        max_players=room.max_players,
        accept_conns=room.accept_conns,
    )


def tell(room: HostRoom[Peer], message: ServerMessage) -> None:
    """Push a message into the host's outbox, from where nobody can wait.

    It takes its place behind frames already waiting for room
    (``FrameSink.push``: the outbox's reserve, or the host's inbox with a
    shared backplane); when that is full too the host cannot keep up and is
    closed with 4430 (rule 9). Dropped if the host is leaving.
    """
    try:
        room.host.outbox.push(encode(message))
    except trio.WouldBlock:
        room.host.close(CloseCode.TOO_SLOW, TOO_SLOW)
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass  # the host is leaving; its room is being closed


async def tell_waiting(room: HostRoom[Peer], message: ServerMessage, settings: Settings) -> None:
    """:func:`to_host` for a server message: the reader that caused it waits."""
    await to_host(room, encode(message), settings)


async def to_host(room: HostRoom[Peer], frame: Frame, settings: Settings) -> bool:
    """Put ``frame`` into the host's outbox, waiting for room; whether it went in.

    The calling reader waits (first come, first served, with every other
    waiting sender): its connection is back-pressured (rule 9). If it waits
    longer than ``settings.host_stall_timeout`` seconds, the host is closed
    with 4430 (:data:`STALLED`; its handler's ``finally`` then closes the
    clients with 4410, rule 7) and the frame is dropped, as it is when the
    host leaves meanwhile (its outbox closes: every waiting sender is woken
    at once). Cancelled (this connection is closing), the frame is not sent.
    """
    outbox = room.host.outbox
    try:
        try:
            outbox.send_nowait(frame)  # the fast path: no second scheduler trip
            return True
        except trio.WouldBlock:
            pass
        stall = settings.host_stall_timeout
        with trio.move_on_after(stall):
            await outbox.send(frame)
            return True
        room.host.close(CloseCode.TOO_SLOW, STALLED.format(stall))
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass  # the host is leaving; its room is being closed
    return False


async def _send_to_clients(room: HostRoom[Peer], to: tuple[int, ...], data: Frame) -> None:
    """``to``/``to_str``: ``data`` to each listed client once (empty: every client).

    Ids not in the room are skipped. A client whose outbox is full is closed
    with 4430 and reported to the host as leaving at once (rule 9). A client
    on another process gets ``data`` through the process's publish queue,
    waiting while it is full (back-pressure on the host, who is the sender);
    if that client cannot keep up, its own process closes it with 4430.
    """
    targets = dict.fromkeys(to) if to else list(room.clients)
    stats = room.host.stats
    for player in targets:
        client = room.clients.get(player)
        if client is None:
            continue
        try:
            if client.remote:
                await client.outbox.send(data)
            else:
                client.outbox.send_nowait(data)
        except trio.WouldBlock:
            room.drop(player)
            client.close(CloseCode.TOO_SLOW, TOO_SLOW)
            report_leave(room, player)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the client is leaving; its handler reports it
        else:
            stats.frames_relayed += 1
            stats.bytes_relayed += payload_size(data)
