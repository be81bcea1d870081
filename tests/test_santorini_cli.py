"""The Santorini commands end to end, and the service beside the web server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import trio
from sqlalchemy import select

from conftest import ROOT, Process, StartServer, http_get, settle
from duorelay.cli import parser
from duorelay.services.santorini_clients import Bot
from duorelay.store.gateway import Store
from duorelay.store.schema import tournaments

LISTENING = re.compile(rb"santorini: listening on 127\.0\.0\.1:(\d+)")
REGISTERED = re.compile(rb"registered player='([a-z]+)'")
PYTHON = (sys.executable, "-m", "duorelay")


async def start(
    args: list[str], stdin: bytes, tmp_path: Path, **env: str
) -> tuple[trio.Process, Process]:
    process = await trio.lowlevel.open_process(
        [*PYTHON, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "DUORELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", **env},
    )
    assert process.stdin is not None
    await process.stdin.send_all(stdin)
    await process.stdin.aclose()
    return process, Process(process)


async def read_all(stream: trio.abc.ReceiveStream | None) -> bytes:
    assert stream is not None
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


async def test_server_and_clients_commands_play_a_tournament(tmp_path: Path) -> None:
    config = {"min players": 3, "port": 0, "waiting for": 30, "repeat": 0}
    with trio.fail_after(120):
        # The lobby is full at 3: the tournament starts without waiting 30 s.
        server, server_err = await start(
            ["santorini"],
            json.dumps(config).encode(),
            tmp_path,
            DUORELAY_SANTORINI_MAX_PLAYERS="3",
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server_err.collect)
                port = int((await server_err.read_until(LISTENING)).group(1))
                clients_config = {
                    "players": [
                        ["good", "alpha", "Santorini/Code/Player/player"],
                        ["good", "bravo", "Santorini/Code/Player/player"],
                        ["good", "charlie", "Santorini/Code/Player/player"],
                    ],
                    "observers": [],
                    "ip": "127.0.0.1",
                    "port": port,
                }
                clients = await trio.run_process(
                    [*PYTHON, "santorini-clients"],
                    cwd=ROOT,
                    stdin=json.dumps(clients_config).encode(),
                    capture_stdout=True,
                    capture_stderr=True,
                )
                stdout = await read_all(server.stdout)
                assert await server.wait() == 0
        finally:
            if server.returncode is None:
                server.kill()
                await server.wait()
    # Good bots: player two (the later registration) wins every series.
    one, two, three = [m.decode() for m in REGISTERED.findall(server_err.stderr)]
    expected = [[two, one], [three, one], [three, two]]
    assert stdout.decode().splitlines() == [json.dumps(expected)]
    lines = [json.loads(line) for line in clients.stdout.decode().splitlines()]
    assert sorted(lines) == sorted([[name, expected] for name in ("alpha", "bravo", "charlie")])
    store = Store(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        saved = await store.run(lambda c: c.execute(select(tournaments.c.results)).scalars().all())
    finally:
        store.close()
    assert saved == [expected]


async def test_server_command_without_enough_players(tmp_path: Path) -> None:
    config = b'{"min players": 2, "port": 0, "waiting for": 0.2, "repeat": 0}'
    with trio.fail_after(60):
        done = await trio.run_process(
            [*PYTHON, "santorini", "--no-store"],
            cwd=ROOT,
            stdin=config,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 1
    assert done.stdout == b""
    assert b"no tournament" in done.stderr
    assert not (tmp_path / "cli.db").exists()


async def test_server_command_refuses_a_bad_configuration(tmp_path: Path) -> None:
    with trio.fail_after(60):
        done = await trio.run_process(
            [*PYTHON, "santorini"],
            cwd=ROOT,
            stdin=b'{"min players": 2, "port": 0, "waiting for": 1, "repeat": 2}',
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode == 2
    assert b"'repeat' must be 0 or 1" in done.stderr


def test_every_command_has_help() -> None:
    cli = parser()
    for command in ("serve", "santorini", "santorini-clients"):
        assert command in cli.format_help()
    assert parser().parse_args([]).command is None
    assert parser().parse_args(["--bind", "x:1"]).bind == ["x:1"]
    assert parser().parse_args(["--bind", "x:1", "serve"]).bind == ["x:1"]
    assert parser().parse_args(["serve", "--bind", "x:1"]).bind == ["x:1"]
    assert parser().parse_args(["santorini", "--host", "0.0.0.0"]).host == "0.0.0.0"


async def test_beside_the_web_server(start_server: StartServer, tmp_path: Path) -> None:
    server = await start_server(
        santorini_port=0,
        santorini_max_players=2,
        database_url=f"sqlite:///{tmp_path / 'beside.db'}",
    )
    santorini = server.app.santorini
    assert santorini is not None and santorini.address is not None
    alpha, bravo = Bot("alpha"), Bot("bravo")
    async with trio.open_nursery() as nursery:
        for bot in (alpha, bravo):
            stream = await trio.open_tcp_stream("127.0.0.1", santorini.address[1])
            await bot.register(stream)
            await settle()
            nursery.start_soon(_play, bot, stream)
    assert alpha.results is not None and bravo.results is not None
    while santorini.tournaments < 1:
        await settle()
    status, _, _ = await http_get(server, "/healthz")
    assert status == 200


async def _play(bot: Bot, stream: trio.SocketStream) -> None:
    async with stream:
        await bot.play(stream)
