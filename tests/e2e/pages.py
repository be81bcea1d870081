"""Page object for the Connect Four demo (src/duorelay/static/index.html + connect4.js).

Imported by the test modules only after ``pytest.importorskip("playwright")``.
Every wait is one of Playwright's auto-waiting ``expect`` assertions: no fixed
sleeps. (Not ``wait_for_function``: its predicate is compiled in the page,
which the server's Content-Security-Policy forbids, as it should.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, WebSocket, expect

NAMES = ("Red", "Yellow")

# Added to every page before its own scripts: records the close code of every
# WebSocket the page opens, so a test can check that the server closed with,
# e.g., 4409 (seat taken) or 1001 (going away), not merely what the page shows.
RECORD_CLOSE_CODES = """
(() => {
  const Native = window.WebSocket;
  window.__wsCloseCodes = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("close", (e) => {
        window.__wsCloseCodes.push(e.code);
        document.documentElement.dataset.wsCloseCodes = window.__wsCloseCodes.join(" ");
      });
    }
  };
  // Anything the Content-Security-Policy blocks fails the test (an uncaught error).
  document.addEventListener("securitypolicyviolation", (e) => {
    setTimeout(() => {
      throw new Error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
})();
"""


def close_codes(*codes: int) -> re.Pattern[str]:
    """Matches the recorded close codes (``html[data-ws-close-codes]``, in order)
    when ``codes`` are among them, in that order."""
    return re.compile(r"(^| )" + r" (.* )?".join(str(int(code)) for code in codes) + r"( |$)")


class Player:
    """One browser context (an independent player) showing the demo page."""

    def __init__(self, name: str, page: Page, base_url: str, shot_prefix: Path) -> None:
        self.name = name
        self.page = page
        self.base_url = base_url
        self._shot_prefix = shot_prefix
        self.page_errors: list[str] = []
        self.frames_sent: list[str] = []
        self.frames_received: list[str] = []
        page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        page.on("websocket", self._watch_websocket)

    def __repr__(self) -> str:
        return f"Player({self.name!r})"

    # ---- websocket frames, as the browser sent and received them ----

    def _watch_websocket(self, ws: WebSocket) -> None:
        ws.on("framesent", lambda payload: self.frames_sent.append(_text(payload)))
        ws.on("framereceived", lambda payload: self.frames_received.append(_text(payload)))

    def clear_frames(self) -> None:
        self.frames_sent.clear()
        self.frames_received.clear()

    def received_states(self) -> list[dict[str, Any]]:
        """The JSON game states received so far (``*`` requests left out)."""
        return [json.loads(f) for f in self.frames_received if f and not f.startswith("*")]

    def wait_for_close_code(self, code: int) -> None:
        """Wait until one of the page's websockets was closed with ``code``."""
        expect(self.page.locator("html")).to_have_attribute(
            "data-ws-close-codes", close_codes(code)
        )

    # ---- locators ----

    @property
    def status(self) -> Locator:
        return self.page.locator("#status")

    @property
    def conn(self) -> Locator:
        return self.page.locator("#conn")

    @property
    def board(self) -> Locator:
        return self.page.locator("#board")

    @property
    def discs(self) -> Locator:
        return self.page.locator(".cell[data-player]")

    def cell(self, col: int, row: int) -> Locator:
        """Cell at column ``col`` (0 = left), row ``row`` (0 = bottom)."""
        return self.page.locator(f'.cell[data-col="{col}"][data-row="{row}"]')

    def column(self, col: int) -> Locator:
        return self.page.locator(f'.col[data-col="{col}"]')

    # ---- actions ----

    def open_start(self) -> None:
        self.page.goto(self.base_url)
        expect(self.page.locator("#start-panel")).to_be_visible()
        expect(self.page.locator("#game-panel")).to_be_hidden()

    def create(self, room: str) -> None:
        """Type ``room`` on the start panel and press Create (seat 0, Red)."""
        self._start(room, "#create-btn")

    def join(self, room: str) -> None:
        """Type ``room`` on the start panel and press Join (seat 1, Yellow)."""
        self._start(room, "#join-btn")

    def _start(self, room: str, button: str) -> None:
        self.page.fill("#room-input", room)
        self.page.click(button)
        expect(self.page.locator("#game-panel")).to_be_visible()
        expect(self.page.locator("#room-name")).to_have_text(room)

    def expect_seated(self, seat: int) -> None:
        """The page shows the board as ``seat`` and is connected."""
        expect(self.board).to_be_visible()
        expect(self.page.locator("#you")).to_have_text(NAMES[seat])
        expect(self.conn).to_have_text("Connected")
        expect(self.page.locator(".col")).to_have_count(7)
        expect(self.page.locator(".cell")).to_have_count(42)

    def board_state(self) -> list[list[int]]:
        """board[c][r] as the page shows it: 0 empty, 1 Red, 2 Yellow."""
        result: list[list[int]] = self.page.evaluate(
            """() => Array.from({length: 7}, (_, c) => Array.from({length: 6}, (_, r) => {
                 const p = document.querySelector(
                   `.cell[data-col="${c}"][data-row="${r}"]`).dataset.player;
                 return p === undefined ? 0 : Number(p) + 1;
               }))"""
        )
        return result

    def screenshot(self, moment: str) -> Path:
        """Save ``<scenario>-<moment>-<player>.png`` in test-artifacts/e2e/.

        Finite CSS animations (the disc drop) are fast-forwarded and the mouse
        is moved off the board, so the picture shows the settled page.
        """
        path = self._shot_prefix.with_name(f"{self._shot_prefix.name}-{moment}-{self.name}.png")
        self.page.mouse.move(0, 0)
        self.page.screenshot(path=path, animations="disabled")
        return path


class View:
    """One player's view of a page (a page object's base): the ``player``, its
    ``page`` and ``name``, and the page's elements by ``data-testid``."""

    def __init__(self, player: Player) -> None:
        self.player = player
        self.page = player.page
        self.name = player.name

    def tid(self, testid: str) -> Locator:
        return self.page.get_by_test_id(testid)


def _text(payload: str | bytes) -> str:
    return payload if isinstance(payload, str) else payload.decode("utf-8", "replace")


def play(mover: Player, other: Player, col: int, row: int, seat: int) -> None:
    """``mover`` (playing ``seat``) clicks column ``col``; the disc must land in
    ``row`` on both pages."""
    expect(mover.status).to_have_text("Your turn")
    expect(other.status).to_have_text("Their turn")
    mover.column(col).click()
    for p in (mover, other):
        expect(p.cell(col, row)).to_have_attribute("data-player", str(seat))


def play_columns(red: Player, yellow: Player, columns: list[int]) -> None:
    """Play ``columns`` in order, Red first, from the position both pages show."""
    height = [sum(1 for v in col if v) for col in red.board_state()]
    moves = sum(height)
    players = (red, yellow)
    for col in columns:
        seat = moves % 2
        play(players[seat], players[1 - seat], col, height[col], seat)
        height[col] += 1
        moves += 1


WAITING = re.compile(r"Waiting for the other player")
