"""Fixtures for the browser tests: the real server, Chromium, independent players.

* ``relay``: ``python -m duorelay`` as a subprocess on 127.0.0.1 (port chosen by
  the OS and read from Hypercorn's "Running on" line). ``stop()`` sends SIGTERM
  (graceful: clients get 1001); ``start()`` again reuses the same port.
* ``browser``: Debian's Chromium (``/usr/bin/chromium``, or ``$DUORELAY_E2E_CHROMIUM``)
  driven by Playwright; Playwright's own browser download is never used. Missing
  Chromium fails the tests when ``$CI`` is set and skips them otherwise.
* ``open_player``: a factory of players, each in its own browser context (own
  cookies and sessionStorage, like two people on two machines).

Screenshots go to ``test-artifacts/e2e/`` (git-ignored), with the server's log;
a failed test also leaves a screenshot of every page it had open.

Playwright is imported lazily here, so that without it the test modules are
skipped (``pytest.importorskip``) instead of breaking collection.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

    from .pages import Player

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = Path(os.environ.get("DUORELAY_E2E_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 620, "height": 860}
EXPECT_TIMEOUT_MS = 10_000
SERVER_START_TIMEOUT = 30.0
SERVER_STOP_TIMEOUT = 15.0
RUNNING_ON = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


class RelayServer:
    """``python -m duorelay`` in a subprocess, bound to 127.0.0.1.

    The first :meth:`start` binds port 0 and reads the port Hypercorn chose from
    its "Running on http://127.0.0.1:PORT" line (no race with another process
    taking a port we picked); later starts bind that same port again.
    """

    def __init__(self, log: IO[str], env: dict[str, str] | None = None) -> None:
        self.port: int | None = None
        self.env = env or {}
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._log = log
        self._proc: subprocess.Popen[str] | None = None
        self._pump: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "server not started yet"
        return f"http://127.0.0.1:{self.port}/"

    @property
    def running(self) -> bool:
        return self._proc is not None

    def start(self) -> None:
        assert self._proc is None, "server already running"
        bind = f"127.0.0.1:{self.port or 0}"
        self._log.write(f"--- starting python -m duorelay --bind {bind}\n")
        self._log.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "duorelay", "--bind", bind],
            cwd=ROOT,  # any folder: the demo pages ship in the package
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        ready: queue.Queue[int | None] = queue.Queue()
        # A thread keeps draining the server's output into the log for as long as
        # the server runs, so a full pipe can never block its logging.
        pump = threading.Thread(target=self._copy_output, args=(proc, ready), daemon=True)
        pump.start()
        self._proc, self._pump = proc, pump
        try:
            port = ready.get(timeout=SERVER_START_TIMEOUT)
        except queue.Empty:
            self.stop()
            raise RuntimeError(
                f"duorelay printed no 'Running on' line in {SERVER_START_TIMEOUT}s; "
                f"see {self._log.name}"
            ) from None
        if port is None:
            self.stop()
            raise RuntimeError(f"duorelay exited at start-up; see {self._log.name}")
        if self.port is not None and port != self.port:
            self.stop()
            raise RuntimeError(f"duorelay restarted on port {port}, not {self.port}")
        self.port = port

    def _copy_output(self, proc: subprocess.Popen[str], ready: queue.Queue[int | None]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self._log.write(line)
                self._log.flush()
                with self._seen:
                    self.lines.append(line)
                    self._seen.notify_all()
                if m := RUNNING_ON.search(line):
                    ready.put(int(m.group(1)))
        ready.put(None)  # EOF: the server exited (harmless after a successful start)

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        """The first line of the server's output matching ``pattern``, waiting for it."""
        with self._seen:
            found: list[re.Match[str]] = []

            def match() -> bool:
                found[:] = [m for line in self.lines if (m := pattern.search(line))][:1]
                return bool(found)

            if not self._seen.wait_for(match, timeout):
                raise RuntimeError(f"no line matching {pattern.pattern!r} in {timeout}s")
            return found[0]

    def stop(self) -> None:
        """SIGTERM, as a service manager would stop it; wait until it has exited."""
        proc, pump = self._proc, self._pump
        if proc is None or pump is None:
            return
        self._proc = self._pump = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise RuntimeError("duorelay did not exit within 15s of SIGTERM") from None
        finally:
            pump.join(timeout=SERVER_STOP_TIMEOUT)
        self._log.write(f"--- exited with {proc.returncode}\n")
        self._log.flush()

    def restart(self) -> None:
        self.stop()
        self.start()


def _scenario_name(item: pytest.Item) -> str:
    name = item.name.removeprefix("test_")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """test-artifacts/e2e/, emptied of the previous run's screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    (ARTIFACTS / "server.log").unlink(missing_ok=True)
    return ARTIFACTS


@contextmanager
def serving(
    artifacts_dir: Path, request: pytest.FixtureRequest, env: dict[str, str] | None = None
) -> Iterator[RelayServer]:
    """A started duorelay server (with ``env`` added to its environment), its
    output appended to server.log; stopped (SIGTERM) on leaving."""
    with (artifacts_dir / "server.log").open("a", encoding="utf-8") as log:
        log.write(f"=== {request.node.nodeid}\n")
        server = RelayServer(log, env)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def relay(
    artifacts_dir: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[RelayServer]:
    """A started duorelay server, stopped (SIGTERM) after the test; its database
    a file of the test's own folder (never one in the repository)."""
    env = {"DUORELAY_DATABASE_URL": f"sqlite:///{tmp_path / 'duorelay.db'}"}
    with serving(artifacts_dir, request, env) as server:
        yield server


def shot(player: Player, game: str, moment: str) -> Path:
    """A full-page screenshot ``ARTIFACTS/{game}-{moment}-{player}.png``, the mouse
    moved out of the way (no hover state), animations off."""
    path = ARTIFACTS / f"{game}-{moment}-{player.name}.png"
    player.page.mouse.move(0, 0)
    player.page.screenshot(path=path, animations="disabled", full_page=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, driven by Playwright."""
    if not CHROMIUM.exists():
        msg = (
            f"{CHROMIUM} not found: the browser tests drive Debian's Chromium "
            "(apt-get install chromium), or set DUORELAY_E2E_CHROMIUM to a Chromium binary"
        )
        if in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so fixtures can see a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def open_player(
    browser: Browser, relay: RelayServer, artifacts_dir: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], Player]]:
    """``open_player("red")``: a new player in a new browser context, page not yet
    loaded. Fails the test on any uncaught JavaScript error in its page."""
    from .pages import RECORD_CLOSE_CODES, Player

    scenario = _scenario_name(request.node)
    opened: list[tuple[BrowserContext, Player]] = []

    def open_(name: str) -> Player:
        context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        context.add_init_script(RECORD_CLOSE_CODES)
        player = Player(name, context.new_page(), relay.url, artifacts_dir / scenario)
        opened.append((context, player))
        return player

    yield open_

    call = getattr(request.node, "report_call", None)
    failed = call is not None and call.failed
    errors: list[str] = []
    for context, player in opened:
        if failed:
            try:
                player.screenshot("FAILED")
            except Exception as exc:  # a crashed page must not hide the real failure
                errors.append(f"{player.name}: no failure screenshot: {exc}")
        errors += [f"{player.name}: uncaught page error: {e}" for e in player.page_errors]
        context.close()
    if errors and not failed:
        pytest.fail("\n".join(errors), pytrace=False)
