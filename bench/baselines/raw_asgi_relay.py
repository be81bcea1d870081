"""A minimal raw-ASGI Kamon relay on Hypercorn's trio worker: the stack's ceiling.

The same join and relay rules as duorelay (PROTOCOLS.md section 1, rules 1-5 and
7), with nothing else: no Quart, no session task, no outbox, no limits, no
metrics, no logging. The reader of one seat hands each frame straight to the
ASGI ``send`` of the other seat (Hypercorn writes it to the socket under its
own send lock). Hypercorn is configured as ``python -m duorelay`` configures it
by default (pings every 20 s, 60 s read timeout), so both pay the same
per-connection keepalive costs; ``--no-keepalive`` drops them. ``--tune-gc``
applies the garbage-collector settings ``python -m duorelay`` applies.

Run: ``python bench/baselines/raw_asgi_relay.py --bind 127.0.0.1:8001``.
"""

from __future__ import annotations

import argparse
import gc
import re
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

JOIN = re.compile(r"\* ([^\x00-\x1f\x7f]{1,128})_([01])\Z")
NAMESPACE = re.compile(r"/ws(?:/([A-Za-z0-9._-]{1,64}))?\Z")

Send = Any
rooms: dict[tuple[str, str], list[Send | None]] = {}


async def lifespan(receive: Any, send: Any) -> None:
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def not_found(send: Any) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b"not found"})


async def close(send: Any, code: int, reason: str) -> None:
    await send({"type": "websocket.close", "code": code, "reason": reason})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    match = NAMESPACE.match(scope.get("path", ""))
    if scope["type"] != "websocket" or match is None:
        if scope["type"] == "http":
            await not_found(send)
        return
    namespace = match[1] or "default"
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    event = await receive()
    if event["type"] != "websocket.receive":
        return
    join = JOIN.match(event.get("text") or "")
    if join is None:
        await close(send, 4400, "expected '* ROOM_SEAT'")
        return
    key = (namespace, join[1])
    seat = int(join[2])
    room = rooms.setdefault(key, [None, None])
    if room[seat] is not None:
        await close(send, 4409, "seat taken")
        return
    room[seat] = send
    try:
        while True:
            event = await receive()
            if event["type"] != "websocket.receive":
                return
            peer = room[1 - seat]
            if peer is not None:
                await peer(
                    {
                        "type": "websocket.send",
                        "bytes": event.get("bytes"),
                        "text": event.get("text"),
                    }
                )
    finally:
        room[seat] = None
        if room[1 - seat] is None and rooms.get(key) is room:
            del rooms[key]


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--bind", default="127.0.0.1:8001")
    cli.add_argument("--no-keepalive", action="store_true", help="no pings, no read timeout")
    cli.add_argument(
        "--tune-gc",
        action="store_true",
        help="the garbage-collector settings of python -m duorelay (gc.freeze, threshold 5000)",
    )
    args = cli.parse_args()
    config = Config()
    config.bind = [args.bind]
    config.worker_class = "trio"
    config.errorlog = "-"
    if not args.no_keepalive:
        config.websocket_ping_interval = 20
        config.read_timeout = 60
    if args.tune_gc:
        gc.collect()
        gc.freeze()
        gc.set_threshold(5000, 10, 10)
    trio.run(serve, app, config)


if __name__ == "__main__":
    main()
