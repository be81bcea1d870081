"""An XO API client for tests: HTTP over h11 and the websocket over trio-websocket."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from trio_websocket import WebSocketConnection

from conftest import Server, http_request


async def call(
    server: Server,
    method: str,
    path: str,
    *,
    token: str | None = None,
    form: dict[str, str] | None = None,
    body: Any = None,
    raw: bytes | None = None,
    headers: list[tuple[str, str]] | None = None,
    source: str | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request; ``(status, headers (lowercase names), body)``, the body
    decoded as JSON when the answer is JSON, else bytes."""
    sent = [("Host", server.address), *(headers or [])]
    data = b""
    if form is not None:
        data = urlencode(form).encode()
        sent.append(("Content-Type", "application/x-www-form-urlencoded"))
    elif body is not None:
        data = json.dumps(body).encode()
        sent.append(("Content-Type", "application/json"))
    elif raw is not None:
        data = raw
    if token is not None:
        sent.append(("Authorization", f"Bearer {token}"))
    sent.append(("Content-Length", str(len(data))))
    status, answer, content = await http_request(server, method, path, sent, data, source)
    if answer.get("content-type", "").startswith("application/json"):
        return status, answer, json.loads(content)
    return status, answer, content


async def sign_up(server: Server, name: str, password: str = "secret-pw") -> str:
    """A new account's login token."""
    status, _, body = await call(
        server, "POST", "/auth/signup", form={"username": name, "password": password}
    )
    assert status == 200, body
    return str(body["access_token"])


async def reply(ws: WebSocketConnection) -> dict[str, Any]:
    """The next frame, which must be a reply (a JSON string holding an object)."""
    frame = await ws.get_message()
    inner = json.loads(frame)
    assert isinstance(inner, str), frame
    value: dict[str, Any] = json.loads(inner)
    return value


async def broadcast(ws: WebSocketConnection) -> dict[str, Any]:
    """The next frame, which must be a broadcast; its event."""
    frame = json.loads(await ws.get_message())
    assert isinstance(frame, dict) and frame["type"] == "broadcast", frame
    event: dict[str, Any] = frame["data"]
    return event


def move(game: str, player: str, sequence: int, x: int, y: int) -> str:
    """A move command frame."""
    data = {
        "game_uuid": game,
        "name": "move",
        "sequence": sequence,
        "player_uuid": player,
        "timestamp": "2026-01-01T00:00:00Z",
        "params": {"player": player, "cell": [x, y]},
    }
    return json.dumps({"type": "command", "data": data})


def authorize(token: str) -> str:
    return json.dumps({"type": "authorize", "data": {"token": token}})
