"""The README documents every setting: one row of its settings table each."""

from __future__ import annotations

import re

from conftest import ROOT
from duorelay.settings import ENV_PREFIX, Settings


def test_every_setting_has_a_row_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `(DUORELAY_[A-Z0-9_]+)` \|", readme, re.MULTILINE))
    names = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert names - rows == set(), "settings missing from README.md's table"
    assert rows - names == set(), "README.md's table names settings that do not exist"
