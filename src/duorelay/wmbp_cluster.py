"""WMBP rooms whose host and clients are on different processes (shared backplane).

The host's process owns the room: its :class:`~duorelay.rooms.HostRoom`, the
player ids, ``state``. Cluster-wide, a room is

- a lease on ``wmbp:{CODE}`` (the code is unique across the cluster; the
  lease's data is the room name, for ``GET /{CODE}`` on any process), and
- the host's address ``wmbp:{CODE}``, where clients on other processes send
  their join, their frames and their leaving.

A client on another process listens on an address of its own and is, in the
host's room, a :class:`RemoteClient`: a stand-in whose ``outbox`` and
``close`` turn into messages to that address. So :mod:`duorelay.wmbp` serves
rooms the same way whoever is where (its ``HostListener`` applies the
messages sent to the host's address), and frames between a host and a
client on one process never go through Redis.

Messages (one kind byte, then the payload; a player id is 4 bytes, big-endian):

=========  ==========================  ==============================================
to         kind                        payload
=========  ==========================  ==============================================
host       ``J`` join                  the client's address (UTF-8)
host       ``t`` / ``b`` frame         player id + text (UTF-8) / binary frame
host       ``Q`` left                  the client's address (its socket is gone)
client     ``A`` accepted / ``L``      player id / nothing (the room is locked: 4423)
client     ``t`` / ``b`` frame         text (UTF-8) / binary frame from the host
client     ``C`` close                 close code (2 bytes), flush (1 byte), reason
=========  ==========================  ==============================================

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

import trio

from duorelay.backplane import (
    UNAVAILABLE,
    Backplane,
    BackplaneUnavailable,
    pack_frame,
    unpack_frame,
)
from duorelay.metrics import Stats
from duorelay.protocols import CloseCode, ProtocolError
from duorelay.session import Frame, Session

JOIN_TIMEOUT = 5.0
"""Seconds a client waits for the host's process to answer its join (then 1013)."""

ROOM_GONE = "the host closed the room"


def room_key(code: str) -> str:
    """The lease key, and the host's address, of room ``code``."""
    return f"wmbp:{code}"


def player_of(payload: bytes) -> int:
    """The player id at the start of a message's payload."""
    return int.from_bytes(payload[:4], "big")


def player_bytes(player: int) -> bytes:
    """A player id as the 4 bytes that start a message's payload."""
    return player.to_bytes(4, "big")


class RemoteClient:
    """A client on another process, as its host's room sees it (a :class:`Peer`).

    ``outbox.send`` publishes a frame to the client's address, waiting while
    the process's publish queue is full (``send_nowait`` raises
    ``trio.WouldBlock`` then); ``close`` sends the close code for the client's
    process to apply. ``on_gone`` is called when a message finds nobody at the
    address (the client left, or its process died); ``on_close`` when the room
    closes it (the close message may be lost: the host's listener sends it
    again when the client is heard from).
    """

    def __init__(self, address: str, backplane: Backplane, stats: Stats) -> None:
        self.address = address
        self.backplane = backplane
        self.stats = stats
        self.outbox = self
        self.on_gone: Callable[[], None] = _nothing
        self.on_close: Callable[[bytes], None] = _ignore

    def send_nowait(self, frame: Frame) -> None:
        try:
            self.backplane.send_nowait(self.address, *pack_frame(frame), on_absent=self.on_gone)
        except BackplaneUnavailable:
            raise trio.ClosedResourceError from None  # the host's listener drops it

    async def send(self, frame: Frame) -> None:
        """Publish ``frame`` to the client, waiting while the publish queue is full."""
        try:
            await self.backplane.send(self.address, *pack_frame(frame), on_absent=self.on_gone)
        except BackplaneUnavailable:
            raise trio.ClosedResourceError from None  # the host's listener drops it

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        payload = code.to_bytes(2, "big") + bytes([flush]) + reason.encode()
        self.on_close(payload)
        send_close(self.backplane, self.address, payload)


def send_close(
    backplane: Backplane,
    address: str,
    payload: bytes,
    on_absent: Callable[[], None] | None = None,
) -> None:
    """Send a ``C`` message (a control message: never refused for a full
    queue); if Redis is lost, it is sent again when the client is next heard
    from or Redis is back."""
    with suppress(BackplaneUnavailable):
        backplane.send_nowait(address, b"C", payload, on_absent=on_absent, control=True)


def _nothing() -> None:
    pass


def _ignore(payload: bytes) -> None:
    pass


async def remote_client(session: Session, code: str, backplane: Backplane) -> None:
    """Serve a WMBP client whose room's host is on another process.

    Closes with 4404 if no process listens for room ``code``, 4423 if the room
    is locked, 1013 if the backplane is out of reach or the host's process
    does not answer the join within :data:`JOIN_TIMEOUT` seconds, 4410 if the
    host's process stops listening later. Frames go to the host as
    ``from``/``from_str``; its ``leave`` is sent when the socket is gone.
    """
    host_address = room_key(code)
    address = f"wmbp:{code}:client:{backplane.node}:{session.id}"
    inbox = session.open_inbox()
    answered = trio.Event()
    answer: dict[str, int | bool] = {}

    def deliver(from_here: bool, kind: bytes, payload: bytes) -> None:
        match kind:
            case b"A":
                answer["player"] = player_of(payload)
                answered.set()
            case b"L":
                answer["locked"] = True
                answered.set()
            case b"t" | b"b":
                try:
                    inbox.send_nowait(unpack_frame(kind, payload))
                except trio.WouldBlock:
                    session.close(CloseCode.TOO_SLOW, "too slow: the inbox is full")
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            case b"C":
                close_code = int.from_bytes(payload[:2], "big")
                session.close(close_code, payload[3:].decode(), flush=bool(payload[2]))

    def host_gone() -> None:
        if answered.is_set():
            session.close(CloseCode.GONE, ROOM_GONE, flush=True)
        else:
            answer["absent"] = True
            answered.set()

    def lost() -> None:
        session.close(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE)

    try:
        await backplane.listen(address, deliver, lost)
        try:
            backplane.send_nowait(
                host_address, b"J", address.encode(), session, host_gone, control=True
            )
            # From now on the host may count this client in: tell it when the
            # socket is gone, whatever happens next.
            session.at_end(lambda: _send_leave(backplane, host_address, address))
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
                kind, data = pack_frame(frame)
                await backplane.send(
                    host_address, kind, player_bytes(player) + data, session, host_gone
                )
        finally:
            backplane.unlisten(address)
    except BackplaneUnavailable:
        raise ProtocolError(CloseCode.TRY_AGAIN_LATER, UNAVAILABLE) from None


def _send_leave(backplane: Backplane, host_address: str, address: str) -> None:
    # if Redis is lost, the host finds the client's address unheard when it next sends
    with suppress(BackplaneUnavailable):
        backplane.send_nowait(host_address, b"Q", address.encode(), control=True)
