"""The `replay` command line (the store commands come with their own issue)."""

from __future__ import annotations

import runpy
from pathlib import Path

from click.testing import CliRunner

from replay import __version__
from replay.cli import main


def test_addon_prints_a_loadable_script_path() -> None:
    result = CliRunner().invoke(main, ["addon"])
    assert result.exit_code == 0
    path = Path(result.output.strip())
    assert path.is_file() and path.is_absolute()
    namespace = runpy.run_path(str(path))
    assert type(namespace["addons"][0]).__name__ == "ReplayAddon"


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output
