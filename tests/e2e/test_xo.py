"""The XO page (static/xo/) in Chromium, against the real server.

Issue 14: two players sign up through the page, one creates a game, the other
joins it from the lobby, they play it to a win on the 6 x 6 board (4 in a row),
partly with the keyboard, and the event log of the finished game is shown
(game_init, the moves, game_over), also when the game is opened again from
"Your games in this tab" and after a reload. axe-core checks every view: the
login form (with an error), the lobby, a game waiting for its opponent, the
board on either turn, the finished game with its log. Screenshots go to
test-artifacts/e2e/xo-*.png.

``python -m duorelay`` runs on a SQLite file of the test's own. Who plays X is
the server's choice at game_init (docs/xogame.md, Rules): the test reads it from
the pages. Every wait is Playwright's ``expect``: no sleeps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")

from playwright.sync_api import Locator, expect

from .conftest import shot as page_shot
from .pages import Player, View
from .test_a11y import axe_check_all as axe_check

OpenPlayer = Callable[[str], Player]


PAGE_VIEWPORT = {"width": 900, "height": 1200}
PAGE = "xo/"  # the route the index page links to (also /static/xo/index.html)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# (x, y): x the column, y the row. X fills row 0 from the left: 4 in a row.
X_MOVES = [(0, 0), (1, 0), (2, 0), (3, 0)]
O_MOVES = [(0, 1), (1, 1), (2, 1)]
KEYBOARD_MOVES = {1, 2, 4}  # indexes in the game's move order


# ``relay`` (tests/e2e/conftest.py): the server on a SQLite file of this test's:
# no accounts, no games yet.


def shot(player: Player, moment: str) -> Path:
    return page_shot(player, "xo", moment)


class Xo(View):
    """One player's view of /xo/."""

    def cell(self, x: int, y: int) -> Locator:
        return self.tid(f"cell-{x}-{y}")

    @property
    def status(self) -> Locator:
        return self.page.locator("#status")

    def expect_view(self, view: str) -> None:
        expect(self.page.locator("body")).to_have_attribute("data-view", view)
        expect(self.page.locator(f"#{view}-view")).to_be_visible()

    def open(self, path: str = PAGE) -> None:
        self.page.set_viewport_size(PAGE_VIEWPORT)  # type: ignore[arg-type]
        self.page.goto(f"{self.player.base_url}{path}")
        self.expect_view("login")

    def sign_up(self, password: str) -> None:
        self.page.locator("#username").fill(self.name)
        self.page.locator("#password").fill(password)
        self.page.locator("#signup-btn").click()
        self.expect_view("lobby")
        expect(self.page.locator("#me-name")).to_have_text(self.name)
        expect(self.page.locator("#lobby-status")).to_have_text(re.compile(r"^Updated at "))

    def play_with_mouse(self, x: int, y: int) -> None:
        self.cell(x, y).click()

    def play_with_keyboard(self, x: int, y: int) -> None:
        """Focus the board's one tab stop, walk to (x, y) with the arrow keys, press Enter."""
        stop = self.page.locator('#board .cell[tabindex="0"]')
        expect(stop).to_have_count(1)
        stop.focus()
        sx, sy = int(stop.get_attribute("data-x") or 0), int(stop.get_attribute("data-y") or 0)
        keys = ["ArrowRight" if x > sx else "ArrowLeft"] * abs(x - sx)
        keys += ["ArrowDown" if y > sy else "ArrowUp"] * abs(y - sy)
        for key in keys:
            self.page.keyboard.press(key)
        target = self.cell(x, y)
        expect(target).to_be_focused()
        self.page.keyboard.press("Enter")

    def expect_log(self, moves: list[tuple[str, tuple[int, int]]], x: Xo) -> None:
        """The event log: game_init, the moves (mark, cell), game_over with X the winner."""
        expect(self.page.locator("#log-section")).to_be_visible()
        rows = self.page.locator('#log-body tr[data-testid="log-row"]')
        expect(rows).to_have_count(len(moves) + 2)
        expect(self.page.locator("#log-body tr td:nth-child(1)")).to_have_text(
            [str(n) for n in range(1, len(moves) + 3)]
        )
        expect(self.page.locator("#log-body tr td:nth-child(2)")).to_have_text(
            ["game_init"] + ["move"] * len(moves) + ["game_over"]
        )
        expect(self.page.locator("#log-body tr td:nth-child(4)")).to_have_text(
            [""] + [f"row {cy + 1} column {cx + 1}" for _, (cx, cy) in moves] + [""]
        )
        whos = self.page.locator("#log-body tr td:nth-child(3)")
        for i, (mark, _) in enumerate(moves, start=1):
            expect(whos.nth(i)).to_have_text(re.compile(rf"^{mark}: "))
        mine = "you " if x is self else "player "
        expect(whos.nth(len(moves) + 1)).to_have_text(re.compile(rf"^winner X: {mine}"))
        expect(rows.nth(len(moves) + 1)).to_have_attribute("data-sequence", str(len(moves) + 2))


def test_xo_sign_up_create_join_play_event_log(open_player: OpenPlayer) -> None:
    ann, ben = Xo(open_player("ann")), Xo(open_player("ben"))
    for p in (ann, ben):
        p.open()
    # A refused form: no password.
    ann.page.locator("#username").fill("ann")
    ann.page.locator("#login-btn").click()
    expect(ann.page.locator("#auth-error")).to_have_text("Please type a user name and a password.")
    axe_check(ann.player, "the login form with an error")
    # A wrong password for an unknown user: the server's 401, told in words.
    ann.page.locator("#password").fill("wrong-password")
    ann.page.locator("#login-btn").click()
    expect(ann.page.locator("#auth-error")).to_have_text("Incorrect username or password")
    expect(ann.page.locator("body")).to_have_attribute("data-view", "login")
    shot(ann.player, "01-login")

    ann.sign_up("ann-secret-1")
    ben.sign_up("ben-secret-1")
    expect(ben.page.locator("#games-empty")).to_be_visible()
    axe_check(ben.player, "the lobby without games")

    # Ann creates a game: she waits for an opponent on its page.
    ann.page.locator("#create-btn").click()
    ann.expect_view("game")
    expect(ann.page.locator("#game-id")).to_have_text(UUID)
    game = ann.page.locator("#game-id").text_content() or ""
    expect(ann.page).to_have_url(re.compile(rf"#game={game}$"))
    expect(ann.status).to_have_attribute("data-state", "waiting")
    expect(ann.status).to_have_text("Waiting for an opponent to join…")
    expect(ann.page.locator("#conn")).to_have_attribute("data-state", "online")
    axe_check(ann.player, "a game waiting for its opponent")
    shot(ann.player, "02-waiting")

    # Ben sees it in the lobby (after a refresh) and joins it.
    ben.page.locator("#refresh-btn").click()
    row = ben.page.locator(f'#games-body tr[data-game="{game}"]')
    expect(row).to_be_visible()
    expect(row.get_by_test_id("join-game")).to_be_visible()
    axe_check(ben.player, "the lobby with a game to join")
    shot(ben.player, "03-lobby")
    row.get_by_test_id("join-game").click()
    ben.expect_view("game")
    expect(ben.page.locator("#game-id")).to_have_text(game)
    expect(ben.page.locator("#conn")).to_have_attribute("data-state", "online")

    # game_init reached both pages: a 6 x 6 board, one of them X (the server's choice).
    for p in (ann, ben):
        expect(p.page.locator("#board .cell")).to_have_count(36)
        expect(p.page.locator("#you-mark")).to_have_text(re.compile(r"^[XO]$"))
    x, o = (ann, ben) if ann.page.locator("#you-mark").text_content() == "X" else (ben, ann)
    expect(x.page.locator("#you-mark")).to_have_text("X")
    expect(o.page.locator("#you-mark")).to_have_text("O")
    expect(x.status).to_have_text("Your turn: you play X.")
    expect(x.status).to_have_attribute("data-state", "your-turn")
    expect(o.status).to_have_text("Their turn: X to move.")
    expect(o.status).to_have_attribute("data-state", "their-turn")
    axe_check(x.player, "the board on your turn")
    axe_check(o.player, "the board on their turn")

    # A cell pressed out of turn is refused on the page, nothing sent.
    o.cell(5, 5).focus()
    o.page.keyboard.press("Enter")
    expect(o.page.locator("#game-error")).to_have_text("Not your turn.")
    expect(o.cell(5, 5)).to_have_attribute("data-mark", "")
    axe_check(o.player, "the board with an error")
    shot(o.player, "04-their-turn-error")

    order: list[tuple[str, tuple[int, int]]] = []
    for i in range(len(X_MOVES) + len(O_MOVES)):
        mark = "X" if i % 2 == 0 else "O"
        mover, other = (x, o) if mark == "X" else (o, x)
        cx, cy = (X_MOVES if mark == "X" else O_MOVES)[i // 2]
        expect(mover.status).to_have_attribute("data-state", "your-turn")
        expect(other.status).to_have_attribute("data-state", "their-turn")
        if i in KEYBOARD_MOVES:
            mover.play_with_keyboard(cx, cy)
        else:
            mover.play_with_mouse(cx, cy)
        order.append((mark, (cx, cy)))
        for p in (x, o):
            expect(p.cell(cx, cy)).to_have_attribute("data-mark", mark)
            expect(p.cell(cx, cy)).to_have_accessible_name(f"row {cy + 1} column {cx + 1}, {mark}")
        if i == 2:
            shot(o.player, "05-mid-game")

    # X made 4 in a row: the game is over on both pages, with its event log.
    expect(x.status).to_have_text("Game over: you win (X)!")
    expect(x.status).to_have_attribute("data-state", "won")
    expect(o.status).to_have_text("Game over: you lose, X wins.")
    expect(o.status).to_have_attribute("data-state", "lost")
    for p in (x, o):
        expect(p.page.locator('#board .cell[aria-disabled="false"]')).to_have_count(0)
        p.expect_log(order, x)
    axe_check(x.player, "the finished game with its event log (won)")
    axe_check(o.player, "the finished game with its event log (lost)")
    shot(x.player, "06-game-over-log")
    shot(o.player, "06-game-over-log")

    # The log again: back to the lobby, the game opened from "Your games in this tab".
    o.page.locator("#back-btn").click()
    o.expect_view("lobby")
    expect(o.page.locator(f'#games-body tr[data-game="{game}"]')).to_have_count(0)
    mine = o.page.locator(f'#my-games [data-testid="my-game"][data-game="{game}"]')
    expect(mine).to_be_visible()
    axe_check(o.player, "the lobby with your games")
    mine.get_by_test_id("open-game").click()
    o.expect_view("game")
    expect(o.page.locator("#conn")).to_have_text("Game over")  # no websocket for a finished game
    expect(o.status).to_have_text("Game over: you lose, X wins.")
    o.expect_log(order, x)

    # ...and after a reload: the token is kept in sessionStorage, the game in the URL.
    x.page.reload()
    x.expect_view("game")
    expect(x.page.locator("#game-id")).to_have_text(game)
    expect(x.status).to_have_text("Game over: you win (X)!")
    expect(x.page.locator("#conn")).to_have_text("Game over")
    for cx, cy in X_MOVES:
        expect(x.cell(cx, cy)).to_have_attribute("data-mark", "X")
    x.expect_log(order, x)
    axe_check(x.player, "the finished game after a reload")
    shot(x.player, "07-after-reload")


def test_xo_page_route(open_player: OpenPlayer) -> None:
    """The index page links to /xo/, /xo/ serves the XO page (docs/xogame.md), and
    so does /static/xo/index.html."""
    visitor = Xo(open_player("visitor"))
    visitor.page.goto(visitor.player.base_url)
    link = visitor.page.get_by_role("link", name="play XO")
    expect(link).to_have_attribute("href", "/xo/")
    response = visitor.page.goto(f"{visitor.player.base_url}xo/")
    assert response is not None and response.status == 200, (
        f"GET /xo/ answered {response and response.status}: the page route is missing"
    )
    visitor.expect_view("login")
    expect(visitor.page.locator("#auth-form")).to_be_visible()
    visitor.open("static/xo/index.html")
    expect(visitor.page.locator("#auth-form")).to_be_visible()
