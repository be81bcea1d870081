"""WMBP rooms whose host and clients are on different processes (shared backplane).

The host's process owns the room: its :class:`~duorelay.relay.rooms.HostRoom`,
the player ids, ``state``. Cluster-wide, a room is

- a lease on ``wmbp:{CODE}`` (the code is unique across the cluster; the
  lease's data is the room name, for ``GET /{CODE}`` on any process), and
- the host's address ``wmbp:{CODE}``, where clients on other processes send
  their join, their frames and their leaving.

A client on another process listens on an address of its own and is, in the
host's room, a :class:`RemoteClient`: a stand-in whose ``outbox`` and
``close`` turn into messages to that address. So :mod:`duorelay.relay.wmbp`
serves rooms the same way whoever is where (:class:`HostListener` applies the
messages sent to the host's address), and frames between a host and a client
on one process never go through Redis. The messages are those of
:mod:`duorelay.protocols.cluster` (``Join``, ``PlayerFrame``, ``Left`` to the
host; ``Accepted``, ``Locked``, ``Frame``, ``Close`` to a client).

:func:`host` and :func:`client` are the handlers the app uses with a shared
backplane; they call :mod:`duorelay.relay.wmbp`, never the other way round.

Failures: a client whose host's process no longer listens (it died or the
room ended) is closed with 4410 when it next sends, and with 4404 at the
join; a host that finds a remote client's address unheard reports it left.
When Redis is lost, remote clients are dropped from the room (reported as
left) and closed with 1013 on their own process; clients on the host's
process go on.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from functools import partial

import trio

from duorelay.core.backplane import UNAVAILABLE, Backplane, BackplaneUnavailable
from duorelay.core.mailboxes import Inbox
from duorelay.core.session import Peer, Session
from duorelay.observability import Stats
from duorelay.protocols import CloseCode, ProtocolError, payload_size
from duorelay.protocols.cluster import (
    Accepted,
    Close,
    ClusterMessage,
    Frame,
    Join,
    Left,
    Locked,
    PlayerFrame,
)
from duorelay.protocols.wmbp import PlayerJoined
from duorelay.relay import wmbp
from duorelay.relay.rooms import CODE_DRAWS, HostRoom, NoFreeCode, Registry, RoomLocked
from duorelay.transport import Frame as WireFrame

JOIN_TIMEOUT = 5.0
"""Seconds a client waits for the host's process to answer its join (then 1013)."""

ROOM_GONE = "the host closed the room"

MAX_REMEMBERED_CLOSES = 1024
"""Closed remote clients a host room remembers until their leave arrives."""


def room_key(code: str) -> str:
    """The lease key, and the host's address, of room ``code``."""
    return f"wmbp:{code}"


async def host(session: Session, rooms: Registry[Peer], backplane: Backplane) -> None:
    """:func:`duorelay.relay.wmbp.host` for a room whose clients may be on other
    processes: the host receives through an inbox and the code is a cluster
    lease (:class:`HostListener`)."""
    room: HostRoom[Peer] = HostRoom(HostThroughInbox(session))
    listener = HostListener(room, backplane, session.settings.backplane_wait)
    await wmbp.host(session, rooms, room, listener)


async def client(session: Session, rooms: Registry[Peer], code: str, backplane: Backplane) -> None:
    """:func:`duorelay.relay.wmbp.client` if room ``code`` is in this process,
    else :func:`remote_client`."""
    if rooms.find(code) is None:
        await remote_client(session, code, backplane)
    else:
        await wmbp.client(session, rooms, code)


class RemoteClient:
    """A client on another process, as its host's room sees it (a remote :class:`Peer`).

    ``outbox.send`` publishes a frame to the client's address, waiting while
    the process's publish queue is full (``send_nowait`` raises
    ``trio.WouldBlock`` then); ``close`` sends the close code for the client's
    process to apply. ``on_gone`` is called when a message finds nobody at the
    address (the client left, or its process died); ``on_close`` when the room
    closes it (the close message may be lost: the host's listener sends it
    again when the client is heard from).
    """

    remote = True

    def __init__(self, address: str, backplane: Backplane, stats: Stats) -> None:
        self.address = address
        self.backplane = backplane
        self.stats = stats
        self.outbox = self
        self.on_gone: Callable[[], None] = _nothing
        self.on_close: Callable[[Close], None] = _ignore

    def send_nowait(self, frame: WireFrame) -> None:
        try:
            self.backplane.send_nowait(self.address, Frame(frame), on_absent=self.on_gone)
        except BackplaneUnavailable:
            raise trio.ClosedResourceError from None  # the host's listener drops it

    def push(self, frame: WireFrame) -> None:
        """:meth:`send_nowait` (the room pushes only to its host)."""
        self.send_nowait(frame)

    async def send(self, frame: WireFrame) -> None:
        """Publish ``frame`` to the client, waiting while the publish queue is full."""
        try:
            await self.backplane.send(self.address, Frame(frame), on_absent=self.on_gone)
        except BackplaneUnavailable:
            raise trio.ClosedResourceError from None  # the host's listener drops it

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        message = Close(code, flush, reason)
        self.on_close(message)
        send_control(self.backplane, self.address, message)


def send_control(
    backplane: Backplane,
    address: str,
    message: ClusterMessage,
    on_absent: Callable[[], None] | None = None,
) -> None:
    """Send a control message, or drop it if the backplane refuses it: Redis is
    out of reach, or :data:`~duorelay.cluster.publisher.MAX_CONTROL` control
    messages already wait. A dropped close is sent again when the client is
    next heard from or Redis is back; a dropped join answer times out (1013 on
    the client's process); a dropped leave is found when the host next sends
    to the address."""
    with suppress(BackplaneUnavailable):
        backplane.send_nowait(address, message, on_absent=on_absent)


def _nothing() -> None:
    pass


def _ignore(message: Close) -> None:
    pass


class HostThroughInbox:
    """The host as its room sees it when clients may be on other processes.

    Messages for the host arrive in bursts from the backplane, which cannot
    wait for room in the host's outbox; so every message for the host, from
    here or elsewhere (one path keeps their order), goes through the host's
    :class:`~duorelay.core.mailboxes.Inbox`. What cannot wait (remote clients'
    frames, joins and leaves) is pushed into it (``max_burst`` frames or
    ``outbox_size``, the larger, and ``outbox_bytes`` bytes), and a full inbox
    is the 4430 of rule 9; clients of this process wait until it is empty
    and then for room in the outbox (``Inbox.send``): they are back-pressured
    and never take the remote clients' room.
    """

    remote = False

    def __init__(self, session: Session) -> None:
        self.session = session
        self.outbox: Inbox = session.open_inbox()
        self.stats = session.stats

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        self.session.close(code, reason, flush=flush)


class HostListener:
    """The host's side of its room in the cluster (a :class:`~duorelay.relay.wmbp.Listing`).

    :meth:`register` makes the room's code unique cluster-wide (a lease
    holding the room name) and listens on the room's address, where
    :meth:`deliver` applies what clients on other processes send: joins,
    frames, leaving. ``wait``: seconds :meth:`register` waits for the
    backplane while it connects.
    """

    def __init__(self, room: HostRoom[Peer], backplane: Backplane, wait: float) -> None:
        self.room = room
        self.backplane = backplane
        self.wait = wait
        self.key = ""
        self._players: dict[str, int] = {}  # remote clients' addresses -> player ids
        # Remote clients the room closed, until their leave arrives: their close
        # message is sent again when they are heard from or Redis is back.
        self._closed: dict[int, tuple[str, Close]] = {}

    async def register(self, rooms: Registry[Peer], max_rooms: int, name: str) -> str:
        """Register the room here and in the cluster; returns its code.

        Waits for the backplane first while it connects (``wait`` seconds at
        most). Raises :class:`~duorelay.relay.rooms.NoFreeCode` or
        :class:`~duorelay.core.backplane.BackplaneUnavailable`.
        """
        with trio.move_on_after(self.wait):
            await self.backplane.wait_available()  # then acquire() raises if still unavailable
        for _ in range(CODE_DRAWS):
            code = rooms.register(self.room, max_rooms)
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

    def deliver(self, from_here: bool, message: ClusterMessage) -> None:
        """Apply a message from a client on another process (the backplane's
        ``deliver``; synchronous)."""
        room = self.room
        match message:
            case Join(address=address):
                self._join(address)
            case PlayerFrame(player=player, data=data):
                # A kicked or dropped client's later frames are not forwarded.
                client = room.clients.get(player)
                if client is not None and client.remote:
                    wmbp.tell_from(room, player, data)
                    room.host.stats.frames_relayed += 1
                    room.host.stats.bytes_relayed += payload_size(data)
                elif player in self._closed:
                    address, close = self._closed[player]
                    send_control(self.backplane, address, close, partial(self.left, player))
            case Left(address=address):
                self.left(self._players.get(address, 0))

    def _join(self, address: str) -> None:
        room = self.room
        client = RemoteClient(address, self.backplane, room.host.stats)
        try:
            player = room.join(client)
        except RoomLocked:
            send_control(self.backplane, address, Locked())
            wmbp.tell(room, wmbp.state_of(room))
            return
        self._players[address] = player
        client.on_gone = partial(self.left, player)
        client.on_close = partial(self._remember_close, player, address)
        send_control(self.backplane, address, Accepted(player))
        wmbp.tell(room, PlayerJoined(player))
        wmbp.tell(room, wmbp.state_of(room))

    def left(self, player: int) -> None:
        """A remote client's socket is gone, or its address is unheard."""
        self._forget(player)
        if self.room.leave(player):
            wmbp.report_leave(self.room, player)

    def _forget(self, player: int) -> None:
        self._closed.pop(player, None)
        for address, known in list(self._players.items()):
            if known == player:
                del self._players[address]

    def _remember_close(self, player: int, address: str, message: Close) -> None:
        self._closed[player] = (address, message)
        if len(self._closed) > MAX_REMEMBERED_CLOSES:
            del self._closed[next(iter(self._closed))]  # the oldest

    def backplane_lost(self) -> None:
        """Messages from remote clients may have been lost: drop them all, and
        close them with 1013 (sent when Redis is back, if their own process
        did not lose Redis too)."""
        for player, client in list(self.room.clients.items()):
            if client.remote:
                self.room.drop(player)
                client.close(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)
                wmbp.report_leave(self.room, player)

    def backplane_back(self) -> None:
        """Redis is back: send the close messages that may have been lost."""
        for player, (address, message) in list(self._closed.items()):
            send_control(self.backplane, address, message, partial(self.left, player))

    def _lease_lost(self) -> None:
        self.room.host.close(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)


async def remote_client(session: Session, code: str, backplane: Backplane) -> None:
    """Serve a WMBP client whose room's host is on another process.

    Closes with 4404 if no process listens for room ``code``, 4423 if the room
    is locked, 1013 if the backplane is still out of reach ``backplane_wait``
    seconds after the join (the join waits while it connects), if the join
    cannot be queued (too many control messages wait), or if the host's process
    does not answer the join within :data:`JOIN_TIMEOUT` seconds, 4410 if the
    host's process stops listening later. Frames go to the host as
    ``from``/``from_str``; its ``leave`` is sent when the socket is gone.
    """
    host_address = room_key(code)
    address = f"wmbp:{code}:client:{backplane.node}:{session.id}"
    inbox = session.open_inbox()
    answered = trio.Event()
    answer: dict[str, int | bool] = {}

    def deliver(from_here: bool, message: ClusterMessage) -> None:
        match message:
            case Accepted(player=player):
                answer["player"] = player
                answered.set()
            case Locked():
                answer["locked"] = True
                answered.set()
            case Frame(data=data):
                try:
                    inbox.push(data)
                except trio.WouldBlock:
                    session.close(CloseCode.TOO_SLOW, "too slow: the inbox is full")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            case Close(code=close_code, flush=flush, reason=reason):
                session.close(close_code, reason, flush=flush)

    def host_gone() -> None:
        if answered.is_set():
            session.close(CloseCode.GONE, ROOM_GONE, flush=True)
        else:
            answer["absent"] = True
            answered.set()

    def lost() -> None:
        session.close(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)

    try:
        with trio.move_on_after(session.settings.backplane_wait):
            await backplane.wait_available()  # then listen() raises if still unavailable
        await backplane.listen(address, deliver, lost)
        try:
            backplane.send_nowait(host_address, Join(address), session, host_gone)
            # From now on the host may count this client in: tell it when the
            # socket is gone, whatever happens next.
            session.at_end(partial(send_control, backplane, host_address, Left(address)))
            with trio.move_on_after(JOIN_TIMEOUT):
                await answered.wait()
            if "absent" in answer:
                raise ProtocolError(CloseCode.NOT_FOUND, "no room with this code")
            if "locked" in answer:
                raise ProtocolError(CloseCode.LOCKED, "the room is full or has started")
            if "player" not in answer:
                raise ProtocolError(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)
            player = int(answer["player"])
            session.where = {"room": code, "player": player}
            session.log("joined")
            while True:
                frame = await session.receive()
                await backplane.send(host_address, PlayerFrame(player, frame), session, host_gone)
        finally:
            backplane.unlisten(address)
    except BackplaneUnavailable:
        raise ProtocolError(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE) from None
