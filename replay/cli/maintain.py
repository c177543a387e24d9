"""`replay prune`, `replay rm` and `replay init`: keeping a store to what a suite uses, and
making cassette changes reviewable in git.

prune keeps what replay reports (`replay_report` files of complete runs) say was served or
recorded, and removes every other interaction file; rm removes what its filters name. Both
list the files with `--dry-run`, delete nothing else (dotfiles, dictionaries, stray files
stay), and remove shard directories they left empty. init writes the `.gitattributes` line
for `show --textconv` (idempotently) and prints the `git config` line that goes with it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import click

from replay.cli import render
from replay.cli.common import (
    check_namespace,
    dir_option,
    open_store,
    parse_age,
    read_entry,
    recorded_at,
)
from replay.models import Key
from replay.store import Store
from replay.summary import read_lines

SERVED = frozenset({"hit", "recorded"})
"""Report outcomes that name a stored file."""
GITATTRIBUTES_LINE = "*.zst diff=replay"
GIT_CONFIG = 'git config diff.replay.textconv "replay show --textconv"'


def _remove(store: Store, doomed: Iterable[tuple[Path, Key]], dry_run: bool, what: str) -> None:
    count = size = 0
    for path, _ in render.progress(list(doomed), None, what):
        try:
            size += path.lstat().st_size
        except FileNotFoundError:
            continue
        count += 1
        if dry_run:
            click.echo(f"would remove {path}")
            continue
        path.unlink(missing_ok=True)
        for parent in (path.parent, path.parent.parent):  # the shard, then the namespace
            if parent != store.root:
                try:
                    parent.rmdir()
                except OSError:
                    break
    verb = "would remove" if dry_run else "removed"
    click.echo(f"replay {what}: {verb} {count} file(s), {render.size(size)}", err=True)


def used_keys(reports: Iterable[Path]) -> dict[tuple[str, str], set[int]]:
    """(namespace, fingerprint) -> the occurrences the reports' hits and recordings asked for."""
    used: dict[tuple[str, str], set[int]] = {}
    lines = 0
    for report in reports:
        for line in read_lines(report):
            lines += 1
            fp, ns = line.get("fingerprint"), line.get("namespace")
            occurrence = line.get("occurrence")
            if line.get("outcome") in SERVED and fp and ns and isinstance(occurrence, int):
                used.setdefault((str(ns), str(fp)), set()).add(occurrence)
    if not lines:
        raise click.UsageError("the reports hold no lines: nothing says what is used")
    return used


def unused(store: Store, used: dict[tuple[str, str], set[int]]) -> Iterator[tuple[Path, Key]]:
    """Files no report used. Past its last stored occurrence a fingerprint's last repeats, so
    a request for occurrence N used the highest stored occurrence <= N."""
    group: list[tuple[Path, Key]] = []
    for path, key in store.entries():
        if group and group[0][1][:2] != key[:2]:
            yield from _unused_of(group, used)
            group = []
        group.append((path, key))
    yield from _unused_of(group, used)


def _unused_of(
    group: list[tuple[Path, Key]], used: dict[tuple[str, str], set[int]]
) -> Iterator[tuple[Path, Key]]:
    if not group:
        return
    asked = used.get((group[0][1].namespace, group[0][1].fingerprint), set())
    stored = sorted(key.occurrence for _, key in group)
    served = {max((o for o in stored if o <= n), default=None) for n in asked}
    yield from ((p, k) for p, k in group if k.occurrence not in served)


@click.command()
@dir_option
@click.option(
    "--report",
    "reports",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A replay_report file of a complete run (repeat for several).",
)
@click.option("--dry-run", is_flag=True, help="List what would be removed.")
def prune(store_dir: str, reports: tuple[Path, ...], dry_run: bool) -> None:
    """Remove every interaction that none of the given reports used."""
    store = open_store(store_dir)
    _remove(store, unused(store, used_keys(reports)), dry_run, "prune")


@click.command()
@dir_option
@click.argument("prefixes", nargs=-1, metavar="[FP-PREFIX]...")
@click.option("--namespace", metavar="NAME", help="Only this namespace.")
@click.option("--older-than", metavar="AGE", help="Recorded more than AGE ago (7d, 12h).")
@click.option("--host", metavar="GLOB", help="Only requests to these hosts.")
@click.option("--dry-run", is_flag=True, help="List what would be removed.")
def rm(
    store_dir: str,
    prefixes: tuple[str, ...],
    namespace: str | None,
    older_than: str | None,
    host: str | None,
    dry_run: bool,
) -> None:
    """Remove the interactions that match every filter given (at least one)."""
    if not (prefixes or namespace or older_than or host):
        raise click.UsageError("name what to remove: a namespace, prefixes, --older-than, --host")
    bad = [p for p in prefixes if not p or any(c not in "0123456789abcdef" for c in p.lower())]
    if bad:
        raise click.UsageError(f"{bad[0]!r} is not a fingerprint prefix (hex digits)")
    store = open_store(store_dir)
    check_namespace(store, namespace)
    cutoff = datetime.now(UTC) - parse_age(older_than) if older_than else None
    lowered = tuple(p.lower() for p in prefixes)

    def doomed() -> Iterator[tuple[Path, Key]]:
        for path, key in store.entries(namespace):
            if lowered and not key.fingerprint.startswith(lowered):
                continue
            if host or cutoff:
                i = read_entry(path, key).interaction
                if i is None:
                    continue  # a corrupt file is verify's to name, not rm's to guess at
                if host and not fnmatch.fnmatch(i.request.host.lower(), host.lower()):
                    continue
                at = recorded_at(i)
                if cutoff and (at is None or at >= cutoff):
                    continue
            yield path, key

    _remove(store, doomed(), dry_run, "rm")


@click.command()
@click.option(
    "--repo",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The repository root (where .gitattributes lives).",
)
def init(repo: Path) -> None:
    """Make cassette diffs readable: the .gitattributes line and the git config to run."""
    path = repo / ".gitattributes"
    text = path.read_text("utf-8") if path.is_file() else ""
    if GITATTRIBUTES_LINE not in (line.strip() for line in text.splitlines()):
        prefix = "" if not text or text.endswith("\n") else "\n"
        with path.open("a", encoding="utf-8") as f:
            f.write(f"{prefix}{GITATTRIBUTES_LINE}\n")
        click.echo(f"added `{GITATTRIBUTES_LINE}` to {path}", err=True)
    else:
        click.echo(f"{path} already has `{GITATTRIBUTES_LINE}`", err=True)
    click.echo("then run (once per clone):", err=True)
    click.echo(GIT_CONFIG)
