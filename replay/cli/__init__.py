"""The `replay` command line (click). Errors are one line and a non-zero exit.

This release has `replay addon` and `replay version`; the store commands (ls, show, verify,
prune, compact, import, export, run, env) arrive with their own issue.
"""

from __future__ import annotations

from pathlib import Path

import click

from replay import __version__


@click.group()
@click.version_option(__version__, prog_name="replay")
def main() -> None:
    """Record-and-replay cassette proxy for LLM provider APIs."""


@main.command()
def addon() -> None:
    """Print the path of the addon script to give `mitmdump -s`."""
    click.echo(str(Path(__file__).resolve().parents[1] / "mitm" / "script.py"))
