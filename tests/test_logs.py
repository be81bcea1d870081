"""Logs: one readable line per connection event, never a payload."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from conftest import Server, closed_with, settle


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect()
    logger = logging.getLogger("duorelay")
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


async def test_connection_events_one_line_each_without_payloads(
    server: Server, log_lines: list[str]
) -> None:
    async with server.join("Log room", 0) as a, server.join("Log room", 1) as b:
        await settle()
        await a.send_message("SECRET-PAYLOAD")
        assert await b.get_message() == "SECRET-PAYLOAD"
        async with server.join("Log room", 1) as intruder:
            assert (await closed_with(intruder))[0] == 4409
    await settle()
    assert not any("SECRET" in line for line in log_lines)
    events = [line.split(" ", 2)[1] for line in log_lines]
    assert events.count("connected") == 3
    assert events.count("joined") == 2
    assert events.count("closed") == 3
    refused = next(line for line in log_lines if "code=4409" in line)
    assert "reason='seat 1 of this room is already taken'" in refused
    assert "ns='default' room='Log room' seat=1" in refused
    sender = next(line for line in log_lines if "closed" in line and "seat=0" in line)
    assert "frames_in=2 frames_out=0" in sender
