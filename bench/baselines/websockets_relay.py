"""A Kamon relay on python-websockets (asyncio): what a Python developer would pick.

The same join and relay rules as duorelay (PROTOCOLS.md section 1, rules 1-5 and
7), written the obvious way on ``websockets.asyncio.server`` with its defaults
(pings every 20 s, 1 MiB messages, a receive queue of 16 frames, the standard
asyncio event loop; ``--uvloop`` swaps in uvloop). The reader of one seat awaits
``send`` on the other seat's connection, which waits while that connection's
write buffer is full: the same back-pressure as duorelay.

Run: ``python bench/baselines/websockets_relay.py --bind 127.0.0.1:8002``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

JOIN = re.compile(r"\* ([^\x00-\x1f\x7f]{1,128})_([01])\Z")
NAMESPACE = re.compile(r"/ws(?:/([A-Za-z0-9._-]{1,64}))?\Z")

rooms: dict[tuple[str, str], list[ServerConnection | None]] = {}


async def handler(ws: ServerConnection) -> None:
    match = NAMESPACE.match(ws.request.path if ws.request else "")
    if match is None:
        await ws.close(4404, "not found")
        return
    try:
        first = await asyncio.wait_for(ws.recv(), 10)
    except (TimeoutError, ConnectionClosed):
        return
    join = JOIN.match(first) if isinstance(first, str) else None
    if join is None:
        await ws.close(4400, "expected '* ROOM_SEAT'")
        return
    key = (match[1] or "default", join[1])
    seat = int(join[2])
    room = rooms.setdefault(key, [None, None])
    if room[seat] is not None:
        await ws.close(4409, "seat taken")
        return
    room[seat] = ws
    try:
        async for message in ws:
            peer = room[1 - seat]
            if peer is not None:
                with contextlib.suppress(ConnectionClosed):
                    await peer.send(message)
    except ConnectionClosed:
        pass
    finally:
        room[seat] = None
        if room[1 - seat] is None and rooms.get(key) is room:
            del rooms[key]


async def run(host: str, port: int) -> None:
    async with serve(handler, host, port) as server:
        await server.serve_forever()


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--bind", default="127.0.0.1:8002")
    cli.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = cli.parse_args()
    host, _, port = args.bind.rpartition(":")
    if args.uvloop:
        import uvloop

        uvloop.run(run(host, int(port)))
    else:
        asyncio.run(run(host, int(port)))


if __name__ == "__main__":
    main()
