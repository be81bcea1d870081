"""The bounded mailbox of core/mailboxes.py: frames and bytes, order, closing.

Plain trio tests of the data structure (the server tests use it through
sessions); every wait is on a task being blocked (``wait_all_tasks_blocked``).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from duorelay.core.mailboxes import Inbox, frame_size, open_mailbox
from duorelay.transport import Frame

blocked = trio.testing.wait_all_tasks_blocked


async def test_bounded_in_frames_and_in_bytes() -> None:
    outbox, receiver = open_mailbox(3, 3 * frame_size(bytes(100)))
    for _ in range(3):
        outbox.send_nowait(b"x")
    with pytest.raises(trio.WouldBlock):  # three frames: full in frames
        outbox.send_nowait(b"x")
    for _ in range(3):
        receiver.receive_nowait()
    outbox.send_nowait(bytes(100))
    outbox.send_nowait(bytes(100))
    with pytest.raises(trio.WouldBlock):  # 2 frames, but 300 bytes do not fit
        outbox.send_nowait(bytes(101))
    statistics = outbox.statistics()
    assert (statistics.current_buffer_used, statistics.current_bytes) == (
        2,
        2 * frame_size(bytes(100)),
    )


async def test_a_frame_over_the_byte_budget_passes_alone() -> None:
    outbox, receiver = open_mailbox(8, 1000)
    outbox.send_nowait(bytes(5000))
    with pytest.raises(trio.WouldBlock):
        outbox.send_nowait(b"")
    assert receiver.receive_nowait() == bytes(5000)
    assert outbox.statistics().peak_bytes == frame_size(bytes(5000))


async def test_waiting_senders_go_in_order_when_there_is_room() -> None:
    outbox, receiver = open_mailbox(1, 10_000)
    outbox.send_nowait("0")
    async with trio.open_nursery() as nursery:
        for n in (1, 2, 3):
            nursery.start_soon(outbox.send, str(n))
            await blocked()
        assert outbox.statistics().tasks_waiting_send == 3
        with pytest.raises(trio.WouldBlock):  # no overtaking a waiting sender
            outbox.send_nowait("late")
        got = [await receiver.receive() for _ in range(4)]
    assert got == ["0", "1", "2", "3"]


async def test_closing_the_send_end_wakes_its_waiting_senders_at_once() -> None:
    outbox, receiver = open_mailbox(1, 10_000)
    other = outbox.clone()
    outbox.send_nowait("queued")
    results: list[str] = []

    async def send(end: object, frame: Frame) -> None:
        try:
            await end.send(frame)  # type: ignore[attr-defined]
            results.append(f"sent {frame}")
        except trio.ClosedResourceError:
            results.append(f"closed {frame}")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send, outbox, "a")
        await blocked()
        nursery.start_soon(send, other, "b")
        await blocked()
        outbox.close()
        await blocked()
        assert results == ["closed a"]
        assert [await receiver.receive(), await receiver.receive()] == ["queued", "b"]
    other.close()
    with pytest.raises(trio.EndOfChannel):
        await receiver.receive()
    assert results == ["closed a", "sent b"]


async def test_closing_the_receiver_breaks_waiting_senders_at_once() -> None:
    outbox, receiver = open_mailbox(1, 10_000)
    outbox.send_nowait("queued")
    broken = trio.Event()

    async def send() -> None:
        with pytest.raises(trio.BrokenResourceError):
            await outbox.send("waits")
        broken.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        await blocked()
        receiver.close()
        await blocked()
        assert broken.is_set()
    with pytest.raises(trio.BrokenResourceError):
        outbox.send_nowait("after")
    assert outbox.statistics().current_bytes == 0


async def test_the_receiver_waits_and_ends_with_the_last_send_end() -> None:
    outbox, receiver = open_mailbox(4, 10_000)
    got: list[Frame] = []

    async def read() -> None:
        async for frame in receiver:
            got.append(frame)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await blocked()
        outbox.send_nowait(b"handed over")
        await blocked()
        outbox.close()
    assert got == [b"handed over"]


async def test_push_keeps_its_place_and_has_a_bounded_reserve() -> None:
    outbox, receiver = open_mailbox(2, 10_000)
    outbox.send_nowait("0")
    outbox.send_nowait("1")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbox.send, "waiting")
        await blocked()
        outbox.push("pushed 1")
        outbox.push("pushed 2")
        with pytest.raises(trio.WouldBlock):  # the reserve: as many frames again
            outbox.push("pushed 3")
        assert outbox.statistics().pushed == 2
        got = [await receiver.receive() for _ in range(5)]
    assert got == ["0", "1", "waiting", "pushed 1", "pushed 2"]


async def test_inbox_senders_that_can_wait_never_fill_the_inbox() -> None:
    outbox, receiver = open_mailbox(1, 10_000)
    channel, inbox_frames = open_mailbox(4, 10_000)
    inbox = Inbox(outbox, channel)
    inbox.push("r0")  # straight into the outbox
    inbox.push("r1")  # into the inbox: the outbox is full
    assert inbox.waiting == 1
    with pytest.raises(trio.WouldBlock):
        inbox.send_nowait("local")
    got: list[Frame] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(inbox.send, "local")  # waits until the inbox is empty
        await blocked()
        assert channel.statistics().current_buffer_used == 1
        got.append(await receiver.receive())
        outbox.send_nowait(await inbox_frames.receive())  # what the pump does
        inbox.moved()
        got.append(await receiver.receive())
        got.append(await receiver.receive())
    assert got == ["r0", "r1", "local"]
    inbox.close()
    outbox.close()
    with pytest.raises(trio.ClosedResourceError):
        await inbox.send("after")
