"""How the command line prints: rich tables on a terminal, plain text elsewhere or with
NO_COLOR, and one line, never a traceback, whatever goes wrong."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import cassettes

from replay.cli import main, render


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rich_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", Tty())
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert render.rich_stdout()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not render.rich_stdout()
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.delenv("NO_COLOR")
    assert not render.rich_stdout()


def test_a_terminal_gets_a_rich_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cassettes.write(tmp_path, [cassettes.interaction(cassettes.chat("q"), [b"{}"])])
    monkeypatch.setattr(render, "rich_stdout", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(main, ["ls", "--dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "─" in result.output and "api.openai.com" in result.output  # box drawing
    assert "\t" not in result.output


def test_plain_tables_are_tab_separated_and_never_cut(tmp_path: Path) -> None:
    long_host = "a-very-long-host-name-that-would-not-fit-in-eighty-columns.example.com"
    req = cassettes.request({"model": "m"}, host=long_host)
    cassettes.write(tmp_path, [cassettes.interaction(req, [b"{}"])])
    result = CliRunner().invoke(main, ["ls", "--dir", str(tmp_path)])
    header, row = result.output.splitlines()
    assert header.split("\t")[4] == "host" and row.split("\t")[4] == long_host


def test_an_unexpected_failure_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    @main.command(name="explode")
    def explode() -> None:
        raise RuntimeError("kaboom\nsecond line")

    try:
        result = CliRunner().invoke(main, ["explode"])
    finally:
        main.commands.pop("explode")
    assert result.exit_code == 1
    assert result.output == "replay: error: internal error: RuntimeError: kaboom\n"
    assert "Traceback" not in result.output


def test_an_os_error_is_one_line(tmp_path: Path) -> None:
    unreadable = tmp_path / "store"
    unreadable.mkdir()
    (unreadable / "default").write_text("not a directory")

    @main.command(name="oserror")
    def oserror() -> None:
        raise PermissionError(13, "Permission denied", str(unreadable))

    try:
        result = CliRunner().invoke(main, ["oserror"])
    finally:
        main.commands.pop("oserror")
    assert result.exit_code == 1
    assert result.output == f"replay: error: {unreadable}: Permission denied\n"


def test_unknown_command_and_help() -> None:
    bad = CliRunner().invoke(main, ["frobnicate"])
    assert bad.exit_code == 2 and bad.output.startswith("replay: error: No such command")
    assert len(bad.output.splitlines()) == 1
    ok = CliRunner().invoke(main, ["--help"])
    assert ok.exit_code == 0
    for name in ("run", "env", "ls", "show", "stats", "verify", "prune", "rm", "init"):
        assert name in ok.output
    for name in ("import", "export", "compact", "addon"):
        assert name in ok.output
