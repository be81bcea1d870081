"""The HTTP front: hardening headers on every response, bounded request bodies."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import h11
import pytest
import trio
import wsproto.events as ws_events

from conftest import RawClient, Server, StartServer, http_get

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self' ws://{host} wss://{host}; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


async def request(
    server: Server,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str | bytes]],
    body: bytes = b"",
    *,
    end: bool = True,
) -> tuple[h11.Response, bytes, bool]:
    """Send one request (``body`` as given; with ``end`` False the body is left
    unfinished) and read the answer: the response, its body, and, if the body
    was left unfinished, whether the server then closed the connection (an
    unfinished request leaves nothing else to do)."""
    host, port = server.address.rsplit(":", 1)
    connection = h11.Connection(h11.CLIENT)
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        raw = [(name.encode(), v if isinstance(v, bytes) else v.encode()) for name, v in headers]
        data = connection.send(h11.Request(method=method, target=target, headers=raw))
        if body:
            data += connection.send(h11.Data(data=body))
        if end:
            data += connection.send(h11.EndOfMessage())
        await stream.send_all(data)
        response, received = None, b""
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some())
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                received += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        assert response is not None
        closed = not end and await stream.receive_some() == b""  # EOF: the server closed
        return response, received, closed


def header(response: h11.Response, name: str) -> str | None:
    values = [v.decode() for k, v in response.headers if k.decode().lower() == name]
    assert len(values) <= 1
    return values[0] if values else None


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),
        ("/static/connect4.js", 200),
        ("/static/buzzer/host.html", 200),
        ("/healthz", 200),
        ("/metrics", 200),
        ("/ABCD", 404),  # GET /{CODE}: no such room
        ("/no/such/page", 404),
        ("/static/no-such-file.js", 404),
    ],
)
async def test_hardening_headers_on_every_http_response(
    server: Server, path: str, status: int
) -> None:
    got, headers, _ = await http_get(server, path)
    assert got == status
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["content-security-policy"] == CSP.format(host=server.address)


async def test_room_lookup_stays_readable_from_any_origin(server: Server) -> None:
    status, headers, body = await http_get(server, "/ABCD")
    assert (status, body) == (404, b"Game not found")
    assert headers["access-control-allow-origin"] == "*"
    assert headers["content-security-policy"] == CSP.format(host=server.address)


@pytest.mark.parametrize(
    "host", ["evil.example; script-src *", "a b", "x'y", "[::1", "host:port", "é.example"]
)
async def test_a_strange_host_header_never_reaches_the_policy(server: Server, host: str) -> None:
    response, _, _ = await request(server, "GET", "/", [("Host", host.encode())])
    assert response.status_code == 200
    policy = header(response, "content-security-policy")
    assert policy == CSP.replace(" ws://{host} wss://{host}", "")


@pytest.mark.parametrize("host", ["example.com", "127.0.0.1:8000", "[::1]:8000", "my-host"])
async def test_the_policy_allows_websockets_to_the_host_of_the_page(
    server: Server, host: str
) -> None:
    response, _, _ = await request(server, "GET", "/", [("Host", host)])
    assert header(response, "content-security-policy") == CSP.format(host=host)


async def test_content_security_policy_setting(start_server: StartServer) -> None:
    mine = await start_server(content_security_policy="default-src 'self' https://cdn.example")
    _, headers, _ = await http_get(mine, "/")
    assert headers["content-security-policy"] == "default-src 'self' https://cdn.example"
    none = await start_server(content_security_policy="")
    _, headers, _ = await http_get(none, "/")
    assert "content-security-policy" not in headers
    assert headers["x-content-type-options"] == "nosniff"


async def test_websocket_upgrades_carry_no_http_hardening_headers(server: Server) -> None:
    host, port = server.address.rsplit(":", 1)
    client = RawClient(await trio.open_tcp_stream(host, int(port)))
    async with client.stream:
        await client._send(ws_events.Request(host=server.address, target="/ws"))
        accept = await client.next_event()
        assert isinstance(accept, ws_events.AcceptConnection)
        names = {name.lower() for name, _ in accept.extra_headers}
        assert not names & {b"content-security-policy", b"x-content-type-options"}


async def test_a_slow_body_gets_408_and_the_connection_closed(start_server: StartServer) -> None:
    server = await start_server(body_timeout=0.5)
    headers = [("Host", server.address), ("Content-Length", "100")]
    with trio.fail_after(20):  # safety only: the idle timeout is 60 s
        response, body, closed = await request(server, "POST", "/", headers, b"a", end=False)
    assert (response.status_code, body, closed) == (408, b"408 Request Timeout", True)
    assert header(response, "connection") == "close"


async def test_a_slow_body_on_a_get_gets_408(start_server: StartServer) -> None:
    server = await start_server(body_timeout=0.5)
    headers = [("Host", server.address), ("Content-Length", "10")]
    with trio.fail_after(20):
        response, _, closed = await request(server, "GET", "/ABCD", headers, b"a", end=False)
    assert (response.status_code, closed) == (408, True)


@pytest.mark.parametrize("method", ["POST", "GET", "PUT"])
async def test_an_announced_body_over_64_kib_gets_413(server: Server, method: str) -> None:
    headers = [("Host", server.address), ("Content-Length", str(64 * 1024 + 1))]
    with trio.fail_after(20):
        response, body, closed = await request(server, method, "/healthz", headers, end=False)
    assert (response.status_code, body, closed) == (413, b"413 Request Entity Too Large", True)
    assert header(response, "x-content-type-options") == "nosniff"


async def test_a_chunked_body_over_64_kib_gets_413(server: Server) -> None:
    headers = [("Host", server.address), ("Transfer-Encoding", "chunked")]
    with trio.fail_after(20):
        response, _, closed = await request(
            server, "POST", "/", headers, bytes(64 * 1024 + 1), end=False
        )
    assert (response.status_code, closed) == (413, True)


async def test_a_small_body_is_read_and_ignored(server: Server) -> None:
    headers = [("Host", server.address), ("Content-Length", "5")]
    response, body, _ = await request(server, "GET", "/ABCD", headers, b"hello")
    assert (response.status_code, body) == (404, b"Game not found")
    response, _, _ = await request(server, "POST", "/", headers, b"hello")
    assert response.status_code == 405


async def test_an_endless_chunked_body_is_refused_while_it_streams(server: Server) -> None:
    """The server answers 413 at the first byte over 64 KiB and closes; it never
    waits for (nor keeps) the rest of the body."""
    host, port = server.address.rsplit(":", 1)
    connection = h11.Connection(h11.CLIENT)
    headers = [("Host", server.address), ("Transfer-Encoding", "chunked")]
    chunk, most = bytes(64 * 1024), 1600  # up to 100 MiB
    sent = 0
    async with await trio.open_tcp_stream(host, int(port)) as stream:
        request = h11.Request(method="POST", target="/", headers=headers)
        await stream.send_all(connection.send(request))

        async def stream_the_body() -> None:
            nonlocal sent
            try:
                while sent < most:
                    await stream.send_all(connection.send(h11.Data(data=chunk)))
                    sent += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the server closed the connection

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream_the_body)
            response = None
            while not isinstance(response, h11.Response):
                connection.receive_data(await stream.receive_some())
                response = connection.next_event()
            assert response.status_code == 413
            with contextlib.suppress(trio.BrokenResourceError):  # a reset: closed too
                while await stream.receive_some():
                    pass  # until the server closes
    assert sent < most
