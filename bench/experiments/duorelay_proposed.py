"""``python -m duorelay`` with the change still only proposed in docs/benchmarks.md.

Applied from outside (monkeypatching) so that it can be measured before it is
made in ``src/``; ``bench/run.py --servers duorelay-proposed`` runs it. The two
earlier proposals (garbage-collector settings, ``send_nowait`` into the peer's
outbox) are in ``src/`` since commit 9472148, so this server runs them as they are.

``receive``: ``Session.receive`` decodes the ASGI event itself instead of
awaiting ``WebSocket.receive``: one coroutine fewer per frame. The limits are
``Session.admit``, unchanged.
"""

from __future__ import annotations

import sys

import duorelay.app  # noqa: F401  (creates the app from the environment, as main() does)
from duorelay.cli import main
from duorelay.core import session
from duorelay.protocols import CloseCode
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
    return self.admit(frame)


if __name__ == "__main__":
    session.Session.receive = receive  # type: ignore[method-assign]
    sys.exit(main(sys.argv[1:]))
