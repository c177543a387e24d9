"""`replay ls`, `replay show` and `replay stats`: what a store holds, read file by file.

Nothing here holds the whole store in memory: `ls` prints row by row (a rich table on a
terminal keeps its rows), `stats` keeps counters, `show` finds its file by listing names only. A
corrupt file is named on stderr and makes the exit code 1; the others are still listed.
"""

from __future__ import annotations

import fnmatch
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from replay.cli import render
from replay.cli.common import (
    Entry,
    Problem,
    check_namespace,
    dir_option,
    json_option,
    namespace_option,
    open_store,
    parse_age,
    read_entries,
    read_entry,
    recorded_at,
)
from replay.cli.showtext import render as render_interaction
from replay.codec import decode, decompress
from replay.errors import CorruptEntry
from replay.models import Interaction, Key
from replay.transcript import framing_of


def model_of(i: Interaction) -> str | None:
    """The model the request named (provenance first, then the JSON body's `model`)."""
    if i.provenance.model:
        return i.provenance.model
    try:
        body = json.loads(i.request.body)
    except ValueError:
        return None
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


def streamed(i: Interaction) -> bool:
    return len(i.chunks) > 1 or framing_of(i) is not None


def row(entry: Entry) -> dict[str, Any]:
    """The `ls` row (and `--json` object) of a decoded entry."""
    i = entry.interaction
    assert i is not None
    return {
        "namespace": entry.key.namespace,
        "fingerprint": entry.key.fingerprint,
        "occurrence": entry.key.occurrence,
        "method": i.request.method,
        "host": i.request.authority,
        "path": i.request.path,
        "model": model_of(i),
        "status": i.response.status,
        "streamed": streamed(i),
        "chunks": len(i.chunks),
        "size": entry.size,
        "recorded_at": i.provenance.recorded_at,
        "provider": i.provenance.provider,
        "complete": i.complete,
    }


def _selected(
    entry: Entry,
    host: str | None,
    model: str | None,
    older: datetime | None,
    newer: datetime | None,
) -> bool:
    i = entry.interaction
    if i is None:
        return True
    if host and not fnmatch.fnmatch(i.request.host.lower(), host.lower()):
        return False
    if model and not fnmatch.fnmatch(model_of(i) or "", model):
        return False
    if older or newer:
        at = recorded_at(i)
        if at is None or (older and at >= older) or (newer and at <= newer):
            return False
    return True


def _cutoff(age: str | None) -> datetime | None:
    return datetime.now(UTC) - parse_age(age) if age else None


def _report_corrupt(entry: Entry) -> None:
    assert entry.error is not None
    click.echo(f"replay: corrupt: {entry.path}: {entry.error.reason}", err=True)


@click.command(name="ls")
@dir_option
@namespace_option
@click.option("--host", metavar="GLOB", help="Only requests to these hosts.")
@click.option("--model", metavar="GLOB", help="Only these models.")
@click.option("--older-than", metavar="AGE", help="Recorded more than AGE ago (7d, 12h).")
@click.option("--newer-than", metavar="AGE", help="Recorded less than AGE ago.")
@json_option
def ls(
    store_dir: str,
    namespace: str | None,
    host: str | None,
    model: str | None,
    older_than: str | None,
    newer_than: str | None,
    as_json: bool,
) -> int:
    """List the interactions of a store, one a row."""
    store = open_store(store_dir)
    check_namespace(store, namespace)
    older, newer = _cutoff(older_than), _cutoff(newer_than)
    corrupt = 0

    def selected() -> Iterator[dict[str, Any]]:
        nonlocal corrupt
        for entry in read_entries(store, namespace):
            if entry.error is not None:
                corrupt += 1
                _report_corrupt(entry)
            elif _selected(entry, host, model, older, newer):
                yield row(entry)

    if as_json:
        for r in selected():
            render.json_line(r)
    else:
        headers = ["namespace", "fingerprint", "occ", "method", "host", "path", "model"]
        headers += ["status", "streamed", "chunks", "size", "recorded"]
        render.table(headers, (_table_row(r) for r in selected()))
    return 1 if corrupt else 0


def _table_row(r: dict[str, Any]) -> list[object]:
    return [
        r["namespace"],
        r["fingerprint"][:12],
        r["occurrence"],
        r["method"],
        r["host"],
        r["path"],
        r["model"],
        r["status"] if r["complete"] else f"{r['status']} (incomplete)",
        r["streamed"],
        r["chunks"],
        render.size(r["size"]),
        render.when(r["recorded_at"]),
    ]


def find(store_dir: str, prefix: str, namespace: str | None, occurrence: int) -> Entry:
    """The one file whose fingerprint starts with `prefix`; a usage error if none or many."""
    prefix = prefix.lower()
    if not prefix or any(c not in "0123456789abcdef" for c in prefix):
        raise click.UsageError(f"{prefix!r} is not a fingerprint prefix (hex digits)")
    store = open_store(store_dir)
    check_namespace(store, namespace)
    found: dict[tuple[str, str], dict[int, Path]] = {}
    for path, key in store.entries(namespace):
        if key.fingerprint.startswith(prefix):
            found.setdefault((key.namespace, key.fingerprint), {})[key.occurrence] = path
    if not found:
        raise click.UsageError(f"no interaction matches {prefix!r} in {store.root}")
    if len(found) > 1:
        names = ", ".join(f"{ns}/{fp[:12]}" for ns, fp in sorted(found)[:5])
        raise click.UsageError(f"{prefix!r} is ambiguous ({len(found)} matches: {names}, ...)")
    [((ns, fp), occurrences)] = found.items()
    if occurrence not in occurrences:
        have = ", ".join(map(str, sorted(occurrences)))
        raise click.UsageError(f"{fp[:12]} has no occurrence {occurrence} (it has {have})")
    return read_entry(occurrences[occurrence], Key(ns, fp, occurrence))


@click.command()
@click.argument("fingerprint", required=False)
@dir_option
@namespace_option
@click.option("--occurrence", type=click.IntRange(0), default=0, show_default=True)
@click.option("--raw", is_flag=True, help="The stored document as is (what `zstd -dc` gives).")
@click.option(
    "--textconv",
    "textconv",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Print a stable text of one cassette file (for git diff).",
)
def show(
    fingerprint: str | None,
    store_dir: str,
    namespace: str | None,
    occurrence: int,
    raw: bool,
    textconv: str | None,
) -> None:
    """Show one interaction: FINGERPRINT may be a unique prefix."""
    if textconv is not None:
        click.echo(_textconv(Path(textconv)), nl=False)
        return
    if fingerprint is None:
        raise click.UsageError("give a FINGERPRINT (or a unique prefix of one)")
    entry = find(store_dir, fingerprint, namespace, occurrence)
    if entry.error is not None:
        raise Problem(f"corrupt: {entry.path}: {entry.error.reason}")
    if raw:
        document = json.loads(decompress(entry.path.read_bytes(), str(entry.path)))
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    assert entry.interaction is not None
    click.echo(render_interaction(entry.interaction), nl=False)


def _textconv(path: Path) -> str:
    """The stable text of one file as git hands it over (a temporary copy, any name)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise Problem(f"{path}: {e.strerror or e}") from None
    if data.startswith(b"version https://git-lfs"):
        return f"# Git LFS pointer (run `git lfs pull`)\n{data.decode('utf-8', 'replace')}"
    try:
        return render_interaction(decode(data, str(path)), stable=True)
    except CorruptEntry as e:
        return f"# not a readable cassette file: {e.reason}\n"


@click.command()
@dir_option
@namespace_option
@json_option
def stats(store_dir: str, namespace: str | None, as_json: bool) -> int:
    """Counts and sizes of a store: per namespace, provider, model and status."""
    store = open_store(store_dir)
    check_namespace(store, namespace)
    total, size, stream_count, corrupt = 0, 0, 0, 0
    by: dict[str, Counter[str]] = {k: Counter() for k in ("namespace", "provider", "model")}
    by["status"] = Counter()
    oldest: str | None = None
    newest: str | None = None
    for entry in read_entries(store, namespace):
        if entry.interaction is None:
            corrupt += 1
            _report_corrupt(entry)
            continue
        r = row(entry)
        total, size, stream_count = total + 1, size + entry.size, stream_count + r["streamed"]
        for name, counter in by.items():
            counter[str(r[name] if r[name] is not None else "-")] += 1
        at = r["recorded_at"]
        oldest = at if oldest is None or at < oldest else oldest
        newest = at if newest is None or at > newest else newest
    result = {
        "interactions": total,
        "bytes": size,
        "corrupt": corrupt,
        "streamed_share": round(stream_count / total, 4) if total else 0.0,
        "oldest": oldest,
        "newest": newest,
        **{f"by_{name}": dict(counter.most_common()) for name, counter in by.items()},
    }
    if as_json:
        render.json_line(result)
    else:
        _print_stats(result)
    return 1 if corrupt else 0


def _print_stats(result: dict[str, Any]) -> None:
    share = f"{result['streamed_share'] * 100:.0f}%"
    click.echo(
        f"{result['interactions']} interactions, {render.size(result['bytes'])}, "
        f"{share} streamed; oldest {result['oldest'] or '-'}, newest {result['newest'] or '-'}"
    )
    if result["corrupt"]:
        click.echo(f"{result['corrupt']} corrupt file(s)")
    for name in ("namespace", "provider", "model", "status"):
        counts: dict[str, int] = result[f"by_{name}"]
        if counts:
            click.echo("")
            render.table([name, "interactions"], counts.items())
