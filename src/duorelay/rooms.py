"""The room registry: who holds which seat, and who receives a frame.

No websockets, no tasks, no awaiting: every method is synchronous, so a
session can release its seat in a ``finally`` block even while it is being
cancelled (ARCHITECTURE.md, invariant 6). The registry is generic over the
*outbox* type: the session layer lends each seat the send end of its bounded
memory channel; tests can lend anything.

A room exists while at least one of its seats is held: it is created by the
first :meth:`Registry.claim` and removed by the :meth:`Registry.release` that
empties it, so a room with both seats empty leaves no trace (PROTOCOLS.md
section 1, rule 7).
"""

from __future__ import annotations

from typing import Generic, TypeVar

Outbox = TypeVar("Outbox")

RoomKey = tuple[str, str]
"""A room's identity: ``(namespace, room name)``; rooms of different namespaces
never meet (rule 1)."""


class SeatTaken(Exception):
    """The seat is held by a live connection (rule 3: the newcomer gets 4409)."""


SEATS = 2
"""Seats of a room: 0 and 1 (PROTOCOLS.md section 1)."""


class Room(Generic[Outbox]):
    """The two seats of one room; ``holders[i]`` is the :class:`Seat` holding seat i."""

    __slots__ = ("holders", "key")

    def __init__(self, key: RoomKey) -> None:
        self.key = key
        self.holders: list[Seat[Outbox] | None] = [None] * SEATS

    def is_empty(self) -> bool:
        return all(holder is None for holder in self.holders)


class Seat(Generic[Outbox]):
    """A held seat: the handle :meth:`Registry.claim` gives to the seat's session.

    ``outbox`` is where frames for this seat's connection go.
    """

    __slots__ = ("index", "outbox", "room")

    def __init__(self, room: Room[Outbox], index: int, outbox: Outbox) -> None:
        self.room = room
        self.index = index
        self.outbox = outbox

    @property
    def is_held(self) -> bool:
        """False once :meth:`Registry.release` has freed this seat."""
        return self.room.holders[self.index] is self

    def peer(self) -> Outbox | None:
        """The outbox of the other seat, or ``None`` if it is empty.

        Looked up for every frame, so a frame goes to whoever holds the other
        seat at the moment it is relayed, never to an earlier or later holder.
        """
        other = self.room.holders[1 - self.index]
        return None if other is None else other.outbox


class Registry(Generic[Outbox]):
    """All live rooms of a process, keyed by ``(namespace, room)``."""

    def __init__(self) -> None:
        self._rooms: dict[RoomKey, Room[Outbox]] = {}

    def __len__(self) -> int:
        """The number of live rooms."""
        return len(self._rooms)

    def get(self, namespace: str, room: str) -> Room[Outbox] | None:
        """The live room ``room`` of ``namespace``, or ``None``."""
        return self._rooms.get((namespace, room))

    def claim(self, namespace: str, room: str, index: int, outbox: Outbox) -> Seat[Outbox]:
        """Take seat ``index`` of ``room`` in ``namespace`` for ``outbox``.

        Creates the room if it does not exist. Raises :class:`SeatTaken` if the
        seat is held; the holder is not disturbed (rule 3). Raises
        :class:`IndexError` for a seat number the room does not have.
        """
        if not 0 <= index < SEATS:
            raise IndexError(f"seat {index} is not 0 or 1")
        key = (namespace, room)
        found = self._rooms.get(key)
        if found is None:
            found = self._rooms[key] = Room(key)
        elif found.holders[index] is not None:
            raise SeatTaken(f"seat {index} of room {room!r} is taken")
        seat = Seat(found, index, outbox)
        found.holders[index] = seat
        return seat

    def release(self, seat: Seat[Outbox]) -> None:
        """Free ``seat`` at once, and its room if that was the last seat held.

        Idempotent: releasing a seat twice, or a seat already taken over, does
        nothing, so every way a connection ends may call it (invariant 5).
        """
        room = seat.room
        if room.holders[seat.index] is not seat:
            return
        room.holders[seat.index] = None
        if room.is_empty() and self._rooms.get(room.key) is room:
            del self._rooms[room.key]
