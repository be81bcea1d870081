"""Logs: one readable line per connection event, never a payload."""

from __future__ import annotations

from conftest import LogWatch, Server, closed_with, settle


async def test_connection_events_one_line_each_without_payloads(
    server: Server, server_log: LogWatch
) -> None:
    async with server.join("Log room", 0) as a, server.join("Log room", 1) as b:
        await settle()
        await a.send_message("SECRET-PAYLOAD")
        assert await b.get_message() == "SECRET-PAYLOAD"
        async with server.join("Log room", 1) as intruder:
            assert (await closed_with(intruder))[0] == 4409
    await settle()
    lines = [record.getMessage() for record in server_log.records]
    assert not any("SECRET" in line for line in lines)
    events = [line.split(" ", 2)[1] for line in lines]
    assert events.count("connected") == 3
    assert events.count("joined") == 2
    assert events.count("closed") == 3
    refused = next(line for line in lines if "code=4409" in line)
    assert "reason='seat 1 of this room is already taken'" in refused
    assert "ns='default' room='Log room' seat=1" in refused
    sender = next(line for line in lines if "closed" in line and "seat=0" in line)
    assert "frames_in=2 frames_out=0" in sender
