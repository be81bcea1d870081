"""The WMBP handlers: a host on ``/CREATE``, clients on ``/{CODE}``.

The thin layer between :class:`~duorelay.core.session.Session` and the sans-IO
:mod:`duorelay.protocols.wmbp` (docs/protocols.md section 2). Each connection is a
session like any other (one nursery, one bounded outbox); the host room in the
registry says who is in the room.

Nothing here awaits another connection: every frame for someone else goes into
their outbox with ``send_nowait``. A full outbox means that receiver cannot keep
up, and it is closed with 4430 (rule 9), so one slow phone never stalls the
room, and a host that stops reading ends its room.

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
from duorelay.transport import Frame

TOO_SLOW = "too slow: the outbox is full"


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
    8). Bad frames get an ``error`` and the connection stays. ``stop`` closes
    the host with 1001 "The game is done."; no free code or the rooms cap:
    4429; the backplane still out of reach ``backplane_wait`` seconds after
    ``prepare`` (it waits while the backplane connects): 1013. However the host
    ends, its code is freed at once and every client is closed with 4410
    after the frames already in its outbox (rule 7).
    """
    settings = session.settings
    room = room if room is not None else HostRoom(session)
    listing = listing if listing is not None else LocalListing(room)
    session.where = {"wmbp": "host"}
    tell(room, state_of(room))
    try:
        while True:
            try:
                message = decode(await session.receive())
            except BadMessage as error:
                tell(room, Error(str(error)))
                continue
            match message:
                case Prepare() if room.code is not None:
                    tell(room, PrepareReply(room.code))
                case Prepare() if message.max_players > settings.wmbp_max_players:
                    tell(
                        room,
                        Error(f"prepare: max_players is over {settings.wmbp_max_players}"),
                    )
                case Prepare():
                    try:
                        code = await listing.register(rooms, settings.wmbp_max_rooms, message.name)
                    except NoFreeCode as error:
                        tell(room, Error(str(error)))
                        # flush: the host gets the error before the close frame
                        session.close(CloseCode.TOO_MANY, str(error), flush=True)
                        return
                    except BackplaneUnavailable:
                        tell(room, Error(UNAVAILABLE))
                        session.close(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE, flush=True)
                        return
                    room.prepare(message.max_players, message.name)
                    session.where = {"wmbp": "host", "room": code}
                    session.log("prepared", max_players=message.max_players)
                    tell(room, state_of(room))
                    tell(room, PrepareReply(code))
                case Start():
                    room.start()
                    tell(room, state_of(room))
                case Kick():
                    kicked = room.kick(message.player)
                    if kicked is not None:
                        kicked.close(CloseCode.NORMAL, "kicked", flush=True)
                    tell(room, state_of(room))
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
    ``state`` (rule 6).
    """
    room = rooms.find(code)
    if room is None:
        raise ProtocolError(CloseCode.NOT_FOUND, "no room with this code")
    try:
        player = room.join(session)
    except RoomLocked:
        tell(room, state_of(room))
        raise ProtocolError(CloseCode.LOCKED, "the room is full or has started") from None
    session.where = {"room": code, "player": player}
    session.log("joined")
    tell(room, PlayerJoined(player))
    tell(room, state_of(room))
    stats = session.stats
    try:
        # A kick or a drop cancels this loop (Session.close) before it reads
        # again: a removed client's later frames are never forwarded.
        while True:
            frame = await session.receive()
            tell_from(room, player, frame)
            stats.frames_relayed += 1
            stats.bytes_relayed += payload_size(frame)
    finally:
        if room.leave(player):
            # Told when the socket is gone: after a kick, that is once the
            # queued frames and the close frame went out (rule 5).
            session.at_end(lambda: report_leave(room, player))


def tell_from(room: HostRoom[Peer], player: int, frame: Frame) -> None:
    tell(room, FromStr(player, frame) if isinstance(frame, str) else From(player, frame))


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
    """Put a message in the host's outbox; a host that cannot keep up gets 4430."""
    try:
        room.host.outbox.send_nowait(encode(message))
    except trio.WouldBlock:
        room.host.close(CloseCode.TOO_SLOW, TOO_SLOW)
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass  # the host is leaving; its room is being closed


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
