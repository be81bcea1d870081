"""``python -m duorelay`` with the change still only proposed in docs/benchmarks.md.

Applied from outside (monkeypatching) so that it can be measured before it is
made in ``src/``; ``bench/run.py --servers duorelay-proposed`` runs it. The two
earlier proposals (garbage-collector settings, ``send_nowait`` into the peer's
outbox) are in ``src/`` since commit 9472148, so this server runs them as they are.

``receive``: ``Session.receive`` decodes the ASGI event itself instead of
awaiting ``WebSocket.receive``: one coroutine fewer per frame. The limits (size,
rate) are applied as ``Session.receive`` applies them.
"""

from __future__ import annotations

import sys

import trio

import duorelay.app  # noqa: F401  (creates the app from the environment, as main() does)
from duorelay.cli import main
from duorelay.core import session
from duorelay.protocols import CloseCode, ProtocolError, too_big
from duorelay.transport import Disconnected, Frame


async def receive(self: session.Session) -> Frame:
    """``Session.receive`` with ``WebSocket.receive`` inlined."""
    event = await self.websocket._receive()
    if event["type"] == "websocket.disconnect":
        raise Disconnected(event.get("code", CloseCode.NORMAL))
    frame = event.get("bytes")
    if frame is None:
        frame = event.get("text")
    if frame is None:
        raise RuntimeError(f"unexpected ASGI event {event['type']!r}")
    if too_big(frame, self.settings.max_message_size):
        raise ProtocolError(CloseCode.MESSAGE_TOO_BIG, "message too big")
    self.frames_in += 1
    now = trio.current_time()
    ready = self._rate.take(now)
    if ready > now:
        await trio.sleep_until(ready)
    return frame


if __name__ == "__main__":
    session.Session.receive = receive  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
