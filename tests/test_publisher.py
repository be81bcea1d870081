"""The publish queue's bounds (no Redis needed to queue) and callbacks' failures."""

from __future__ import annotations

import pytest
import trio

from duorelay.cluster import run_callback
from duorelay.cluster.publisher import MAX_CONTROL, PUBLISH_QUEUE, Publisher
from duorelay.core.backplane import BackplaneUnavailable
from duorelay.observability import Stats


class Sender:
    def __init__(self) -> None:
        self.closed: list[tuple[int, str]] = []

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        self.closed.append((code, reason))


def test_control_messages_are_bounded_apart_from_frames() -> None:
    publisher = Publisher(Stats(), timeout=2.0)
    sender = Sender()
    for _ in range(MAX_CONTROL):
        publisher.send_nowait(b"channel", b"join", sender, None, frame=False)
    with pytest.raises(BackplaneUnavailable, match=r"^publish queue full$"):
        publisher.send_nowait(b"channel", b"one too many", sender, None, frame=False)
    # Frames have a bound of their own, still free.
    for _ in range(PUBLISH_QUEUE):
        publisher.send_nowait(b"channel", b"frame", None, None, frame=True)
    with pytest.raises(trio.WouldBlock):
        publisher.send_nowait(b"channel", b"frame", None, None, frame=True)
    assert publisher.queued == (PUBLISH_QUEUE, MAX_CONTROL)
    # Redis lost: everything queued is dropped, its senders closed with 1013.
    publisher.fail_queued()
    assert publisher.queued == (0, 0)
    assert sender.closed == [(1013, "backplane unavailable: try again later")] * MAX_CONTROL
    publisher.send_nowait(b"channel", b"join", None, None, frame=False)
    assert publisher.queued == (0, 1)


def test_a_failing_callback_is_counted() -> None:
    stats = Stats()

    def broken() -> None:
        raise RuntimeError("a bug")

    run_callback(stats, broken)
    run_callback(stats, broken)
    assert stats.backplane_errors["callback"] == 2
