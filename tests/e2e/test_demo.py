"""The Connect Four demo, played by two real browsers against the real server.

Each test opens independent browser contexts (one per player) on a fresh
``python -m duorelay`` and drives the page as a person would: typing a room
name, clicking columns, pressing keys, reloading. Screenshots of the key
moments go to test-artifacts/e2e/<scenario>-<moment>-<player>.png.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")

from playwright.sync_api import expect

from .pages import WAITING, Player, close_codes, play, play_columns

if TYPE_CHECKING:
    from .conftest import RelayServer

OpenPlayer = Callable[[str], Player]
SEAT_TAKEN = re.compile(r"That seat is already taken in this room")
CONNECTION_LOST = re.compile(r"Connection lost")


def start_game(open_player: OpenPlayer, room: str) -> tuple[Player, Player]:
    """Red creates ``room`` from the start panel, Yellow joins it by name."""
    red, yellow = open_player("red"), open_player("yellow")
    red.open_start()
    red.create(room)
    red.expect_seated(0)
    expect(red.status).to_have_text(WAITING)
    yellow.open_start()
    yellow.join(room)
    yellow.expect_seated(1)
    expect(red.status).to_have_text("Your turn")
    expect(yellow.status).to_have_text("Their turn")
    return red, yellow


def test_full_game_to_a_win(open_player: OpenPlayer) -> None:
    """(a) Create, join by name, alternate moves, play to a diagonal win for Red."""
    room = "friday night"
    red, yellow = open_player("red"), open_player("yellow")
    red.open_start()
    red.screenshot("01-start-panel")
    red.create(room)
    red.expect_seated(0)
    expect(red.status).to_have_text(WAITING)
    red.screenshot("02-waiting-for-opponent")

    yellow.open_start()
    yellow.join(room)
    yellow.expect_seated(1)
    for p in (red, yellow):
        expect(p.page).to_have_url(re.compile(r"[?&]room=friday(\+|%20)night(&|$)"))
    expect(red.page).to_have_url(re.compile(r"[?&]seat=0(&|$)"))
    expect(yellow.page).to_have_url(re.compile(r"[?&]seat=1(&|$)"))
    expect(red.status).to_have_text("Your turn")
    expect(yellow.status).to_have_text("Their turn")
    yellow.screenshot("03-joined")

    # Red: (1,0) (2,1) (3,2) (4,3) is the diagonal; Yellow fills in below it.
    columns = [1, 2, 2, 3, 4, 3, 3, 4, 5, 4]
    play_columns(red, yellow, columns[:5])
    red.screenshot("04-midgame")
    yellow.screenshot("04-midgame")
    play_columns(red, yellow, columns[5:])
    assert red.board_state() == yellow.board_state()

    play(red, yellow, 4, 3, 0)  # the winning move
    expect(red.status).to_have_text("You win!")
    expect(yellow.status).to_have_text("Red wins — you lose.")
    for p in (red, yellow):
        expect(p.discs).to_have_count(11)
        expect(p.page.locator(".cell.win")).to_have_count(4)
        for col, row in [(1, 0), (2, 1), (3, 2), (4, 3)]:
            expect(p.cell(col, row)).to_have_class(re.compile(r"\bwin\b"))
        expect(p.page.locator("#new-game-btn")).to_be_visible()
        expect(p.page.locator('.col[aria-disabled="false"]')).to_have_count(0)
    assert red.board_state() == yellow.board_state()
    red.screenshot("05-win")
    yellow.screenshot("05-lose")

    # After the end a click does nothing; "New game" clears both boards.
    yellow.column(0).click(force=True)  # force: the column is aria-disabled
    expect(yellow.discs).to_have_count(11)
    yellow.page.click("#new-game-btn")
    for p in (red, yellow):
        expect(p.discs).to_have_count(0)
        expect(p.page.locator("#new-game-btn")).to_be_hidden()
    expect(red.status).to_have_text("Your turn")
    expect(yellow.status).to_have_text("Their turn")


def test_reload_mid_game_gets_hosts_state(open_player: OpenPlayer) -> None:
    """(b) Yellow reloads with its saved state wiped: on rejoining it asks with
    ``*`` and gets Red's full state; play continues."""
    red, yellow = start_game(open_player, "reload room")
    play_columns(red, yellow, [3, 3, 4, 2, 5])  # 5 discs, Yellow to move
    before = red.board_state()
    url = yellow.page.url
    yellow.screenshot("01-before-reload")

    # The page also keeps its state in sessionStorage; wipe it, so the only
    # source of the position after the reload is Red's answer to "*".
    yellow.page.evaluate("sessionStorage.clear()")
    yellow.clear_frames()
    yellow.page.reload()

    expect(yellow.page.locator("#game-panel")).to_be_visible()
    expect(yellow.page.locator("#start-panel")).to_be_hidden()
    assert yellow.page.url == url
    yellow.expect_seated(1)
    expect(yellow.discs).to_have_count(5)
    assert yellow.board_state() == before
    expect(yellow.status).to_have_text("Your turn")
    expect(red.status).to_have_text("Their turn")
    yellow.screenshot("02-after-reload")

    # The handshake, as it went over the wire: join, then "*"; the answer is the
    # whole state (not a sequence of moves).
    assert yellow.frames_sent[:2] == ["* reload room_1", "*"], yellow.frames_sent
    states = yellow.received_states()
    assert states, yellow.frames_received
    assert states[0]["moves"] == 5
    assert states[0]["board"] == before

    play(yellow, red, 5, 1, 1)
    play(red, yellow, 0, 0, 0)
    assert red.board_state() == yellow.board_state()
    expect(yellow.discs).to_have_count(7)


def test_third_browser_sees_seat_taken(open_player: OpenPlayer) -> None:
    """(c) A third browser joining a held seat is closed with 4409 and told so."""
    red, yellow = start_game(open_player, "busy room")
    play(red, yellow, 3, 0, 0)

    intruder = open_player("intruder")
    intruder.open_start()
    intruder.join("busy room")  # seat 1, held by Yellow
    intruder.wait_for_close_code(4409)
    expect(intruder.status).to_have_text(SEAT_TAKEN)
    expect(intruder.status).to_contain_text("someone else is playing Yellow")
    expect(intruder.conn).to_have_text("Disconnected")
    expect(intruder.page.locator("#leave-btn")).to_have_text("Choose another room")
    expect(intruder.board).to_be_hidden()
    expect(intruder.page.locator(".invite")).to_be_hidden()
    intruder.screenshot("01-seat-taken")

    # The players are not disturbed, and the game goes on.
    for p in (red, yellow):
        expect(p.conn).to_have_text("Connected")
    play(yellow, red, 3, 1, 1)

    # Back on the start panel with the room name kept; Create (seat 0) is held too.
    intruder.page.click("#leave-btn")
    expect(intruder.page.locator("#start-panel")).to_be_visible()
    expect(intruder.page.locator("#room-input")).to_have_value("busy room")
    intruder.page.click("#create-btn")
    expect(intruder.page.locator("html")).to_have_attribute(
        "data-ws-close-codes", close_codes(4409, 4409)
    )
    expect(intruder.status).to_contain_text("someone else is playing Red")


def test_server_restart_reconnects_both(open_player: OpenPlayer, relay: RelayServer) -> None:
    """(d) SIGTERM the server: both pages say the connection is lost. Start it
    again on the same port: both reconnect by themselves and play continues."""
    red, yellow = start_game(open_player, "restart room")
    play_columns(red, yellow, [0, 6, 1])  # Yellow to move
    before = red.board_state()
    port = relay.port

    relay.stop()
    for p in (red, yellow):
        p.wait_for_close_code(1001)  # graceful shutdown: "going away"
        expect(p.conn).to_have_text("Reconnecting…")
        expect(p.status).to_have_text(CONNECTION_LOST)
    red.screenshot("01-server-down")
    yellow.screenshot("01-server-down")

    yellow.column(2).click(force=True)  # ignored while offline (aria-disabled)
    expect(yellow.discs).to_have_count(3)

    relay.start()
    assert relay.port == port
    for p in (red, yellow):
        expect(p.conn).to_have_text("Connected", timeout=20_000)  # backoff is at most 5s
    expect(yellow.status).to_have_text("Your turn")
    expect(red.status).to_have_text("Their turn")
    assert red.board_state() == yellow.board_state() == before
    yellow.screenshot("02-reconnected")

    play_columns(red, yellow, [6, 2])
    expect(red.discs).to_have_count(5)
    assert red.board_state() == yellow.board_state()


def test_keyboard_play(open_player: OpenPlayer) -> None:
    """(e) Keys 1-7 drop a disc in that column; arrows and Enter work too."""
    red, yellow = start_game(open_player, "keyboard room")

    red.page.keyboard.press("4")  # fourth column, data-col=3
    for p in (red, yellow):
        expect(p.cell(3, 0)).to_have_attribute("data-player", "0")
    expect(red.column(3)).to_be_focused()
    expect(yellow.status).to_have_text("Your turn")

    red.page.keyboard.press("5")  # not Red's turn: nothing happens
    yellow.page.keyboard.press("1")
    for p in (red, yellow):
        expect(p.cell(0, 0)).to_have_attribute("data-player", "1")
        expect(p.discs).to_have_count(2)  # so Red's "5" dropped nothing
    assert red.board_state()[4] == [0] * 6

    # Arrow keys move between columns (wrapping); Enter presses the column.
    red.column(6).focus()
    red.page.keyboard.press("ArrowRight")
    expect(red.column(0)).to_be_focused()
    red.page.keyboard.press("Enter")
    for p in (red, yellow):
        expect(p.cell(0, 1)).to_have_attribute("data-player", "0")
    red.screenshot("01-after-keys")
    yellow.screenshot("01-after-keys")

    # Digits typed into a text field are text, not moves.
    yellow.page.click("#invite-link")
    yellow.page.keyboard.press("2")
    expect(yellow.discs).to_have_count(3)
