"""`replay push` and `replay pull`: copy between a local store and a shared one (s3://).

Only what the other side lacks is copied (transfer.py), so either command can be run again
at any time; files are never overwritten, so a push never undoes a proxy's recording.
"""

from __future__ import annotations

import click

from replay.cli import render
from replay.cli.common import dir_option, open_store
from replay.store import Store
from replay.transfer import Transfer, copy_missing


def _copy(source: Store, target: Store, verb: str) -> None:
    result: Transfer = copy_missing(
        source, target, lambda names: render.progress(names, len(names), verb)
    )
    click.echo(
        f"{verb}: {result.copied} file(s) copied ({render.size(result.bytes)}), "
        f"{result.present} already there, {len(result.failed)} failed"
    )
    for failure in result.failed:
        click.echo(f"replay: error: {failure}", err=True)
    if result.failed:
        raise SystemExit(1)


@click.command()
@dir_option
@click.argument("remote", metavar="URL")
def push(store_dir: str, remote: str) -> None:
    """Copy to the store URL (s3://bucket/prefix) what it lacks of --dir."""
    _copy(open_store(store_dir), open_store(remote), "pushed")


@click.command()
@dir_option
@click.argument("remote", metavar="URL")
def pull(store_dir: str, remote: str) -> None:
    """Copy into --dir what it lacks of the store URL (s3://bucket/prefix)."""
    local = open_store(store_dir, create=True)
    _copy(open_store(remote), local, "pulled")
