"""How the command line shows things: tables, progress bars, sizes and ages, JSON lines.

Owns the choice between rich output (a terminal, NO_COLOR unset) and plain text (a pipe, a
file, NO_COLOR), so that every command prints the same way. Plain tables are tab-separated
lines, never cut or wrapped, streamed row by row; `--json` output is one object a line.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def rich_stdout() -> bool:
    """True when stdout is a terminal and NO_COLOR is unset."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Print rows under headers: a rich table on a terminal; elsewhere tab-separated lines,
    each printed as it comes (so a long listing never waits for, or holds, the whole store)."""
    if rich_stdout():
        t = Table(*headers, box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False)
        for row in rows:
            t.add_row(*(_cell(v) for v in row))
        Console().print(t)
        return
    click.echo("\t".join(headers))
    for row in rows:
        click.echo("\t".join(_cell(v) for v in row))


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def json_line(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str))


def progress[T](items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """`items`, with a progress bar on stderr when stderr is a terminal."""
    if not sys.stderr.isatty() or os.environ.get("NO_COLOR"):
        yield from items
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    with Progress(
        *columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True
    ) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def size(n: int) -> str:
    """A byte count for people: 812 B, 12.4 KB, 3.1 MB."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def when(iso: str) -> str:
    """An ISO 8601 time as `2026-12-01 22:33`, unchanged if it does not parse."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M")
