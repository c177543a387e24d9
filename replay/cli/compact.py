"""`replay compact`: train a zstd dictionary on the store (or a namespace) and rewrite its
files with it, printing the size before and after (replay.compaction does the work).

The dictionary lands at the store root before any file names it; each file is rewritten
atomically; dictionaries that no file needs any more are removed (the newest is kept for
later recordings, which the store compresses with it).
"""

from __future__ import annotations

import click

from replay.cli import render
from replay.cli.common import Problem, check_namespace, dir_option, namespace_option, open_store
from replay.compaction import (
    DICTIONARY_SIZE,
    CompactError,
    dictionary_ids,
    rewrite,
    sample,
    train,
    unneeded_dictionaries,
    write_dictionary,
)
from replay.errors import CorruptEntry


@click.command()
@dir_option
@namespace_option
@click.option(
    "--size",
    type=click.IntRange(1024, 1024 * 1024),
    default=DICTIONARY_SIZE,
    show_default=True,
    help="Dictionary size in bytes.",
)
@click.option("--level", type=click.IntRange(1, 22), default=19, show_default=True)
def compact(store_dir: str, namespace: str | None, size: int, level: int) -> int:
    """Train a zstd dictionary on the store and recompress every file with it."""
    store = open_store(store_dir)
    check_namespace(store, namespace)
    paths = [path for path, _ in store.entries(namespace)]
    try:
        dictionary = train(sample(paths), size)
    except CompactError as e:
        raise Problem(str(e)) from None
    dict_path = write_dictionary(store.root, dictionary)
    before = after = skipped = 0
    for path in render.progress(paths, len(paths), "compacting"):
        try:
            old, new = rewrite(path, dictionary, level)
        except CorruptEntry as e:
            skipped += 1
            click.echo(f"replay: corrupt, left as it is: {path}: {e.reason}", err=True)
            continue
        before, after = before + old, after + new
    needed = dictionary_ids(p for p, _ in store.entries())
    for stale in unneeded_dictionaries(store.root, needed, dictionary.dict_id()):
        stale.unlink()
    dict_size = dict_path.stat().st_size
    ratio = before / (after + dict_size) if after + dict_size else 0.0
    click.echo(
        f"replay compact: {len(paths) - skipped} file(s), {render.size(before)} -> "
        f"{render.size(after)} + {render.size(dict_size)} dictionary {dict_path.name} "
        f"({ratio:.2f}x)"
    )
    return 1 if skipped else 0
