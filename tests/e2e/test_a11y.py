"""Accessibility: axe-core finds no serious or critical violation in the demo.

axe-core comes bundled in the ``axe-playwright-python`` package (its
``axe.min.js``), injected into the page: nothing is downloaded at test time.
Each state is checked on the whole page (hidden panels are skipped by axe).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api", reason="the browser tests need Playwright")
axe_sync = pytest.importorskip(
    "axe_playwright_python.sync_playwright", reason="needs axe-playwright-python"
)

from playwright.sync_api import expect  # noqa: E402

from .pages import WAITING, Player, play_columns  # noqa: E402

OpenPlayer = Callable[[str], Player]
BLOCKING = ("serious", "critical")


def axe_check(player: Player, label: str) -> dict[str, Any]:
    """Run axe on the page; fail on any serious or critical violation."""
    results = axe_sync.Axe().run(player.page)
    violations = results.response["violations"]
    blocking = [v for v in violations if v["impact"] in BLOCKING]
    if blocking:
        lines = [f"axe: {len(blocking)} serious/critical violation(s) on {label}:"]
        for v in blocking:
            lines.append(f"- {v['id']} ({v['impact']}): {v['help']} [{v['helpUrl']}]")
            for node in v["nodes"][:5]:
                lines.append(f"    {', '.join(map(str, node['target']))}")
                lines.append(f"      {node.get('failureSummary', '')}".replace("\n", " "))
        pytest.fail("\n".join(lines), pytrace=False)
    return results.response  # type: ignore[no-any-return]


def axe_check_all(player: Player, label: str) -> None:
    """axe-core on the whole page: no violation of any impact (the uttt and xo
    pages' docs promise none; serious and critical ones are reported in detail)."""
    results = axe_check(player, label)
    found = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + "; ".join(", ".join(map(str, n["target"])) for n in v["nodes"][:5])
        for v in results["violations"]
    ]
    assert not found, f"axe on {label}:\n" + "\n".join(found)


def test_start_panel_has_no_serious_violations(open_player: OpenPlayer) -> None:
    player = open_player("visitor")
    player.open_start()
    axe_check(player, "the start panel")
    # An error message shown in the form is checked too.
    player.page.click("#create-btn")
    expect(player.page.locator("#start-error")).to_have_text("Please type a room name.")
    axe_check(player, "the start panel with an error")


def test_game_panel_has_no_serious_violations(open_player: OpenPlayer) -> None:
    red, yellow = open_player("red"), open_player("yellow")
    red.open_start()
    red.create("a11y room")
    expect(red.status).to_have_text(WAITING)
    axe_check(red, "the game panel, waiting for the opponent")

    yellow.open_start()
    yellow.join("a11y room")
    expect(red.status).to_have_text("Your turn")
    play_columns(red, yellow, [3, 3, 2])
    axe_check(red, "the game panel, opponent's turn")
    axe_check(yellow, "the game panel, your turn")

    play_columns(red, yellow, [2, 4, 4, 5])  # Red wins along the bottom row: 2..5
    expect(red.status).to_have_text("You win!")
    axe_check(red, "the game panel after a win")

    intruder = open_player("intruder")
    intruder.open_start()
    intruder.join("a11y room")
    intruder.wait_for_close_code(4409)
    axe_check(intruder, "the seat-taken message")
