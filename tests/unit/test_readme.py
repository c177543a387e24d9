"""The README's options table matches the option specs the addon registers."""

from __future__ import annotations

import re
from pathlib import Path

from replay.config import OPTION_SPECS

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_options() -> dict[str, str]:
    text = README.read_text()
    table = text.split("<!-- options-table", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(replay_\w+)` \| ([^|]+) \|", table, re.MULTILINE)
    return {name: default.strip() for name, default in rows}


def spelled(default: object) -> str:
    if default is None:
        return "(none)"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"


def test_readme_lists_every_option_with_its_default() -> None:
    documented = readme_options()
    assert list(documented) == [spec.name for spec in OPTION_SPECS]
    for spec in OPTION_SPECS:
        assert documented[spec.name] == spelled(spec.default), spec.name


def test_readme_shows_the_two_commands() -> None:
    first_screen = "\n".join(README.read_text().splitlines()[:15])
    assert "make run" in first_screen and "make test" in first_screen
