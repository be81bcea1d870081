"""The room registry, with plain calls (no server, no trio)."""

from __future__ import annotations

import pytest

from duorelay.relay.rooms import Registry, SeatTaken


def test_claim_peer_release_and_no_trace() -> None:
    rooms: Registry[str] = Registry()
    host = rooms.claim("default", "r", 0, "host-outbox")
    assert host.peer() is None
    guest = rooms.claim("default", "r", 1, "guest-outbox")
    assert host.peer() == "guest-outbox"
    assert guest.peer() == "host-outbox"
    rooms.release(guest)
    assert host.peer() is None
    assert len(rooms) == 1
    rooms.release(host)
    assert len(rooms) == 0
    assert rooms.get("default", "r") is None


def test_held_seat_cannot_be_taken() -> None:
    rooms: Registry[str] = Registry()
    holder = rooms.claim("default", "r", 0, "first")
    with pytest.raises(SeatTaken):
        rooms.claim("default", "r", 0, "second")
    assert holder.is_held
    other = rooms.claim("default", "r", 1, "other")
    assert other.peer() == "first"


def test_release_is_idempotent_and_never_frees_a_newer_holder() -> None:
    rooms: Registry[str] = Registry()
    old = rooms.claim("default", "r", 0, "old")
    keep = rooms.claim("default", "r", 1, "keep")
    rooms.release(old)
    new = rooms.claim("default", "r", 0, "new")
    rooms.release(old)  # a second release of the old holder changes nothing
    assert new.is_held and not old.is_held
    assert keep.peer() == "new"


def test_namespaces_and_rooms_are_separate() -> None:
    rooms: Registry[str] = Registry()
    a = rooms.claim("default", "r", 0, "a")
    b = rooms.claim("other", "r", 1, "b")
    c = rooms.claim("default", "r2", 1, "c")
    assert a.peer() is None and b.peer() is None and c.peer() is None
    assert len(rooms) == 3


def test_seat_numbers_outside_the_room_are_refused() -> None:
    rooms: Registry[str] = Registry()
    with pytest.raises(IndexError):
        rooms.claim("default", "r", 2, "x")
    assert len(rooms) == 0


def test_room_freed_after_many_joins_and_leaves() -> None:
    rooms: Registry[int] = Registry()
    for n in range(1000):
        seat = rooms.claim("default", f"room {n % 7}", n % 2, n)
        rooms.release(seat)
    assert len(rooms) == 0
