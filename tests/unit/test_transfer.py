"""transfer.copy_missing between two local stores: only what is missing, never overwriting,
dictionaries kept between local stores and left out (files made plain) otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import zstandard

from replay.codec import dictionary_name
from replay.store import Store
from replay.transfer import _without_dictionary, copy_missing


def test_only_missing_files_are_copied_and_none_is_overwritten(tmp_path: Path) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    for store, names in ((source, ("x", "y")), (target, ("y",))):
        shard = store / "default" / "ab"
        shard.mkdir(parents=True)
        for name in names:
            data = zstandard.ZstdCompressor().compress(f"{store.name}:{name}".encode())
            (shard / f"{'ab' * 32}.{ord(name)}.zst").write_bytes(data)
    result = copy_missing(Store(source), Store(target))
    assert (result.copied, result.present, result.failed) == (1, 1, [])
    kept = target / "default" / "ab" / f"{'ab' * 32}.{ord('y')}.zst"
    assert zstandard.ZstdDecompressor().decompressobj().decompress(kept.read_bytes()) == b"b:y"


def test_a_dictionary_compressed_file_is_made_plain_zstd(tmp_path: Path) -> None:
    samples = [
        json.dumps({"model": "gpt-4o-mini", "n": i, "text": "the same words " * (i % 7)}).encode()
        for i in range(300)
    ]
    dictionary = zstandard.train_dictionary(2048, samples)
    (tmp_path / dictionary_name(dictionary.dict_id())).write_bytes(dictionary.as_bytes())
    path = tmp_path / "file.zst"
    data = zstandard.ZstdCompressor(dict_data=dictionary).compress(samples[5])
    assert zstandard.get_frame_parameters(data).dict_id == dictionary.dict_id()
    plain = _without_dictionary(data, str(path), 2**20)
    assert zstandard.get_frame_parameters(plain).dict_id == 0
    assert zstandard.ZstdDecompressor().decompressobj().decompress(plain) == samples[5]
    assert _without_dictionary(plain, str(path), 2**20) is plain  # plain stays as it is
