"""`replay import` and `replay export`: other tools' recordings in, JSON Lines out.

import reads VCR.py cassettes (replay.importers.vcr), HAR 1.2 files (replay.importers.har)
and mitmproxy flow files (replay.mitm.flowfile, mitmproxy's own reader), and stores each
interaction as a live recording would be: fingerprinted, redacted (`replay.redact.redact`),
then `Store.put`. export prints each decoded file as one JSON object: the file's document
(docs/format.md), its `fingerprint` object flattened into `fingerprint` (the hex, as
`fingerprint_version` and `ignore` beside it), with `namespace` and `occurrence` on top.
"""

from __future__ import annotations

from pathlib import Path

import click

from replay.cli import render
from replay.cli.common import Problem, check_namespace, dir_option, open_store, read_entries
from replay.codec import to_document
from replay.config import check_namespace as valid_namespace
from replay.errors import ConfigError
from replay.importers import Exchange, ImportFormatError, interactions
from replay.redact import redact
from replay.store import Store

FORMATS = ("auto", "vcr", "har", "flow")


def detect(path: Path) -> str:
    """`har`, `vcr` or `flow`, from the file's first bytes (and name)."""
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    if head[:1] == b"{":
        return "har" if b'"log"' in head or path.suffix.lower() == ".har" else "vcr"
    if head[:1].isdigit() and b":" in head[:12]:
        return "flow"  # tnetstring: a length, a colon
    return "vcr"


def read(path: Path, fmt: str) -> list[Exchange]:
    if fmt == "har":
        from replay.importers import har

        return har.read(path)
    if fmt == "flow":
        from replay.mitm import flowfile  # mitmproxy only when a flow file is read

        return flowfile.read(path)
    from replay.importers import vcr

    return vcr.read(path)


@click.command(name="import")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@dir_option
@click.option("--namespace", default="default", show_default=True, metavar="NAME")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
def import_(files: tuple[Path, ...], store_dir: str, namespace: str, fmt: str) -> None:
    """Store VCR.py cassettes, HAR files or mitmproxy flow files as replay interactions.

    Each file's identical requests are numbered 0, 1, 2... as a recording run numbers
    them, replacing what the namespace held under the same keys.
    """
    try:
        valid_namespace(namespace)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="--namespace") from None
    Path(store_dir).mkdir(parents=True, exist_ok=True)
    with Store(store_dir) as store:
        for path in files:
            kind = detect(path) if fmt == "auto" else fmt
            try:
                exchanges = read(path, kind)
            except ImportFormatError as e:
                raise Problem(str(e)) from None
            made = interactions(exchanges, namespace, f"{kind}:{path.name}")
            count = 0
            for interaction in render.progress(made, len(exchanges), f"importing {path.name}"):
                store.put(redact(interaction))
                count += 1
            click.echo(
                f"replay import: {count} interaction(s) from {path} ({kind}) "
                f"into {store_dir}/{namespace}",
                err=True,
            )


@click.command()
@dir_option
@click.option("--namespace", metavar="NAME", help="Only this namespace.")
def export(store_dir: str, namespace: str | None) -> int:
    """Print the store as JSON Lines, one decoded interaction a line."""
    store = open_store(store_dir)
    check_namespace(store, namespace)
    corrupt = 0
    for entry in render.progress(read_entries(store, namespace), None, "exporting"):
        if entry.interaction is None:
            corrupt += 1
            assert entry.error is not None
            click.echo(f"replay: corrupt: {entry.path}: {entry.error.reason}", err=True)
            continue
        key = entry.key
        document = to_document(entry.interaction)
        policy = document.pop("fingerprint")
        top: dict[str, object] = {"fingerprint": key.fingerprint, "namespace": key.namespace}
        top |= {"occurrence": key.occurrence, "fingerprint_version": policy["version"]}
        render.json_line({**top, "ignore": policy["ignore"], **document})
    return 1 if corrupt else 0
