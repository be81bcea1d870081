"""The Santorini observers page (static/santorini/) in Chromium, against the real server.

``python -m duorelay`` runs with ``DUORELAY_SANTORINI_PORT=0`` (its Santorini
port read from its log) on a SQLite file of the test's; two built-in bots play
a tournament over TCP from a thread of their own (its own ``trio.run``). The
bot "alpha" answers only when the test allows it (:class:`Paced`), so the
page is seen at exact moves of a live game; every wait is on the page (Playwright's
``expect``), the server's log or the bots' thread: no sleeps. axe-core checks
each state; screenshots go to test-artifacts/e2e/santorini-*.png.
"""

from __future__ import annotations

import inspect
import json
import queue
import re
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")

import trio
import trio.lowlevel
from playwright.sync_api import Locator, expect

from duorelay.services.santorini_clients import Bot

from .conftest import RelayServer
from .pages import Player
from .test_a11y import axe_check

OpenPlayer = Callable[[str], Player]
SANTORINI = re.compile(r"santorini: listening on 127\.0\.0\.1:(\d+)")
HOST_VIEWPORT = {"width": 1100, "height": 1300}


class Paced(Bot):
    """A good bot that answers only when allowed (:meth:`allow`, :meth:`let_go`);
    ``requests`` counts the requests it was asked."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.requests = 0
        self.allowed: int | None = 0
        self._lot = trio.lowlevel.ParkingLot()

    async def register(self, stream: trio.SocketStream) -> None:
        await Bot.send(self, stream, self.name)

    async def send(self, stream: trio.SocketStream, value: object) -> None:
        self.requests += 1
        self._lot.unpark_all()
        while self.allowed == 0:
            await self._lot.park()
        if self.allowed is not None:
            self.allowed -= 1
        await super().send(stream, value)

    def allow(self, count: int = 1) -> None:
        assert self.allowed is not None
        self.allowed += count
        self._lot.unpark_all()

    def let_go(self) -> None:
        self.allowed = None
        self._lot.unpark_all()

    async def holding(self, request: int) -> None:
        while self.requests < request:
            await self._lot.park()


class Players:
    """The bots' thread: registers ``bots`` in order (each once the server logged
    it) and plays them; :meth:`call` runs a function in that thread's trio run."""

    def __init__(self, server: RelayServer, port: int, bots: list[Bot]) -> None:
        self.server, self.port, self.bots = server, port, bots
        self._token: queue.Queue[Any] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.token = self._token.get(timeout=30)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the bots' trio run (awaited if it is async); its result."""
        if inspect.iscoroutinefunction(fn):
            return trio.from_thread.run(fn, *args, trio_token=self.token)
        return trio.from_thread.run_sync(fn, *args, trio_token=self.token)

    def join(self) -> None:
        self._thread.join(timeout=60)
        assert not self._thread.is_alive(), "the bots did not finish"
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as error:  # reported by join()
            self._error = error

    async def _main(self) -> None:
        self._token.put(trio.lowlevel.current_trio_token())
        async with trio.open_nursery() as nursery:
            for bot in self.bots:
                stream = await trio.open_tcp_stream("127.0.0.1", self.port)
                await bot.register(stream)
                registered = re.compile(rf"registered player='{bot.name}'")
                await trio.to_thread.run_sync(self.server.wait_for_line, registered)
                nursery.start_soon(self._play, bot, stream)

    async def _play(self, bot: Bot, stream: trio.SocketStream) -> None:
        async with stream:
            await bot.play(stream)


@pytest.fixture
def relay(
    artifacts_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[RelayServer]:
    """The server with its Santorini service: tournaments of 2 players, on a SQLite file."""
    env = {
        "DUORELAY_SANTORINI_PORT": "0",
        "DUORELAY_SANTORINI_MAX_PLAYERS": "2",
        "DUORELAY_SANTORINI_TIME_PER_CALL": "60",
        "DUORELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.db'}",
    }
    with (artifacts_dir / "server.log").open("a", encoding="utf-8") as log:
        log.write(f"=== {request.node.nodeid}\n")
        server = RelayServer(log, env)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def shot(artifacts_dir: Path) -> Callable[[Player, str], Path]:
    def take(player: Player, moment: str) -> Path:
        path = artifacts_dir / f"santorini-{moment}.png"
        player.page.mouse.move(0, 0)
        player.page.screenshot(path=path, animations="disabled", full_page=True)
        return path

    return take


def cell(page: Any, x: int, y: int) -> Locator:
    return page.locator(f'#board td[data-x="{x}"][data-y="{y}"]')


def api(relay: RelayServer, path: str) -> Any:
    with urllib.request.urlopen(f"{relay.url.rstrip('/')}{path}", timeout=10) as response:
        return json.load(response)


def test_santorini_live_game_then_replay(
    open_player: OpenPlayer, relay: RelayServer, shot: Callable[[Player, str], Path]
) -> None:
    port = int(relay.wait_for_line(SANTORINI).group(1))
    viewer = open_player("viewer")
    page = viewer.page
    page.set_viewport_size(HOST_VIEWPORT)  # type: ignore[arg-type]
    page.goto(f"{viewer.base_url}santorini/")
    expect(page.locator("#conn")).to_have_text("Live updates: connected.")
    expect(page.locator("#tournaments-empty")).to_be_visible()
    axe_check(viewer, "the page before any tournament")
    shot(viewer, "01-no-tournament")

    alpha, bravo = Paced("alpha"), Bot("bravo")
    players = Players(relay, port, [alpha, bravo])
    players.start()
    try:
        players.call(alpha.holding, 1)  # game 1 is live: alpha holds its first placement
        # The live game appears (the page follows it), on the empty board.
        expect(page.locator("#tournament-list button")).to_have_text(
            ["Tournament 1 (current): live, 2 players"]
        )
        expect(page.locator("#game-title")).to_have_text("alpha against bravo")
        expect(page.locator("#game-status")).to_have_text("Live: move 0")
        expect(page.locator("#schedule-body tr")).to_have_text(
            [re.compile(r"1alphabravoGame 1: watch live")]
        )
        # ...and advances: alpha places, bravo answers.
        players.call(alpha.allow)
        players.call(alpha.holding, 2)
        expect(page.locator("#game-status")).to_have_text("Live: move 2")
        expect(page.locator("#step")).to_have_text("Move 2: bravo places bravo1 at (5, 5)")
        expect(cell(page, 0, 0)).to_have_text("0 alpha1")
        expect(cell(page, 5, 5)).to_have_text("0 bravo1")
        expect(cell(page, 3, 3)).to_have_text("0")
        axe_check(viewer, "a live game")
        shot(viewer, "02-live-game")
        players.call(alpha.let_go)
        players.join()
    finally:
        if players._thread.is_alive():
            players.call(alpha.let_go)
            players.join()

    # The tournament is over: results, and the games as replays.
    expect(page.locator("#tournament-status")).to_have_text(re.compile(r"^Over at "))
    expect(page.locator("#tournament-results li")).to_have_text(["bravo beat alpha"])
    games = api(relay, "/santorini/api/tournaments/1")["games"]
    assert [g["status"] for g in games] == ["over", "over"]
    events = api(relay, f"/santorini/api/games/{games[0]['id']}")["events"]
    last = len(events)
    replay = page.get_by_role("button", name="Game 1: replay (bravo won)")
    expect(replay).to_be_visible()
    replay.click()
    expect(page.locator("#follow")).not_to_be_checked()
    expect(page.locator("#step")).to_have_text(f"Step 0 of {last}: the empty board")
    expect(cell(page, 0, 0)).to_have_text("0")
    page.locator("#next").click()
    expect(page.locator("#step")).to_have_text(f"Step 1 of {last}: alpha places alpha1 at (0, 0)")
    expect(cell(page, 0, 0)).to_have_text("0 alpha1")
    # The keyboard: focus stays on the controls; arrows, Home and End step.
    page.locator("#next").focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#step")).to_have_text(f"Step 2 of {last}: bravo places bravo1 at (5, 5)")
    page.keyboard.press("End")
    expect(page.locator("#step")).to_have_text(
        f"Step {last} of {last}: bravo wins (climbed to level 3)"
    )
    expect(page.locator("#last")).to_have_attribute("aria-disabled", "true")
    expect(page.locator("#next")).to_be_focused()
    page.keyboard.press("ArrowLeft")
    board = events[last - 2]["board"]  # the climb: the board after the last action
    expect(page.locator("#step")).to_have_text(
        re.compile(rf"^Step {last - 1} of {last}: bravo moves ")
    )
    for y, row in enumerate(board):
        for x, value in enumerate(row):
            if isinstance(value, int):
                text = "dome" if value == 4 else str(value)
            else:
                text = f"{value[0]} {value[1:]}"
            expect(cell(page, x, y)).to_have_text(text)
    page.keyboard.press("Tab")  # to "Last"
    page.keyboard.press("Enter")
    expect(page.locator("#step")).to_have_text(re.compile(rf"^Step {last} of {last}: "))
    page.keyboard.press("Home")
    expect(page.locator("#step")).to_have_text(f"Step 0 of {last}: the empty board")
    expect(page.locator("#previous")).to_have_attribute("aria-disabled", "true")
    page.keyboard.press("ArrowLeft")  # at the first step: nothing happens
    expect(page.locator("#step")).to_have_text(f"Step 0 of {last}: the empty board")
    axe_check(viewer, "a replay")
    page.keyboard.press("End")
    shot(viewer, "03-replay")


def test_santorini_replays_survive_a_restart(
    open_player: OpenPlayer, relay: RelayServer, shot: Callable[[Player, str], Path]
) -> None:
    port = int(relay.wait_for_line(SANTORINI).group(1))
    players = Players(relay, port, [Bot("alpha"), Bot("bravo")])
    players.start()
    players.join()
    relay.restart()  # a new process on the same SQLite file
    viewer = open_player("viewer")
    page = viewer.page
    page.set_viewport_size(HOST_VIEWPORT)  # type: ignore[arg-type]
    page.goto(f"{viewer.base_url}santorini/")
    expect(page.locator("#tournament-list button")).to_have_text(
        ["Tournament 1 (current): over, 2 players"]
    )
    expect(page.locator("#tournament-results li")).to_have_text(["bravo beat alpha"])
    page.get_by_role("button", name="Game 2: replay (bravo won)").click()
    expect(page.locator("#step")).to_have_text(re.compile(r"^Step 0 of \d+: the empty board$"))
    page.locator("#last").click()
    expect(page.locator("#step")).to_have_text(
        re.compile(r"^Step \d+ of \d+: bravo wins \(climbed to level 3\)$")
    )
    axe_check(viewer, "a replay after a restart")
    shot(viewer, "04-replay-after-restart")
