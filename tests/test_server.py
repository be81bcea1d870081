"""The commands an operator runs: ``python -m duorelay`` and plain ``hypercorn``.

Each test starts the real command as a subprocess on an ephemeral port (read
from Hypercorn's "Running on" line) and talks to it over TCP.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from conftest import DUORELAY, ROOT, closed_with, server_process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_shutdown_closes_every_client_with_1001(signum: signal.Signals) -> None:
    graceful = 2.0
    async with server_process(*DUORELAY, "--graceful-timeout", str(graceful)) as (proc, server):
        async with (
            server.join("bye", 0) as a,
            server.join("bye", 1) as b,
            server.connect() as pending,  # connected, no join yet
        ):
            await a.send_message("ping")
            assert await b.get_message() == "ping"
            proc.process.send_signal(signum)
            with trio.fail_after(graceful + 1):
                for ws in (a, b, pending):
                    assert await closed_with(ws) == (1001, "server shutting down")
                await proc.process.wait()
        await proc.read_to_end()
    assert proc.process.returncode == 0
    assert b"closing 3 connections with 1001" in proc.stderr
    assert b"Traceback" not in proc.stderr


async def test_plain_hypercorn_command_relays() -> None:
    command = ("hypercorn", "duorelay.app:app", "--worker-class", "trio", "-b", "127.0.0.1:0")
    hypercorn = str(Path(sys.executable).with_name("hypercorn"))
    async with server_process(hypercorn, *command[1:]) as (proc, server):
        async with server.join("plain", 0) as a, server.join("plain", 1) as b:
            await b.send_message("*")
            assert await a.get_message() == "*"
        await proc.read_until(re.compile(rb"TCP_USER_TIMEOUT 30 s set on 1 listening socket"))
        proc.process.terminate()
        await proc.process.wait()


def test_help_lists_options_and_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "duorelay", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "usage: python -m duorelay" in result.stdout
    for text in (
        "--bind",
        "--graceful-timeout",
        "DUORELAY_MAX_MESSAGE_SIZE",
        "DUORELAY_IDLE_TIMEOUT",
    ):
        assert text in result.stdout


def test_bad_setting_stops_start_with_the_variable_named() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "duorelay"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DUORELAY_OUTBOX_SIZE": "lots"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("duorelay: bad settings: DUORELAY_OUTBOX_SIZE='lots'")
    assert "Traceback" not in result.stderr
