"""The HTTP side's hardening, below the app: safe static files, response headers,
bounded request bodies.

- :func:`static_file`: only regular files inside the static folder (symlinks
  followed and checked), anything else a 404 logged in one line;
- :func:`add_hardening_headers`: ``X-Content-Type-Options``, ``Referrer-Policy``
  and a ``Content-Security-Policy`` on every HTTP response;
- :func:`body_cut_after` and :func:`send_shielding_the_end`: ASGI wrappers
  around Quart that bound what a request body can make the server hold, and
  let a response's last message close its connection.
"""

from __future__ import annotations

import logging
import re
import stat
from pathlib import Path
from typing import Protocol

import trio
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
)

log = logging.getLogger("duorelay")

TEXT_PLAIN = "text/plain; charset=utf-8"

MAX_BODY_SIZE = 64 * 1024
"""Largest HTTP request body, in bytes (Quart's ``MAX_CONTENT_LENGTH``); more: 413.
No endpoint takes a body: this only bounds what a client can make the server read."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'{websockets}; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""The default Content-Security-Policy, for the demo pages: scripts, styles and
images from this server only (plus the pages' ``data:`` favicons and the one
inline ``style`` attribute of ``index.html``), websockets to this host
(``ws://HOST wss://HOST``, HOST from the request's Host header), no framing."""

_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
"""A Host header safe to put into the Content-Security-Policy."""


def static_file(root: Path, name: str) -> Path | None:
    """The file to serve for static path ``name`` of folder ``root`` (resolved),
    or None (the caller answers 404).

    Only a regular file whose resolved path (every symlink followed) is
    inside ``root`` is served: a symlink to a file or a folder outside it is
    not. Anything else (missing, a folder, a name that is too long, holds NUL
    or cannot be encoded, any ``OSError``) is logged in one line, without a
    traceback, and gives None.
    """
    try:
        path = (root / name).resolve(strict=True)
        mode = path.stat().st_mode
    except (OSError, ValueError, RuntimeError) as error:  # RuntimeError: a symlink loop
        reason = f"{type(error).__name__}: {getattr(error, 'strerror', None) or error}"
    else:
        if not path.is_relative_to(root):
            reason = "outside the static folder"
        elif not stat.S_ISREG(mode):
            reason = "not a regular file"
        else:
            return path
    shown = name if len(name) <= 80 else name[:80] + "..."
    log.info("static %r not served: %s", shown, reason)
    return None


class Headers(Protocol):
    """A response's headers (Werkzeug's ``Headers``, a dict...)."""

    def __setitem__(self, key: str, value: str) -> None: ...


def add_hardening_headers(headers: Headers, policy: str | None, host: str) -> None:
    """Add the hardening headers of an HTTP response (every one; not websocket
    upgrades): ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
    no-referrer`` (the demo pages' URLs hold room names and codes: no other site
    learns them), and ``Content-Security-Policy``: ``policy``
    (``DUORELAY_CONTENT_SECURITY_POLICY``; empty: none), by default
    :data:`CONTENT_SECURITY_POLICY` for ``host`` (the request's Host header,
    used only if it looks like a host)."""
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    if policy is None:
        websockets = f" ws://{host} wss://{host}" if _HOST.fullmatch(host) else ""
        policy = CONTENT_SECURITY_POLICY.format(websockets=websockets)
    if policy:
        headers["Content-Security-Policy"] = policy


def body_cut_after(receive: ASGIReceiveCallable, limit: int) -> ASGIReceiveCallable:
    """``receive`` for Quart, with the request body cut after ``limit`` + 1 bytes.

    Quart 0.23 keeps a body it receives, in a queue without bound, until it is
    complete, and only then compares its size with ``MAX_CONTENT_LENGTH`` (Quart
    0.22 compares as it goes). So the body ends, for Quart, at the first byte
    over the limit: Quart answers 413 at once; the rest is read and dropped.
    """
    received = 0

    async def cut() -> ASGIReceiveEvent:
        nonlocal received
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message
            if received > limit:
                continue  # the body already ended for Quart: drop the rest
            body = message.get("body", b"")
            if received + len(body) <= limit:
                received += len(body)
                return message
            keep = limit + 1 - received
            received = limit + 1
            return {"type": "http.request", "body": body[:keep], "more_body": False}

    return cut


RESPONSE_END_TIMEOUT = 5.0
"""Seconds the last message of an HTTP response may take to send (shielded)."""


async def send_shielding_the_end(send: ASGISendCallable, message: ASGISendEvent) -> None:
    """``send`` for Quart, the last body message of a response shielded from
    cancellation for at most :data:`RESPONSE_END_TIMEOUT` seconds.

    Hypercorn finishes the connection inside that send: it reports
    ``http.disconnect`` to the app, then closes the connection (a response with
    ``Connection: close``, such as a 408 before the body was read) or readies
    it for the next request. quart-trio cancels the app's tasks as soon as it
    reads that ``http.disconnect``, which cancelled the send before the close:
    the connection then stayed open, the client still sending its body.
    """
    if message["type"] == "http.response.body" and not message.get("more_body", False):
        with trio.move_on_after(RESPONSE_END_TIMEOUT) as scope:
            scope.shield = True
            await send(message)
    else:
        await send(message)
