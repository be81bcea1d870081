"""The buzzer quiz demo (src/duorelay/static/buzzer/): a WMBP host page and phone players.

The host page (a big screen) opens ``/CREATE`` and shows the room code; each player
(its own browser context, phone-sized) opens ``/{CODE}`` and speaks plain JSON text
frames that the server relays to and from the host. Everything runs against the real
``python -m duorelay``. Screenshots go to test-artifacts/e2e/buzzer-<scenario>-*.png.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")

import cbor2
from playwright.sync_api import Locator, expect

from duorelay.protocols import wmbp

from .pages import Player

if TYPE_CHECKING:
    from .conftest import RelayServer

OpenPlayer = Callable[[str], Player]
Shot = Callable[[Player, str], Path]

HOST_VIEWPORT = {"width": 1280, "height": 860}
PHONE_VIEWPORT = {"width": 390, "height": 844}
CODE = re.compile(r"^[A-Z]{4}$")
YOU_ARE_IN = "You're in! Wait for the host to open the first question."
OPEN_1 = "Question 1: buzz when you know the answer!"


# ---- helpers ----


@pytest.fixture
def shot(artifacts_dir: Path, request: pytest.FixtureRequest) -> Shot:
    """``shot(player, "01-ready")``: test-artifacts/e2e/buzzer-<scenario>-01-ready-<name>.png."""
    scenario = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name.removeprefix("test_buzzer_"))

    def take(player: Player, moment: str) -> Path:
        path = artifacts_dir / f"buzzer-{scenario}-{moment}-{player.name}.png"
        player.page.mouse.move(0, 0)
        player.page.screenshot(path=path, animations="disabled")
        return path

    return take


def open_host(open_player: OpenPlayer, query: str = "") -> tuple[Player, str]:
    """The host page on a big screen, once it shows its room code; returns the code."""
    host = open_player("host")
    host.page.set_viewport_size(HOST_VIEWPORT)  # type: ignore[arg-type]
    host.page.goto(f"{host.base_url}static/buzzer/host.html{query}")
    expect(host.page.locator("#code")).to_have_text(CODE)
    code = host.page.locator("#code").inner_text()
    expect(host.page.locator("#conn")).to_have_text(f"Connected. Players join with code {code}.")
    return host, code


def open_phone(open_player: OpenPlayer, name: str, code: str | None = None) -> Player:
    """A player's phone on the join form (``?code=`` prefilled when ``code`` is given)."""
    player = open_player(name.lower())
    player.page.set_viewport_size(PHONE_VIEWPORT)  # type: ignore[arg-type]
    query = f"?code={code}" if code else ""
    player.page.goto(f"{player.base_url}static/buzzer/player.html{query}")
    expect(player.page.locator("#join-panel")).to_be_visible()
    expect(player.page.locator("#game-panel")).to_be_hidden()
    return player


def join(player: Player, name: str, code: str | None = None) -> None:
    """Fill the form (the code only if given) and press Join."""
    if code is not None:
        player.page.fill("#code-input", code)
    player.page.fill("#name-input", name)
    player.page.click("#join-btn")


def status(player: Player) -> Locator:
    return player.page.locator("#status")


def buzz_button(player: Player) -> Locator:
    return player.page.locator("#buzz")


def host_names(host: Player) -> Locator:
    return host.page.locator("#players li .name")


def buzz_order(host: Player) -> Locator:
    return host.page.locator("#buzz-order li")


# ---- scenarios ----


def test_buzzer_full_round(open_player: OpenPlayer, shot: Shot) -> None:
    """Create a room, two phones join, a question, two buzzes, a kick, the host leaves."""
    host = open_player("host")
    host.page.set_viewport_size(HOST_VIEWPORT)  # type: ignore[arg-type]
    host.page.goto(host.base_url)
    host.page.get_by_role("link", name="buzzer quiz").click()  # the link on the home page
    expect(host.page).to_have_url(re.compile(r"/static/buzzer/host\.html$"))
    expect(host.page.locator("#code")).to_have_text(CODE)
    code = host.page.locator("#code").inner_text()
    expect(host.page.locator("#conn")).to_have_text(f"Connected. Players join with code {code}.")
    join_url = f"{host.base_url}static/buzzer/player.html?code={code}"
    expect(host.page.locator("#join-url")).to_have_attribute("href", join_url)
    expect(host.page.locator("#join-url")).to_have_text(join_url)
    expect(host.page.locator("#player-count")).to_have_text("0 / 16")
    expect(host.page.locator("#new-question")).to_be_enabled()
    shot(host, "01-ready")

    # Ann follows the join link (code prefilled); Bob types the code, in lower case.
    ann = open_phone(open_player, "Ann", code)
    expect(ann.page.locator("#code-input")).to_have_value(code)
    expect(ann.page.locator("#name-input")).to_be_focused()
    bob = open_phone(open_player, "Bob")
    bob.page.locator("#code-input").press_sequentially(code.lower())
    expect(bob.page.locator("#code-input")).to_have_value(code)  # upper-cased as typed
    bob.page.fill("#name-input", "Bob")
    shot(bob, "02-join-form")
    join(ann, "Ann")
    bob.page.click("#join-btn")

    expect(host_names(host)).to_have_text(["Ann", "Bob"])
    expect(host.page.locator("#player-count")).to_have_text("2 / 16")
    for p, name in ((ann, "Ann"), (bob, "Bob")):
        expect(p.page.locator("#room-code")).to_have_text(code)
        expect(p.page.locator("#you")).to_have_text(name)
        expect(status(p)).to_have_text(YOU_ARE_IN)
        expect(buzz_button(p)).to_be_disabled()
        expect(p.page).to_have_url(re.compile(rf"\?code={code}$"))
    assert '{"type":"hello","name":"Ann"}' in ann.frames_sent
    shot(host, "03-players")
    shot(ann, "03-joined")

    host.page.click("#new-question")
    expect(host.page.locator("#round")).to_have_text(
        "Question 1: buzzers are open. Waiting for the first buzz…"
    )
    for p in (ann, bob):
        expect(status(p)).to_have_text(OPEN_1)
        expect(buzz_button(p)).to_be_enabled()
    shot(bob, "04-question-open")

    # Bob taps first; Ann then presses Space (the page has the focus, not a control).
    bob.page.click("#buzz")
    expect(buzz_order(host)).to_have_count(1)
    expect(status(ann)).to_have_text("Bob buzzed first, but you can still buzz.")
    expect(buzz_button(ann)).to_be_enabled()
    ann.page.keyboard.press("Space")
    expect(buzz_order(host).locator(".name")).to_have_text(["Bob", "Ann"])
    first = host.page.locator("#buzz-order li.first")
    expect(first).to_have_count(1)
    expect(first.locator(".name")).to_have_text("Bob")
    expect(first.locator(".note")).to_have_text("First!")
    expect(buzz_order(host).nth(1)).not_to_have_class(re.compile(r"\bfirst\b"))
    expect(buzz_order(host).nth(1).locator(".note")).to_have_text(re.compile(r"^\+\d+\.\d\d s$"))
    expect(host.page.locator("#round")).to_have_text("Question 1: Bob buzzed first!")
    expect(status(bob)).to_have_text("You were first! Give your answer.")
    expect(status(ann)).to_have_text("Bob was first. You were number 2.")
    expect(buzz_button(bob)).to_have_text("1st")
    expect(buzz_button(ann)).to_have_text("2nd")
    for p in (ann, bob):
        expect(buzz_button(p)).to_be_disabled()
        assert p.frames_sent.count('{"type":"buzz"}') == 1
    shot(host, "05-buzz-order")
    shot(bob, "05-first")
    shot(ann, "05-second")

    # A new question clears the buzzes and opens the buzzers again.
    host.page.click("#new-question")
    expect(buzz_order(host)).to_have_count(0)
    for p in (ann, bob):
        expect(status(p)).to_have_text("Question 2: buzz when you know the answer!")
        expect(buzz_button(p)).to_have_text("BUZZ")
        expect(buzz_button(p)).to_be_enabled()

    # The host kicks Ann: her page says so (close 1000 "kicked"); Bob stays.
    host.page.get_by_role("button", name="Kick Ann").click()
    ann.wait_for_close_code(1000)
    expect(status(ann)).to_have_text("The host removed you from the quiz.")
    expect(ann.page.locator("#buzz")).to_be_hidden()
    expect(ann.page.get_by_role("button", name="Join another quiz")).to_be_visible()
    expect(host_names(host)).to_have_text(["Bob"])
    expect(host.page.locator("#player-count")).to_have_text("1 / 16")
    expect(buzz_button(bob)).to_be_enabled()
    shot(ann, "06-kicked")
    shot(host, "06-after-kick")

    # The host's page goes away: Bob is told that the room was closed (4410).
    host.page.close()
    bob.wait_for_close_code(4410)
    expect(status(bob)).to_have_text("The host closed the room. Thanks for playing!")
    expect(bob.page.locator("#buzz")).to_be_hidden()
    shot(bob, "07-room-closed")

    # The code is gone: joining it again says so (4404), back on the form.
    bob.page.get_by_role("button", name="Join another quiz").click()
    expect(bob.page.locator("#code-input")).to_have_value(code)
    bob.page.click("#join-btn")
    bob.wait_for_close_code(4404)
    expect(bob.page.locator("#join-error")).to_have_text(
        f"There is no room with code {code}. Check the code on the host's screen."
    )
    expect(bob.page.locator("#join-panel")).to_be_visible()
    shot(bob, "08-no-such-room")


def test_buzzer_full_room_and_same_names(open_player: OpenPlayer, shot: Shot) -> None:
    """?max=2: a second "Ann" becomes "Ann 2"; a third player is refused (4423)."""
    host, code = open_host(open_player, "?max=2")
    expect(host.page.locator("#player-count")).to_have_text("0 / 2")
    ann = open_phone(open_player, "Ann", code)
    join(ann, "Ann")
    expect(status(ann)).to_have_text(YOU_ARE_IN)
    twin = open_phone(open_player, "Twin", code)
    join(twin, "  ann  ")
    expect(status(twin)).to_have_text(YOU_ARE_IN)
    expect(twin.page.locator("#you")).to_have_text("ann 2")
    expect(host_names(host)).to_have_text(["Ann", "ann 2"])
    expect(host.page.locator("#player-count")).to_have_text("2 / 2 · full")

    late = open_phone(open_player, "Late")
    join(late, "Late", code)
    late.wait_for_close_code(4423)
    expect(late.page.locator("#join-error")).to_have_text(
        f"Room {code} is full, or its quiz has already started."
    )
    expect(late.page.locator("#join-panel")).to_be_visible()
    expect(host_names(host)).to_have_count(2)
    shot(late, "01-room-full")

    # A malformed code never reaches the server.
    late.page.fill("#code-input", "AB")
    late.page.click("#join-btn")
    expect(late.page.locator("#join-error")).to_have_text(
        "The room code is 4 letters, as shown on the host's screen."
    )


def test_buzzer_end_quiz_and_late_joiner(open_player: OpenPlayer, shot: Shot) -> None:
    """A player joining mid-question can buzz at once; "End quiz" closes every phone."""
    host, code = open_host(open_player)
    ann = open_phone(open_player, "Ann", code)
    join(ann, "Ann")
    expect(status(ann)).to_have_text(YOU_ARE_IN)
    host.page.click("#new-question")
    expect(status(ann)).to_have_text(OPEN_1)
    ann.page.click("#buzz")
    expect(status(ann)).to_have_text("You were first! Give your answer.")

    cy = open_phone(open_player, "Cy", code)
    join(cy, "Cy")
    expect(status(cy)).to_have_text("Ann buzzed first, but you can still buzz.")
    cy.page.keyboard.press("Enter")
    expect(buzz_order(host).locator(".name")).to_have_text(["Ann", "Cy"])
    expect(status(cy)).to_have_text("Ann was first. You were number 2.")

    host.page.click("#end-btn")
    for p in (ann, cy):
        p.wait_for_close_code(4410)
        expect(status(p)).to_have_text("The host closed the room. Thanks for playing!")
    host.wait_for_close_code(1001)
    expect(host.page.locator("#conn")).to_have_text("The quiz has ended and the room is closed.")
    expect(host.page.locator("#new-question")).to_be_disabled()
    expect(host.page.locator("#code")).to_have_class(re.compile(r"\bgone\b"))
    expect(host.page.get_by_role("button", name="Host a new quiz")).to_be_visible()
    shot(host, "01-ended")


def test_buzzer_server_shutdown(open_player: OpenPlayer, relay: RelayServer, shot: Shot) -> None:
    """SIGTERM: host and players get 1001 and say the server is shutting down."""
    host, code = open_host(open_player)
    ann = open_phone(open_player, "Ann", code)
    join(ann, "Ann")
    expect(status(ann)).to_have_text(YOU_ARE_IN)
    relay.stop()
    for p in (host, ann):
        p.wait_for_close_code(1001)
    expect(status(ann)).to_have_text("The server is shutting down. Try joining again in a moment.")
    expect(ann.page.get_by_role("button", name="Join again")).to_be_visible()
    expect(host.page.locator("#conn")).to_have_text(
        "The server is shutting down: the room is closed."
    )
    shot(ann, "01-shutdown")


# ---- the CBOR decoder (src/duorelay/static/buzzer/cbor.js), against Python's cbor2 ----

NORMALIZE_JS = """
(cases) => {
  const norm = (v) => {
    if (v instanceof Uint8Array) return {$bytes: Array.from(v)};
    if (typeof v === "bigint") return {$big: v.toString()};
    if (v === undefined) return "$undefined";
    if (typeof v === "number" && !Number.isFinite(v)) return `$${v}`;
    if (Array.isArray(v)) return v.map(norm);
    if (v !== null && typeof v === "object") {
      if (Object.getPrototypeOf(v) !== null) return "$not-a-plain-map";
      const entries = Object.keys(v).sort().map((k) => [k, norm(v[k])]);
      return {$map: entries};  // not an object: "__proto__" must stay a plain key
    }
    return v;
  };
  return cases.map((bytes) => {
    try {
      return {ok: norm(CBOR.decode(new Uint8Array(bytes)))};
    } catch (e) {
      return {error: e.name};
    }
  });
}
"""


def _expected(value: Any) -> Any:
    """What NORMALIZE_JS makes of CBOR.decode's result for ``value``."""
    if isinstance(value, bytes):
        return {"$bytes": list(value)}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if abs(value) <= 2**53 else {"$big": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return "$NaN"
        return value if math.isfinite(value) else ("$Infinity" if value > 0 else "$-Infinity")
    if isinstance(value, list | tuple):
        return [_expected(v) for v in value]
    if isinstance(value, dict):
        return {"$map": sorted([str(k), _expected(v)] for k, v in value.items())}
    if value is cbor2.undefined:
        return "$undefined"
    raise AssertionError(f"no expectation for {value!r}")


INTS = [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**53 - 1, 2**64 - 1]
NEGATIVE_INTS = [-1, -24, -25, -256, -257, -(2**32), -(2**53), -(2**64)]
TEXTS = ["", "a", "ü", "水", "🎉 party", "é" * 30, "x" * 300, "y" * 70_000]
BYTE_STRINGS = [b"", b"\x00\xff", bytes(range(256))]
ARRAYS = [[], [1, [2, 3]], list(range(25)), [None] * 300]
MAPS = [
    {},
    {"a": 1, "b": [True, False, None]},
    {1: "one", -2: "minus two"},
    {"__proto__": {"polluted": True}, "constructor": 1},
]
SIMPLE = [True, False, None, cbor2.undefined, 1.1, -0.5e300, 1e-300]
SHORT_FLOATS = [1.5, -2.0, 65504.0, 100000.0, 5.960464477539063e-08]  # half and single

DECODES: list[tuple[bytes, Any]] = [
    *(
        (cbor2.dumps(v), v)
        for v in [*INTS, *NEGATIVE_INTS, *TEXTS, *BYTE_STRINGS, *ARRAYS, *MAPS, *SIMPLE]
    ),
    *((cbor2.dumps(v, canonical=True), v) for v in SHORT_FLOATS),
    (cbor2.dumps(float("inf"), canonical=True), float("inf")),
    (cbor2.dumps(float("-inf")), float("-inf")),
    (cbor2.dumps(float("nan"), canonical=True), float("nan")),
    (cbor2.dumps(cbor2.CBORTag(42, "tagged")), "tagged"),
    (cbor2.dumps(1) + b"\xff\xff", 1),  # bytes after the first item are ignored
    # The server's own messages, as the host page receives them.
    (
        wmbp.encode(wmbp.State("Buzzer quiz", players=(1, 7), max_players=16, accept_conns=True)),
        {
            "cmd": "state",
            "name": "Buzzer quiz",
            "players": [1, 7],
            "max_players": 16,
            "accept_conns": True,
        },
    ),
    (
        wmbp.encode(wmbp.From(3, b"\x00\x01\xff")),
        {"cmd": "from", "from": 3, "data": [0, 1, 255]},
    ),
    (
        wmbp.encode(wmbp.FromStr(2**32 - 1, '{"type":"buzz"}')),
        {"cmd": "from_str", "from": 2**32 - 1, "data": '{"type":"buzz"}'},
    ),
]

MALFORMED: list[bytes] = [
    b"",  # nothing
    b"\x82\x01",  # array of 2, one item
    b"\x63ab",  # text of 3, 2 bytes
    b"\x5a\xff\xff\xff\xff",  # byte string of 4 GiB, no bytes
    b"\x9f\x01\xff",  # indefinite-length array
    b"\x1c",  # reserved additional info
    b"\x62\xc3\x28",  # invalid UTF-8
    b"\xa1\x80\x01",  # map key is an array
    b"\xf8\x20",  # simple value 32
    b"\x81" * 100 + b"\x01",  # nested too deeply
]


def test_buzzer_cbor_decoder(open_player: OpenPlayer) -> None:
    """CBOR.decode agrees with cbor2 and with the server's encoder; bad input throws."""
    host, _ = open_host(open_player)  # any page that loads cbor.js
    results = host.page.evaluate(NORMALIZE_JS, [list(data) for data, _ in DECODES])
    for (data, value), result in zip(DECODES, results, strict=True):
        assert result == {"ok": _expected(value)}, f"decoding {data[:40].hex()}"
    errors = host.page.evaluate(NORMALIZE_JS, [list(data) for data in MALFORMED])
    for data, result in zip(MALFORMED, errors, strict=True):
        assert "error" in result, f"{data[:20].hex()} decoded as {result}"


# ---- accessibility (axe-core, as in test_a11y.py) ----


def axe_check(player: Player, label: str) -> None:
    """Fail on any serious or critical axe-core violation on the page."""
    axe_sync = pytest.importorskip(
        "axe_playwright_python.sync_playwright", reason="needs axe-playwright-python"
    )
    results = axe_sync.Axe().run(player.page)
    violations = results.response["violations"]
    blocking = [v for v in violations if v["impact"] in ("serious", "critical")]
    if blocking:
        lines = [f"axe: {len(blocking)} serious/critical violation(s) on {label}:"]
        for v in blocking:
            lines.append(f"- {v['id']} ({v['impact']}): {v['help']} [{v['helpUrl']}]")
            for node in v["nodes"][:5]:
                lines.append(f"    {', '.join(map(str, node['target']))}")
                lines.append(f"      {node.get('failureSummary', '')}".replace("\n", " "))
        pytest.fail("\n".join(lines), pytrace=False)


def test_buzzer_pages_have_no_serious_a11y_violations(open_player: OpenPlayer) -> None:
    host, code = open_host(open_player)
    axe_check(host, "the host page, waiting for players")

    ann = open_phone(open_player, "Ann")
    axe_check(ann, "the join form")
    ann.page.click("#join-btn")
    expect(ann.page.locator("#join-error")).to_have_text(
        "The room code is 4 letters, as shown on the host's screen."
    )
    axe_check(ann, "the join form with an error")

    join(ann, "Ann", code)
    expect(status(ann)).to_have_text(YOU_ARE_IN)
    host.page.click("#new-question")
    expect(buzz_button(ann)).to_be_enabled()
    axe_check(ann, "the buzzer, open")
    ann.page.click("#buzz")
    expect(buzz_button(ann)).to_have_text("1st")
    axe_check(ann, "the buzzer, after buzzing first")
    expect(buzz_order(host)).to_have_count(1)
    axe_check(host, "the host page with players and a buzz")

    host.page.get_by_role("button", name="Kick Ann").click()
    expect(status(ann)).to_have_text("The host removed you from the quiz.")
    axe_check(ann, "the kicked message")
