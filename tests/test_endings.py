"""Endings of a connection (docs/architecture.md, "Endings, in one place"):
handlers that end from inside a nursery, and at-end callbacks that fail.

Each test serves a handler of its own on ``/ws`` of the real server (the app's
routing is patched for the test) and talks to it with a real client.
"""

from __future__ import annotations

import logging

import pytest
import trio
import wsproto.events as ws_events

from conftest import LogWatch, RawClient, Server, closed_with
from duorelay.core.session import Handler, Session
from duorelay.protocols import ProtocolError


def serve(server: Server, monkeypatch: pytest.MonkeyPatch, handler: Handler) -> None:
    """Route every websocket of ``server`` to ``handler``."""
    monkeypatch.setattr(server.app, "_websocket_handler", lambda path, address: handler)


def tracebacks(server_log: LogWatch) -> list[logging.LogRecord]:
    return [record for record in server_log.records if record.exc_info]


async def test_protocol_error_from_a_nursery_is_its_close_code(
    server: Server, server_log: LogWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def handler(session: Session) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)  # a room task, say
            await session.receive()
            raise ProtocolError(4400, "bad move")

    serve(server, monkeypatch, handler)
    async with server.connect() as ws:
        await ws.send_message("move")
        assert await closed_with(ws) == (4400, "bad move")
    closed = await server_log.wait_for("closed")
    assert (closed.code, closed.reason) == (4400, "bad move")
    assert not tracebacks(server_log)


async def test_disconnect_seen_in_a_nursery_task_is_client_went_away(
    server: Server, server_log: LogWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def read(session: Session) -> None:
        while True:
            await session.receive()

    async def handler(session: Session) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read, session)
            nursery.start_soon(trio.sleep_forever)

    serve(server, monkeypatch, handler)
    client = await RawClient.open(server)
    async with client.stream:
        await client.send("hello")
        await client._send(ws_events.CloseConnection(code=1000))
        closed = await server_log.wait_for("closed")
    assert (closed.code, closed.reason) == (None, "client went away")
    assert not tracebacks(server_log)


async def test_bug_beside_a_protocol_error_is_1011_with_its_traceback(
    server: Server, server_log: LogWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> None:
        raise KeyError("bug")

    async def handler(session: Session) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(broken)
            await trio.sleep_forever()

    serve(server, monkeypatch, handler)
    async with server.connect() as ws:
        assert await closed_with(ws) == (1011, "internal error")
    await server_log.wait_for("closed", code=1011)
    (logged,) = tracebacks(server_log)
    assert logged.getMessage().endswith("internal error")


async def test_close_while_a_nursery_ends_badly_keeps_the_close_code(
    server: Server, server_log: LogWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session.close cancels the handler; a ProtocolError raised beside that
    cancellation does not hide it: the close code of close() is sent."""

    async def protest() -> None:
        try:
            await trio.sleep_forever()
        finally:
            raise ProtocolError(4400, "raised while cancelled")

    async def handler(session: Session) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(protest)
            await session.receive()
            session.close(4410, "closed by the server")
            await trio.sleep_forever()

    serve(server, monkeypatch, handler)
    async with server.connect() as ws:
        await ws.send_message("go")
        assert await closed_with(ws) == (4410, "closed by the server")
    assert not tracebacks(server_log)


async def test_at_end_callbacks_all_run_and_a_failure_is_logged(
    server: Server, server_log: LogWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    def failing(name: str) -> None:
        ran.append(name)
        raise RuntimeError(f"{name} failed")

    async def handler(session: Session) -> None:
        session.at_end(lambda: failing("first"))
        session.at_end(lambda: ran.append("second"))
        session.at_end(lambda: failing("third"))
        await session.receive()

    serve(server, monkeypatch, handler)
    async with server.connect() as ws:
        await ws.send_message("bye")
        assert await closed_with(ws) == (1000, None)
    # The callbacks run right after the "closed" line, in the same task,
    # before it reaches a checkpoint.
    await server_log.wait_for("closed", code=1000)
    assert ran == ["first", "second", "third"]
    failures = tracebacks(server_log)
    assert [str(record.exc_info[1]) for record in failures if record.exc_info] == [
        "first failed",
        "third failed",
    ]
    assert all("at-end callback failed" in record.getMessage() for record in failures)


async def test_at_end_callback_failing_under_cancellation_keeps_the_cancel(
    server: Server, server_log: LogWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled from outside (as Hypercorn cancels a connection), a session
    runs every at-end callback and still raises trio.Cancelled."""
    ran: list[str] = []
    outside = trio.CancelScope()
    outcome: list[str] = []
    handler_running = trio.Event()

    def failing() -> None:
        ran.append("failing")
        raise RuntimeError("at-end bug")

    async def handler(session: Session) -> None:
        session.at_end(failing)
        session.at_end(lambda: ran.append("second"))
        handler_running.set()
        await trio.sleep_forever()

    run_session = server.app._run_session

    async def run_cancellable(*args: object) -> None:
        try:
            with outside:
                await run_session(*args)  # type: ignore[arg-type]
            outcome.append(f"cancelled_caught={outside.cancelled_caught}")
        except BaseException as error:
            outcome.append(f"raised {error!r}")
            raise

    serve(server, monkeypatch, handler)
    monkeypatch.setattr(server.app, "_run_session", run_cancellable)
    async with server.connect():
        await handler_running.wait()
        outside.cancel()
        await server_log.wait_for("closed")  # then the callbacks, then the outcome
    assert ran == ["failing", "second"]
    assert outcome == ["cancelled_caught=True"]
    (failure,) = tracebacks(server_log)
    assert "at-end callback failed" in failure.getMessage()
