"""`replay compact`: a zstd dictionary trained on a store's own files, and the files
rewritten with it.

Owns sampling (the decompressed documents of up to MAX_SAMPLES files spread over the store,
MAX_SAMPLE_BYTES in all), training, writing the dictionary as `<id>.dict` at the store root
(atomically, before any file needs it), rewriting one file (decompressed with whatever
dictionary it had, checked to decode to the same interaction, compressed with the new one,
written atomically) and finding the dictionaries no file needs any more. The JSON document
inside each file does not change: the format stays version 1.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import cast

import zstandard

from replay.codec import (
    COMPRESSION_LEVEL,
    DICTIONARY_SUFFIX,
    decode,
    decompress,
    dictionary_name,
)
from replay.errors import ReplayError
from replay.store import write_atomically

DICTIONARY_SIZE = 16 * 1024
DICTIONARY_LEVEL = 19
MAX_SAMPLES = 5000
MAX_SAMPLE_BYTES = 64 * 2**20
MIN_SAMPLES = 8


class CompactError(ReplayError):
    """The store cannot be compacted as asked (too few files to train on)."""


def sample(paths: list[Path]) -> list[bytes]:
    """Decompressed documents of up to MAX_SAMPLES of `paths`, spread evenly; bad files skipped."""
    step = max(1, len(paths) // MAX_SAMPLES)
    samples: list[bytes] = []
    total = 0
    for path in paths[::step]:
        try:
            data = decompress(path.read_bytes(), str(path))
        except (OSError, ReplayError):
            continue
        if total + len(data) > MAX_SAMPLE_BYTES:
            break
        samples.append(data)
        total += len(data)
    return samples


def train(samples: list[bytes], size: int = DICTIONARY_SIZE) -> zstandard.ZstdCompressionDict:
    if len(samples) < MIN_SAMPLES:
        raise CompactError(f"{len(samples)} readable file(s): too few to train a dictionary")
    try:
        buffers = cast("list[bytes | bytearray | memoryview[int]]", samples)
        return zstandard.train_dictionary(size, buffers, level=DICTIONARY_LEVEL)
    except zstandard.ZstdError as e:
        raise CompactError(f"cannot train a dictionary on these files: {e}") from None


def write_dictionary(root: Path, dictionary: zstandard.ZstdCompressionDict) -> Path:
    path = root / dictionary_name(dictionary.dict_id())
    write_atomically(path, dictionary.as_bytes())
    return path


def rewrite(
    path: Path, dictionary: zstandard.ZstdCompressionDict, level: int = COMPRESSION_LEVEL
) -> tuple[int, int]:
    """Recompress one file with `dictionary`; (bytes before, bytes after). A file that does
    not decode raises CorruptEntry and is left as it is."""
    data = path.read_bytes()
    document = decompress(data, str(path))
    before = decode(data, str(path))
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True, dict_data=dictionary)
    packed = compressor.compress(document)
    if decode(packed, str(path)) != before:  # the new dictionary is beside it already
        raise CompactError(f"{path}: recompressed file does not read back the same")
    write_atomically(path, packed)
    return len(data), len(packed)


def dictionary_ids(paths: Iterable[Path]) -> set[int]:
    """The dictionary ids the frame headers of `paths` name (0: none)."""
    ids = set()
    for path in paths:
        try:
            with path.open("rb") as f:
                head = f.read(32)
            ids.add(zstandard.get_frame_parameters(head).dict_id)
        except (OSError, zstandard.ZstdError):
            continue
    return ids


def unneeded_dictionaries(root: Path, needed: set[int], keep: int) -> list[Path]:
    """`*.dict` files at `root` that no file needs, except dictionary `keep` (the newest)."""
    out = []
    for name in sorted(os.listdir(root)):
        if not name.endswith(DICTIONARY_SUFFIX):
            continue
        stem = name.removesuffix(DICTIONARY_SUFFIX)
        if stem.isdigit() and int(stem) not in needed and int(stem) != keep:
            out.append(root / name)
    return out
