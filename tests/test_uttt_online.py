"""Pushes to a user's connections (services/uttt_online.py): every connection
gets them, a greeting's pushes wait, a connection that does not read is closed
4430 and the others are not disturbed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from duorelay.core.mailboxes import Outbox, open_mailbox
from duorelay.services.uttt_online import PENDING_LIMIT, Client, Online
from duorelay.store.accounts import Account

ANN = Account(1, "ann", "a" * 32, "hash")


@dataclass
class FakeSession:
    outbox: Outbox
    closed: list[tuple[int, str]] = field(default_factory=list)

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        self.closed.append((code, reason))


def connection(online: Online, frames: int, session_id: str = "s") -> tuple[Client, Any]:
    outbox, receiver = open_mailbox(frames, 1 << 20)
    session = FakeSession(outbox)
    client = Client(session, ANN, session_id)  # type: ignore[arg-type]
    online.add(client)
    client.greeted()
    return client, receiver


def test_every_connection_gets_each_push_and_a_full_one_is_closed_4430() -> None:
    online = Online()
    slow, _ = connection(online, frames=1)
    fast, frames = connection(online, frames=100, session_id="t")
    for n in range(3):  # one in the outbox, one in its reserve, then full
        online.push(ANN.id, f"frame {n}")
    assert [frames.receive_nowait() for _ in range(3)] == ["frame 0", "frame 1", "frame 2"]
    assert slow.session.closed == [(4430, "too slow: the outbox is full")]  # type: ignore[attr-defined]
    assert fast.session.closed == []  # type: ignore[attr-defined]
    assert online.remove(slow) == (False, True)
    assert online.remove(fast) == (True, True)
    assert ANN.id not in online and not online.session_open("s")


def test_pushes_wait_for_the_greeting_in_order() -> None:
    online = Online()
    outbox, frames = open_mailbox(100, 1 << 20)
    session = FakeSession(outbox)
    client = Client(session, ANN, "s")  # type: ignore[arg-type]
    online.add(client)
    online.push(ANN.id, "pushed")
    outbox.send_nowait("greeting")
    client.greeted()
    assert [frames.receive_nowait() for _ in range(2)] == ["greeting", "pushed"]
    waiting = Client(FakeSession(outbox), ANN, "t")  # type: ignore[arg-type]
    online.add(waiting)
    for _ in range(PENDING_LIMIT + 1):
        online.push(ANN.id, "x")
    assert waiting.session.closed == [(4430, "too slow: too many pushes waiting")]  # type: ignore[attr-defined]
