"""Copying a store to another: what `replay push` and `replay pull` do.

Owns `copy_missing`: every interaction file of the source that the target does not have is
copied to it, by name, claimed (a file the target already has, or gets meanwhile from a
proxy recording into it, is never overwritten: files are immutable once written). A file the
source compressed with a zstd dictionary (`replay compact`) is copied without it, as plain
zstd, unless the target is a local directory that receives the dictionary too: an object
store's readers look no dictionary up. Nothing is decoded beyond the zstd layer, so what
is copied is byte for byte what was recorded and redacted. Knows nothing of click.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import zstandard

from replay.codec import COMPRESSION_LEVEL, DICTIONARY_SUFFIX, decompress
from replay.errors import CorruptEntry
from replay.store import Store


@dataclass(slots=True)
class Transfer:
    """What a copy did."""

    copied: int = 0
    present: int = 0
    """Files the target had already (or that another writer put there first)."""
    bytes: int = 0
    failed: list[str] = field(default_factory=list)
    """`name: reason` of each file that could not be read or written."""


def copy_missing(
    source: Store,
    target: Store,
    progress: Callable[[list[str]], Iterable[str]] | None = None,
) -> Transfer:
    """Copy what `target` lacks of `source` (see the module docstring); `progress` wraps
    the names as they are copied (a progress bar)."""
    result = Transfer()
    have = set(target.raw_names())
    names = [n for n in source.raw_names() if n.endswith(".zst")]
    dictionaries = [n for n in source.raw_names() if n.endswith(DICTIONARY_SUFFIX)]
    keep_dictionaries = not target.remote and not source.remote
    if keep_dictionaries:
        names = dictionaries + names
    for name in progress(names) if progress is not None else names:
        if name in have:
            result.present += 1
            continue
        try:
            data = source.read_raw(name)
            if name.endswith(".zst") and not keep_dictionaries:
                data = _without_dictionary(data, source.describe_name(name), source.max_body)
            if target.create_raw(name, data):
                result.copied += 1
                result.bytes += len(data)
            else:
                result.present += 1
        except (OSError, CorruptEntry, ValueError) as e:
            result.failed.append(f"{name}: {e}")
    return result


def _without_dictionary(data: bytes, path: str, limit: int) -> bytes:
    """`data` as plain zstd if it was compressed with a dictionary, else unchanged."""
    if not zstandard.get_frame_parameters(data).dict_id:
        return data
    raw = decompress(data, path, limit)
    return zstandard.ZstdCompressor(level=COMPRESSION_LEVEL, write_checksum=True).compress(raw)
