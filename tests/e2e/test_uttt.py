"""The ultimate tic-tac-toe page (static/uttt/) in Chromium, against the real server.

Issue 13: two players register through the login form, one challenges the other
by name, they play a fixed 17-move game that player_a (X, the challenger) wins,
partly with the keyboard (arrow keys + Enter on the roving-tabindex board); the
board, the forced small boards and the status are checked on both pages after
every move; the ratings become exactly 1010 / 990 (Elo from 1000 each, K = 20:
docs/uttt.md, Rating); a reload restores the session and the match list. axe-core
checks the login form, the board on either turn and the result. Screenshots go to
test-artifacts/e2e/uttt-*.png.

``python -m duorelay`` runs on a SQLite file of the test's own (the accounts and
ratings start from nothing). Every wait is Playwright's ``expect``: no sleeps.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")

from playwright.sync_api import Locator, expect

from duorelay.games import uttt
from duorelay.games.base import Player as Mark

from .conftest import shot as page_shot
from .pages import Player, View
from .test_a11y import axe_check_all as axe_check

OpenPlayer = Callable[[str], Player]


PAGE_VIEWPORT = {"width": 1100, "height": 1100}

# (sub_x, sub_y, x, y), X (alice, player_a) first. X wins the small boards
# (0,0), (1,0) and (2,0): the top row. Checked against duorelay.games.uttt below.
WIN = [
    (0, 0, 0, 0), (0, 0, 1, 0),
    (1, 0, 0, 0), (0, 0, 2, 0),
    (2, 0, 1, 0), (1, 0, 1, 0),
    (1, 0, 0, 1), (0, 1, 0, 0),
    (0, 0, 0, 1), (0, 1, 1, 0),
    (1, 0, 0, 2), (0, 2, 0, 0),
    (0, 0, 0, 2), (0, 2, 1, 0),
    (2, 0, 0, 0), (0, 1, 2, 0),
    (2, 0, 2, 0),
]  # fmt: skip
KEYBOARD_MOVES = range(0, len(WIN), 2)  # X plays with the keyboard, O with the mouse


def test_winning_sequence_is_legal_and_won_by_player_a() -> None:
    state = uttt.replay(
        uttt.Move(Mark.FIRST if i % 2 == 0 else Mark.SECOND, *move) for i, move in enumerate(WIN)
    )
    assert state.result is not None and state.result.winner is Mark.FIRST
    assert [state.boards[b] for b in (0, 1, 2)] == [1, 1, 1]


# ``relay`` (tests/e2e/conftest.py): the server on a SQLite file of this test's:
# no accounts, no ratings yet.


def shot(player: Player, moment: str) -> Path:
    return page_shot(player, "uttt", moment)


class Uttt(View):
    """One player's view of /uttt/."""

    def cell(self, sx: int, sy: int, x: int, y: int) -> Locator:
        return self.tid(f"cell-{sx}-{sy}-{x}-{y}")

    def sub(self, sx: int, sy: int) -> Locator:
        return self.tid(f"sub-{sx}-{sy}")

    @property
    def status(self) -> Locator:
        return self.page.locator("#match-status")

    def open(self) -> None:
        self.page.set_viewport_size(PAGE_VIEWPORT)  # type: ignore[arg-type]
        self.page.goto(f"{self.player.base_url}uttt/")
        expect(self.page.locator("#login-panel")).to_be_visible()
        expect(self.page.locator("#conn")).to_have_text("Not connected.")

    def login(self, password: str) -> None:
        self.page.locator("#login-name").fill(self.name)
        self.page.locator("#login-pw").fill(password)
        self.page.locator("#login-btn").click()
        self.expect_logged_in()

    def expect_logged_in(self) -> None:
        expect(self.page.locator("#conn")).to_have_text(f"Connected as {self.name}.")
        expect(self.page.locator("#login-panel")).to_be_hidden()
        expect(self.page.locator("#lobby-panel")).to_be_visible()
        expect(self.page.locator("#me")).to_contain_text(f"Logged in as {self.name}")

    def expect_rating(self, elo: int, rank: int) -> None:
        expect(self.page.locator("#my-rating")).to_have_text(f"Your Elo: {elo}, rank {rank}.")

    def shown_match_id(self) -> str:
        current = self.page.locator('#match-list [data-testid="match-item"][aria-current="true"]')
        expect(current).to_have_count(1)
        match_id = current.get_attribute("data-match-id")
        assert match_id and re.fullmatch(r"[0-9a-f]{32}", match_id), match_id
        return match_id

    def play_with_mouse(self, move: tuple[int, int, int, int]) -> None:
        self.cell(*move).click()

    def play_with_keyboard(self, move: tuple[int, int, int, int]) -> None:
        """Focus the board's one tab stop, walk to the cell with the arrow keys, press Enter."""
        sx, sy, x, y = move
        stop = self.page.locator('#board .cell[tabindex="0"]')
        expect(stop).to_have_count(1)
        stop.focus()
        row, col = (
            int(stop.get_attribute("data-row") or 0),
            int(stop.get_attribute("data-col") or 0),
        )
        target_row, target_col = sy * 3 + y, sx * 3 + x
        keys = ["ArrowDown" if target_row > row else "ArrowUp"] * abs(target_row - row)
        keys += ["ArrowRight" if target_col > col else "ArrowLeft"] * abs(target_col - col)
        for key in keys:
            self.page.keyboard.press(key)
        target = self.cell(*move)
        expect(target).to_be_focused()
        expect(target).to_have_attribute("tabindex", "0")
        self.page.keyboard.press("Enter")


def forced_after(move: tuple[int, int, int, int], state: uttt.State) -> set[tuple[int, int]]:
    """The small boards highlighted after ``move`` (none once the game is over)."""
    if state.result is not None:
        return set()
    forced = uttt.forced_board(state)
    if forced is not None:
        return {forced}
    return {(b % 3, b // 3) for b in range(9) if state.boards[b] == 0}


def test_uttt_register_challenge_play_to_a_win_ratings_reload(open_player: OpenPlayer) -> None:
    alice, bob = Uttt(open_player("alice")), Uttt(open_player("bob"))
    for p in (alice, bob):
        p.open()
    axe_check(alice.player, "the login form")
    shot(alice.player, "01-login")

    # A name the form refuses before sending anything.
    alice.page.locator("#login-name").fill("x!")
    alice.page.locator("#login-btn").click()
    expect(alice.page.locator("#login-error")).not_to_have_text("")
    axe_check(alice.player, "the login form with an error")

    # Registering: a new name with a password.
    alice.login("alice-secret-1")
    bob.login("bob-secret-1")
    alice.expect_rating(1000, 1)
    bob.expect_rating(1000, 1)
    expect(alice.page.locator("#matches-empty")).to_be_visible()

    # Alice challenges bob by name: she is player_a (X) and moves first.
    alice.page.locator("#challenge-name").fill("bob")
    alice.page.locator("#challenge-btn").click()
    for p in (alice, bob):
        expect(p.page.locator("#match-panel")).to_be_visible()
        expect(p.page.locator('#board [data-testid^="cell-"]')).to_have_count(81)
    expect(alice.page.locator("#match-title")).to_have_text("You (X) vs bob (O)")
    expect(bob.page.locator("#match-title")).to_have_text("alice (X) vs you (O)")
    expect(alice.page.locator("#match-info")).to_contain_text("Ranked.")
    match_id = alice.shown_match_id()
    assert bob.shown_match_id() == match_id
    expect(alice.status).to_have_attribute("data-state", "your-turn")
    expect(alice.status).to_have_text("Your turn: play in any highlighted board.")
    expect(bob.status).to_have_attribute("data-state", "their-turn")
    expect(bob.status).to_have_text("Waiting for alice to move.")
    expect(alice.page.locator("#board .sub.forced")).to_have_count(9)
    axe_check(alice.player, "the board on your turn")
    axe_check(bob.player, "the board on their turn")
    shot(alice.player, "02-board-your-turn")

    players = (alice, bob)
    state = uttt.new_game()
    for i, move in enumerate(WIN):
        mover, other = players[i % 2], players[1 - i % 2]
        mark = i % 2 + 1
        expect(mover.status).to_have_attribute("data-state", "your-turn")
        expect(other.status).to_have_attribute("data-state", "their-turn")
        if i == 2:
            # A cell outside the forced small board is refused on the page (Enter on it).
            wrong = mover.cell(2, 2, 1, 1)
            expect(wrong).to_have_attribute("aria-disabled", "true")
            wrong.focus()
            mover.page.keyboard.press("Enter")
            expect(mover.page.locator("#match-hint")).to_have_text(
                "You must play in board 1,0 (highlighted)."
            )
            expect(wrong).to_have_attribute("data-mark", "0")
        if i in KEYBOARD_MOVES:
            mover.play_with_keyboard(move)
        else:
            mover.play_with_mouse(move)
        state = uttt.apply(state, uttt.Move(Mark(mark), *move))
        for p in players:
            expect(p.cell(*move)).to_have_attribute("data-mark", str(mark))
            expect(p.cell(*move)).to_have_class(re.compile(r"\blast\b"))
        forced = forced_after(move, state)
        expect(other.page.locator("#board .sub.forced")).to_have_count(len(forced))
        for sx, sy in forced:
            expect(other.sub(sx, sy)).to_have_class(re.compile(r"\bforced\b"))
        if i == 10:
            expect(mover.sub(1, 0)).to_have_attribute("data-result", "x")  # X's first board
            axe_check(other.player, "the board with a won small board, their turn")
            shot(other.player, "03-board-mid-game")

    # The result: X won the top row of small boards.
    for sx in range(3):
        expect(bob.sub(sx, 0)).to_have_attribute("data-result", "x")
    expect(alice.status).to_have_attribute("data-state", "over")
    expect(alice.status).to_have_text("You won!")
    expect(bob.status).to_have_attribute("data-state", "over")
    expect(bob.status).to_have_text("You lost: alice won.")
    expect(alice.page.locator("#board .sub.forced")).to_have_count(0)
    expect(alice.page.locator("#close-btn")).to_be_visible()
    expect(alice.page.locator("#end-btn")).to_be_hidden()
    item = alice.page.locator(f'[data-testid="match-item"][data-match-id="{match_id}"]')
    expect(item).to_contain_text("you won")
    # Ratings: Elo from 1000 each, K = 20: exactly 1010 and 990 (docs/uttt.md).
    alice.expect_rating(1010, 1)
    bob.expect_rating(990, 2)
    for p in players:
        expect(p.page.locator("#ladder-body tr")).to_have_text(
            [
                re.compile(r"^1alice( \(you\))?1010$"),
                re.compile(r"^2bob( \(you\))?990$"),
            ]
        )
    axe_check(alice.player, "the result, won")
    axe_check(bob.player, "the result, lost")
    shot(alice.player, "04-result-won")
    shot(bob.player, "04-result-lost")

    # A rematch, bob challenging: he is X now. One move each way, then reloads.
    bob.page.locator("#challenge-name").fill("alice")
    bob.page.locator("#challenge-btn").click()
    expect(bob.page.locator("#match-title")).to_have_text("You (X) vs alice (O)")
    rematch = bob.shown_match_id()
    assert rematch != match_id
    alice_item = alice.page.locator(f'[data-testid="match-item"][data-match-id="{rematch}"]')
    expect(alice_item).to_contain_text("their turn")
    bob.play_with_mouse((1, 1, 1, 1))
    expect(alice_item).to_contain_text("your turn")
    expect(alice.page).to_have_title(re.compile(r"^\(1\) "))

    # A reload restores the session (localStorage) and the match list from the server.
    for p in players:
        p.page.reload()
        p.expect_logged_in()
    alice.expect_rating(1010, 1)
    bob.expect_rating(990, 2)
    for p, word in ((alice, "your turn"), (bob, "their turn")):
        restored = p.page.locator(f'[data-testid="match-item"][data-match-id="{rematch}"]')
        expect(restored).to_contain_text(word)
        expect(restored).to_contain_text("ranked")
    alice.page.locator(f'[data-testid="match-item"][data-match-id="{rematch}"]').click()
    expect(alice.page.locator("#match-title")).to_have_text("bob (X) vs you (O)")
    expect(alice.cell(1, 1, 1, 1)).to_have_attribute("data-mark", "1")
    expect(alice.page.locator("#board .sub.forced")).to_have_count(1)
    expect(alice.sub(1, 1)).to_have_class(re.compile(r"\bforced\b"))
    expect(alice.status).to_have_attribute("data-state", "your-turn")
    alice.play_with_keyboard((1, 1, 0, 0))
    expect(bob.cell(1, 1, 0, 0)).to_have_attribute("data-mark", "2")
    expect(bob.status).to_have_attribute("data-state", "your-turn")
    axe_check(alice.player, "the page restored after a reload")
    shot(alice.player, "05-after-reload")
