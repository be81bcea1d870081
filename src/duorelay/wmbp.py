"""The WMBP handlers: a host on ``/CREATE``, clients on ``/{CODE}``.

The thin layer between :class:`~duorelay.session.Session` and the sans-IO
:mod:`duorelay.protocols.wmbp` (PROTOCOLS.md section 2). Each connection is a
session like any other (one nursery, one bounded outbox); the host room in the
registry says who is in the room.

Nothing here awaits another connection: every frame for someone else goes into
their outbox with ``send_nowait``. A full outbox means that receiver cannot keep
up, and it is closed with 4430 (rule 9), so one slow phone never stalls the
room, and a host that stops reading ends its room.

With a shared backplane, a room's code is unique across the cluster and
clients on other processes take part through it (:mod:`duorelay.wmbp_cluster`):
in the room they are :class:`~duorelay.wmbp_cluster.RemoteClient` stand-ins,
so everything below holds for them too.
"""

from __future__ import annotations

from contextlib import suppress
from functools import partial

import trio

from duorelay.backplane import UNAVAILABLE, Backplane, BackplaneUnavailable, unpack_frame
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
from duorelay.rooms import CODE_DRAWS, HostRoom, NoFreeCode, Registry, RoomLocked
from duorelay.session import Frame, Peer, Session
from duorelay.wmbp_cluster import (
    RemoteClient,
    player_bytes,
    player_of,
    remote_client,
    room_key,
    send_close,
)

TOO_SLOW = "too slow: the outbox is full"

MAX_REMEMBERED_CLOSES = 1024
"""Closed remote clients a host room remembers until their leave arrives."""


async def host(session: Session, rooms: Registry[Peer], backplane: Backplane) -> None:
    """Serve a WMBP host (``/CREATE``) until it stops or goes away.

    Sends ``state`` at once; then handles the host's messages (rules 1, 2, 5,
    8). Bad frames get an ``error`` and the connection stays. ``stop`` closes
    the host with 1001 "The game is done."; no free code or the rooms cap:
    4429; the backplane out of reach at ``prepare``: 1013. However the host
    ends, its code is freed at once and every client is closed with 4410
    after the frames already in its outbox (rule 7).
    """
    settings = session.settings
    room: HostRoom[Peer] = HostRoom(_HostThroughInbox(session) if backplane.shared else session)
    listener = HostListener(room, backplane)
    session.where = {"wmbp": "host"}
    _tell(room, _state(room))
    try:
        while True:
            try:
                message = decode(await session.receive())
            except BadMessage as error:
                _tell(room, Error(str(error)))
                continue
            match message:
                case Prepare() if room.code is not None:
                    _tell(room, PrepareReply(room.code))
                case Prepare() if message.max_players > settings.wmbp_max_players:
                    _tell(
                        room,
                        Error(f"prepare: max_players is over {settings.wmbp_max_players}"),
                    )
                case Prepare():
                    try:
                        code = await listener.register(
                            rooms, settings.wmbp_max_rooms, message.name
                        )
                    except NoFreeCode as error:
                        _tell(room, Error(str(error)))
                        # flush: the host gets the error before the close frame
                        session.close(CloseCode.TOO_MANY, str(error), flush=True)
                        return
                    except BackplaneUnavailable:
                        _tell(room, Error(UNAVAILABLE))
                        session.close(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE, flush=True)
                        return
                    room.prepare(message.max_players, message.name)
                    session.where = {"wmbp": "host", "room": code}
                    session.log("prepared", max_players=message.max_players)
                    _tell(room, _state(room))
                    _tell(room, PrepareReply(code))
                case Start():
                    room.start()
                    _tell(room, _state(room))
                case Kick():
                    kicked = room.kick(message.player)
                    if kicked is not None:
                        kicked.close(CloseCode.NORMAL, "kicked", flush=True)
                    _tell(room, _state(room))
                case Stop():
                    raise ProtocolError(CloseCode.GOING_AWAY, "The game is done.")
                case To() | ToStr():
                    await _send_to_clients(room, message.to, message.data)
                case None:
                    pass  # a server-to-host command: ignored, as WMBP does
    finally:
        rooms.unregister(room)
        listener.unregister()
        for client in room.close():
            client.close(CloseCode.GONE, "the host closed the room", flush=True)


async def client(session: Session, rooms: Registry[Peer], code: str, backplane: Backplane) -> None:
    """Serve a WMBP client of room ``code`` until it goes away.

    Closes with 4404 if no room has that code and 4423 if the room is full or
    started (the host then gets ``state`` only, rule 3). Once joined, the host
    gets ``player_joined`` and ``state``; each client frame reaches the host as
    ``from``/``from_str`` in order (rule 4); leaving sends ``player_left`` and
    ``state`` (rule 6). A room whose host is on another process is served by
    :func:`~duorelay.wmbp_cluster.remote_client`.
    """
    room = rooms.find(code)
    if room is None:
        if backplane.shared:
            await remote_client(session, code, backplane)
            return
        raise ProtocolError(CloseCode.NOT_FOUND, "no room with this code")
    try:
        player = room.join(session)
    except RoomLocked:
        _tell(room, _state(room))
        raise ProtocolError(CloseCode.LOCKED, "the room is full or has started") from None
    session.where = {"room": code, "player": player}
    session.log("joined")
    _tell(room, PlayerJoined(player))
    _tell(room, _state(room))
    stats = session.stats
    try:
        # A kick or a drop cancels this loop (Session.close) before it reads
        # again: a removed client's later frames are never forwarded.
        while True:
            frame = await session.receive()
            _tell_from(room, player, frame)
            stats.frames_relayed += 1
            stats.bytes_relayed += payload_size(frame)
    finally:
        if room.leave(player):
            # Told when the socket is gone: after a kick, that is once the
            # queued frames and the close frame went out (rule 5).
            session.at_end(lambda: _report_leave(room, player))


def _tell_from(room: HostRoom[Peer], player: int, frame: Frame) -> None:
    _tell(room, FromStr(player, frame) if isinstance(frame, str) else From(player, frame))


def _report_leave(room: HostRoom[Peer], player: int) -> None:
    _tell(room, PlayerLeft(player))
    _tell(room, _state(room))


def _state(room: HostRoom[Peer]) -> State:
    return State(
        name=room.name,
        players=tuple(room.clients),
        max_players=room.max_players,
        accept_conns=room.accept_conns,
    )


def _tell(room: HostRoom[Peer], message: ServerMessage) -> None:
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
            if isinstance(client, RemoteClient):
                await client.send(data)
            else:
                client.outbox.send_nowait(data)
        except trio.WouldBlock:
            room.drop(player)
            client.close(CloseCode.TOO_SLOW, TOO_SLOW)
            _report_leave(room, player)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the client is leaving; its handler reports it
        else:
            stats.frames_relayed += 1
            stats.bytes_relayed += payload_size(data)


class _HostThroughInbox:
    """The host as its room sees it when clients may be on other processes.

    Messages for the host arrive in bursts from the backplane, which cannot
    wait for room in the host's outbox; so every message for the host, from
    here or elsewhere (one path keeps their order), goes through the host's
    inbox (``max_burst`` frames or ``outbox_size``, the larger), and a full
    inbox is the 4430 of rule 9.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.outbox = session.open_inbox()
        self.stats = session.stats

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        self.session.close(code, reason, flush=flush)


class HostListener:
    """The host's side of its room in the cluster (a shared backplane only).

    :meth:`register` makes the room's code unique cluster-wide (a lease
    holding the room name) and listens on the room's address, where
    :meth:`deliver` applies what clients on other processes send: joins,
    frames, leaving (message table in :mod:`duorelay.wmbp_cluster`).
    """

    def __init__(self, room: HostRoom[Peer], backplane: Backplane) -> None:
        self.room = room
        self.backplane = backplane
        self.key = ""
        self._players: dict[str, int] = {}  # remote clients' addresses -> player ids
        # Remote clients the room closed, until their leave arrives: their close
        # message is sent again when they are heard from or Redis is back.
        self._closed: dict[int, tuple[str, bytes]] = {}

    async def register(self, rooms: Registry[Peer], max_rooms: int, name: str) -> str:
        """Register the room here and, with a shared backplane, in the cluster.

        Raises :class:`~duorelay.rooms.NoFreeCode` or
        :class:`~duorelay.backplane.BackplaneUnavailable`.
        """
        for _ in range(CODE_DRAWS):
            code = rooms.register(self.room, max_rooms)
            if not self.backplane.shared:
                return code
            key = room_key(code)
            try:
                if await self.backplane.acquire(key, self._lease_lost, name.encode()):
                    self.key = key
                    await self.backplane.listen(
                        key, self.deliver, self.backplane_lost, self.backplane_back
                    )
                    return code
            except BaseException:  # cleaned up, then re-raised (trio.Cancelled included)
                rooms.unregister(self.room)
                raise
            rooms.unregister(self.room)  # the code is taken on another process
        raise NoFreeCode("no free room code")

    def unregister(self) -> None:
        """Give up the room's address and code in the cluster; synchronous."""
        if self.key:
            self.backplane.unlisten(self.key)
            self.backplane.release(self.key)
            self.key = ""

    def deliver(self, from_here: bool, kind: bytes, payload: bytes) -> None:
        room = self.room
        match kind:
            case b"J":
                self._join(payload.decode())
            case b"t" | b"b":
                player = player_of(payload)
                # A kicked or dropped client's later frames are not forwarded.
                if isinstance(room.clients.get(player), RemoteClient):
                    data = payload[4:]
                    _tell_from(room, player, unpack_frame(kind, data))
                    room.host.stats.frames_relayed += 1
                    room.host.stats.bytes_relayed += len(data)
                elif player in self._closed:
                    address, close = self._closed[player]
                    send_close(self.backplane, address, close, lambda: self.left(player))
            case b"Q":
                self.left(self._players.get(payload.decode(), 0))

    def _join(self, address: str) -> None:
        room = self.room
        client = RemoteClient(address, self.backplane, room.host.stats)
        try:
            player = room.join(client)
        except RoomLocked:
            self._answer(address, b"L", b"")
            _tell(room, _state(room))
            return
        self._players[address] = player
        client.on_gone = lambda: self.left(player)
        client.on_close = lambda payload: self._remember_close(player, address, payload)
        self._answer(address, b"A", player_bytes(player))
        _tell(room, PlayerJoined(player))
        _tell(room, _state(room))

    def _answer(self, address: str, kind: bytes, payload: bytes) -> None:
        # if Redis is lost, the client's join times out: 1013 on its process
        with suppress(BackplaneUnavailable):
            self.backplane.send_nowait(address, kind, payload, control=True)

    def left(self, player: int) -> None:
        """A remote client's socket is gone, or its address is unheard."""
        self._forget(player)
        if self.room.leave(player):
            _report_leave(self.room, player)

    def _forget(self, player: int) -> None:
        self._closed.pop(player, None)
        for address, known in list(self._players.items()):
            if known == player:
                del self._players[address]

    def _remember_close(self, player: int, address: str, payload: bytes) -> None:
        self._closed[player] = (address, payload)
        if len(self._closed) > MAX_REMEMBERED_CLOSES:
            del self._closed[next(iter(self._closed))]  # the oldest

    def backplane_lost(self) -> None:
        """Messages from remote clients may have been lost: drop them all, and
        close them with 1013 (sent when Redis is back, if their own process
        did not lose Redis too)."""
        for player, client in list(self.room.clients.items()):
            if isinstance(client, RemoteClient):
                self.room.drop(player)
                client.close(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)
                _report_leave(self.room, player)

    def backplane_back(self) -> None:
        """Redis is back: send the close messages that may have been lost."""
        for player, (address, payload) in list(self._closed.items()):
            send_close(self.backplane, address, payload, partial(self.left, player))

    def _lease_lost(self) -> None:
        self.room.host.close(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)
