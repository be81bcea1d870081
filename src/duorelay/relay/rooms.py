"""The room registry: who holds which seat, and who receives a frame.

No websockets, no tasks, no awaiting: every method is synchronous, so a
session can release its seat in a ``finally`` block even while it is being
cancelled (docs/architecture.md, invariant 6). The registry is generic over the
*member* type, what holds a seat or a place in a room: the app puts its
sessions there (a peer's frames go to ``member.outbox``); tests put anything.

Two kinds of room share the registry: two-seat rooms of the Kamon relay
(:class:`Room`, keyed by namespace and name) and host rooms of WMBP
(:class:`HostRoom`, keyed by a drawn code).

A two-seat room exists while at least one of its seats is held: it is created by the
first :meth:`Registry.claim` and removed by the :meth:`Registry.release` that
empties it, so a room with both seats empty leaves no trace (docs/protocols.md
section 1, rule 7).
"""

from __future__ import annotations

import secrets
from typing import Generic, TypeVar

Member = TypeVar("Member")

RoomKey = tuple[str, str]
"""A room's identity: ``(namespace, room name)``; rooms of different namespaces
never meet (rule 1)."""


CODE_LENGTH = 4
CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""Host room codes are 4 letters A-Z (docs/protocols.md section 2, "Room codes")."""

CODE_DRAWS = 100
"""Random draws before :meth:`Registry.register` gives up on finding a free code."""


class SeatTaken(Exception):
    """The seat is held by a live connection (rule 3: the newcomer gets 4409)."""


SEATS = 2
"""Seats of a room: 0 and 1 (docs/protocols.md section 1)."""


class Room(Generic[Member]):
    """The two seats of one room; ``holders[i]`` is the :class:`Seat` holding seat i."""

    __slots__ = ("holders", "key")

    def __init__(self, key: RoomKey) -> None:
        self.key = key
        self.holders: list[Seat[Member] | None] = [None] * SEATS

    def is_empty(self) -> bool:
        return all(holder is None for holder in self.holders)


class Seat(Generic[Member]):
    """A held seat: the handle :meth:`Registry.claim` gives to the seat's session.

    ``member`` is the connection holding the seat (a session, for the app).
    ``joined`` is False while the seat is claimed here but not yet in the
    backplane (:meth:`Registry.claim` with ``joined=False``): the seat is
    taken for this process, but its holder is nobody's peer yet.
    """

    __slots__ = ("index", "joined", "member", "room")

    def __init__(self, room: Room[Member], index: int, member: Member, joined: bool) -> None:
        self.room = room
        self.index = index
        self.member = member
        self.joined = joined

    @property
    def is_held(self) -> bool:
        """False once :meth:`Registry.release` has freed this seat."""
        return self.room.holders[self.index] is self

    def peer(self) -> Member | None:
        """The member holding the other seat, or ``None`` if it is empty.

        Looked up for every frame, so a frame goes to whoever holds the other
        seat at the moment it is relayed, never to an earlier or later holder.
        """
        other = self.room.holders[1 - self.index]
        return other.member if other is not None and other.joined else None

    def join(self) -> None:
        """Make a seat claimed with ``joined=False`` its peer's peer."""
        self.joined = True


class Registry(Generic[Member]):
    """All live rooms of a process: two-seat rooms keyed by ``(namespace, room)``
    and registered host rooms keyed by their code."""

    def __init__(self) -> None:
        self._rooms: dict[RoomKey, Room[Member]] = {}
        self._host_rooms: dict[str, HostRoom[Member]] = {}

    def __len__(self) -> int:
        """The number of live rooms of both kinds."""
        return len(self._rooms) + len(self._host_rooms)

    def register(self, room: HostRoom[Member], max_rooms: int) -> str:
        """Give ``room`` a fresh code and make it findable; returns the code.

        Codes are 4 letters A-Z drawn with :mod:`secrets`, unique among live
        host rooms. Raises :class:`NoFreeCode` when ``max_rooms`` host rooms
        are live or no unused code turned up in :data:`CODE_DRAWS` draws.
        """
        if len(self._host_rooms) >= max_rooms:
            raise NoFreeCode(f"the server holds its maximum of {max_rooms} rooms")
        for _ in range(CODE_DRAWS):
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
            if code not in self._host_rooms:
                room.code = code
                self._host_rooms[code] = room
                return code
        raise NoFreeCode("no free room code")

    def find(self, code: str) -> HostRoom[Member] | None:
        """The live host room with ``code`` (case-sensitive), or ``None``."""
        return self._host_rooms.get(code)

    def unregister(self, room: HostRoom[Member]) -> None:
        """Free ``room``'s code at once; idempotent."""
        if room.code is not None and self._host_rooms.get(room.code) is room:
            del self._host_rooms[room.code]

    def get(self, namespace: str, room: str) -> Room[Member] | None:
        """The live room ``room`` of ``namespace``, or ``None``."""
        return self._rooms.get((namespace, room))

    def claim(
        self, namespace: str, room: str, index: int, member: Member, *, joined: bool = True
    ) -> Seat[Member]:
        """Take seat ``index`` of ``room`` in ``namespace`` for ``member``.

        Creates the room if it does not exist. Raises :class:`SeatTaken` if the
        seat is held; the holder is not disturbed (rule 3). Raises
        :class:`IndexError` for a seat number the room does not have. With
        ``joined=False`` the seat is held here but the other seat's holder
        does not see ``member`` as its peer until :meth:`Seat.join`.
        """
        if not 0 <= index < SEATS:
            raise IndexError(f"seat {index} is not 0 or 1")
        key = (namespace, room)
        found = self._rooms.get(key)
        if found is None:
            found = self._rooms[key] = Room(key)
        elif found.holders[index] is not None:
            raise SeatTaken(f"seat {index} of room {room!r} is taken")
        seat = Seat(found, index, member, joined)
        found.holders[index] = seat
        return seat

    def release(self, seat: Seat[Member]) -> None:
        """Free ``seat`` at once, and its room if that was the last seat held.

        Idempotent: releasing a seat twice, or a seat already taken over, does
        nothing, so every way a connection ends may call it (docs/architecture.md, invariant 6).
        """
        room = seat.room
        if room.holders[seat.index] is not seat:
            return
        room.holders[seat.index] = None
        if room.is_empty() and self._rooms.get(room.key) is room:
            del self._rooms[room.key]


class RoomLocked(Exception):
    """The host room is full, not yet prepared, or started (section 2: 4423)."""


class NoFreeCode(Exception):
    """No room code could be drawn, or the rooms cap is reached (section 2: 4429)."""


class HostRoom(Generic[Member]):
    """A WMBP room: one host and numbered clients (docs/protocols.md section 2).

    ``code`` is ``None`` until :meth:`Registry.register` (the host's first
    ``prepare``). ``clients`` maps player ids (positive, never reused in the
    room) to members, in joining order. ``accepting`` is true from the first
    ``prepare`` until ``start``.

    A client leaves the room in one of three ways, each reported to the host
    once: it goes away (:meth:`leave`, reported then); it is kicked
    (:meth:`kick`: out of ``clients`` at once, reported by :meth:`leave` when
    its socket is gone); it is dropped for being too slow (:meth:`drop`,
    reported at once by the caller, never again).
    """

    __slots__ = (
        "_kicked",
        "_next_id",
        "accepting",
        "clients",
        "code",
        "host",
        "max_players",
        "name",
        "started",
    )

    def __init__(self, host: Member) -> None:
        self.host = host
        self.code: str | None = None
        self.name = ""
        self.max_players = 0
        self.accepting = False
        self.started = False
        self.clients: dict[int, Member] = {}
        self._kicked: set[int] = set()
        self._next_id = 1

    @property
    def accept_conns(self) -> bool:
        """Whether a client connecting now would join (``state.accept_conns``)."""
        return self.accepting and len(self.clients) < self.max_players

    def prepare(self, max_players: int, name: str) -> None:
        """Apply the first ``prepare``; accepting starts unless ``start`` came first."""
        self.max_players = max_players
        self.name = name
        self.accepting = not self.started

    def start(self) -> None:
        """Stop accepting new clients, for good."""
        self.started = True
        self.accepting = False

    def join(self, member: Member) -> int:
        """Add a client; returns its new player id. Raises :class:`RoomLocked`."""
        if not self.accept_conns:
            raise RoomLocked
        player = self._next_id
        self._next_id += 1
        self.clients[player] = member
        return player

    def kick(self, player: int) -> Member | None:
        """Take ``player`` out of the room now; its leave is reported later."""
        member = self.clients.pop(player, None)
        if member is not None:
            self._kicked.add(player)
        return member

    def drop(self, player: int) -> Member | None:
        """Take ``player`` out of the room now; the caller reports its leave."""
        return self.clients.pop(player, None)

    def leave(self, player: int) -> bool:
        """``player``'s connection is gone: whether to tell the host (``player_left``)."""
        if player in self._kicked:
            self._kicked.discard(player)
            return True
        return self.clients.pop(player, None) is not None

    def close(self) -> list[Member]:
        """The host is gone: empty the room; returns every client still connected."""
        members = list(self.clients.values())
        self.clients.clear()
        self._kicked.clear()
        return members
