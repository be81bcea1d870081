"""The WMBP handlers: a host on ``/CREATE``, clients on ``/{CODE}``.

The thin layer between :class:`~duorelay.session.Session` and the sans-IO
:mod:`duorelay.protocols.wmbp` (PROTOCOLS.md section 2). Each connection is a
session like any other (one nursery, one bounded outbox); the host room in the
registry says who is in the room.

Nothing here awaits another connection: every frame for someone else goes into
their outbox with ``send_nowait``. A full outbox means that receiver cannot keep
up, and it is closed with 4430 (rule 9), so one slow phone never stalls the
room, and a host that stops reading ends its room.
"""

from __future__ import annotations

import trio

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
from duorelay.rooms import HostRoom, NoFreeCode, Registry, RoomLocked
from duorelay.session import Frame, Session

TOO_SLOW = "too slow: the outbox is full"


async def host(session: Session, rooms: Registry[Session]) -> None:
    """Serve a WMBP host (``/CREATE``) until it stops or goes away.

    Sends ``state`` at once; then handles the host's messages (rules 1, 2, 5,
    8). Bad frames get an ``error`` and the connection stays. ``stop`` closes
    the host with 1001 "The game is done."; no free code or the rooms cap:
    4429. However the host ends, its code is freed at once and every client is
    closed with 4410 after the frames already in its outbox (rule 7).
    """
    settings = session.settings
    room: HostRoom[Session] = HostRoom(session)
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
                        code = rooms.register(room, settings.wmbp_max_rooms)
                    except NoFreeCode as error:
                        _tell(room, Error(str(error)))
                        # flush: the host gets the error before the close frame
                        session.close(CloseCode.TOO_MANY, str(error), flush=True)
                        return
                    room.prepare(message.max_players, message.name)
                    session.where = {"wmbp": "host", "code": code}
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
                    _send_to_clients(room, message.to, message.data)
                case None:
                    pass  # a server-to-host command: ignored, as WMBP does
    finally:
        rooms.unregister(room)
        for client in room.close():
            client.close(CloseCode.GONE, "the host closed the room", flush=True)


async def client(session: Session, rooms: Registry[Session], code: str) -> None:
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
        _tell(room, _state(room))
        raise ProtocolError(CloseCode.LOCKED, "the room is full or has started") from None
    session.where = {"code": code, "player": player}
    session.log("joined")
    _tell(room, PlayerJoined(player))
    _tell(room, _state(room))
    stats = session.stats
    try:
        # A kick or a drop cancels this loop (Session.close) before it reads
        # again: a removed client's later frames are never forwarded.
        while True:
            frame = await session.receive()
            if isinstance(frame, str):
                _tell(room, FromStr(player, frame))
            else:
                _tell(room, From(player, frame))
            stats.frames_relayed += 1
            stats.bytes_relayed += payload_size(frame)
    finally:
        if room.leave(player):
            # Told when the socket is gone: after a kick, that is once the
            # queued frames and the close frame went out (rule 5).
            session.at_end(lambda: _report_leave(room, player))


def _report_leave(room: HostRoom[Session], player: int) -> None:
    _tell(room, PlayerLeft(player))
    _tell(room, _state(room))


def _state(room: HostRoom[Session]) -> State:
    return State(
        name=room.name,
        players=tuple(room.clients),
        max_players=room.max_players,
        accept_conns=room.accept_conns,
    )


def _tell(room: HostRoom[Session], message: ServerMessage) -> None:
    """Put a message in the host's outbox; a host that cannot keep up gets 4430."""
    try:
        room.host.outbox.send_nowait(encode(message))
    except trio.WouldBlock:
        room.host.close(CloseCode.TOO_SLOW, TOO_SLOW)
    except (trio.ClosedResourceError, trio.BrokenResourceError):
        pass  # the host is leaving; its room is being closed


def _send_to_clients(room: HostRoom[Session], to: tuple[int, ...], data: Frame) -> None:
    """``to``/``to_str``: ``data`` to each listed client once (empty: every client).

    Ids not in the room are skipped. A client whose outbox is full is closed
    with 4430 and reported to the host as leaving at once (rule 9).
    """
    targets = dict.fromkeys(to) if to else list(room.clients)
    stats = room.host.stats
    for player in targets:
        client = room.clients.get(player)
        if client is None:
            continue
        try:
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
