"""Decompression bombs and deep JSON: request bodies (canonical), cassette files (codec,
store) and the near-miss index stop decoding at the cap, and never hold much more.

Memory is measured with tracemalloc (every bytes/bytearray the decoders return is a Python
allocation); the bombs inflate to 32-64 MiB against caps of 1 MiB.
"""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc
import zlib
from collections.abc import Callable, Iterator

import brotli
import pytest
import zstandard

from replay import canonical, codec
from replay.canonical import (
    MAX_JSON_DEPTH,
    MAX_JSON_ITEMS,
    body_material,
    check_json_depth,
    decode_content,
    decoded_request,
    json_depth,
    json_items,
    parse_json,
)
from replay.errors import BodyTooLarge, CorruptEntry, JsonTooDeep, RequestRefused
from replay.fingerprint import FingerprintPolicy, fingerprint
from replay.models import Request

MIB = 2**20
CAP = 1 * MIB
BOMB = 32 * MIB
PEAK = 8 * MIB
"""What decoding a bomb may allocate at its peak, against CAP: well under the bomb."""


def _zeros(total: int) -> Iterator[bytes]:
    block = b"\0" * MIB
    for _ in range(total // MIB):
        yield block


def _stream(compressor: Callable[[bytes], bytes], flush: Callable[[], bytes], n: int) -> bytes:
    return b"".join(compressor(b) for b in _zeros(n)) + flush()


def gzip_bomb(n: int = BOMB) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return _stream(c.compress, c.flush, n)


def deflate_bomb(n: int = BOMB, raw: bool = False) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15 if raw else 15)
    return _stream(c.compress, c.flush, n)


def br_bomb(n: int = BOMB) -> bytes:
    c = brotli.Compressor(quality=5)
    return _stream(c.process, c.finish, n)


def zstd_bomb(n: int = BOMB, with_size: bool = False) -> bytes:
    if with_size:  # the frame header announces the size
        return zstandard.ZstdCompressor(level=3).compress(b"\0" * n)
    c = zstandard.ZstdCompressor(level=3).compressobj()
    return _stream(c.compress, c.flush, n)


def peak_of(action: Callable[[], object]) -> tuple[int, BaseException | None]:
    """The peak of Python allocations while `action` runs, and what it raised."""
    tracemalloc.start()
    try:
        action()
    except Exception as exc:  # the caller asserts on it
        return tracemalloc.get_traced_memory()[1], exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, None


BOMBS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "gzip": ("gzip", gzip_bomb),
    "deflate": ("deflate", deflate_bomb),
    "raw deflate": ("deflate", lambda: deflate_bomb(raw=True)),
    "br": ("br", br_bomb),
    "zstd": ("zstd", zstd_bomb),
    "zstd with size": ("zstd", lambda: zstd_bomb(with_size=True)),
    "gzip inside br": ("gzip, br", lambda: brotli.compress(gzip_bomb(), quality=5)),
}


# -- request bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BOMBS))
def test_a_request_bomb_stops_at_the_cap_with_a_typed_error(name: str) -> None:
    coding, make = BOMBS[name]
    bomb = make()
    peak, raised = peak_of(lambda: decode_content(bomb, coding, CAP))
    assert isinstance(raised, BodyTooLarge) and isinstance(raised, RequestRefused)
    assert not isinstance(raised, ValueError)  # undecodable is ValueError; too large is not
    assert raised.limit == CAP and str(CAP) in str(raised) and "replay_max_body" in str(raised)
    assert peak < PEAK, f"{name}: peak {peak / MIB:.1f} MiB"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd", "identity"])
def test_the_cap_is_exact(coding: str) -> None:
    encode = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "identity": bytes,
    }[coding]
    body = os.urandom(3000) + b"x" * 5000
    assert decode_content(encode(body), coding, len(body)) == body
    with pytest.raises(BodyTooLarge):
        decode_content(encode(body), coding, len(body) - 1)


def test_the_cap_applies_to_each_stage_of_a_chain() -> None:
    body = b"y" * 10_000
    chained = brotli.compress(gzip.compress(body))
    assert decode_content(chained, "gzip, br", 10_000) == body
    with pytest.raises(BodyTooLarge):
        decode_content(chained, "gzip, br", 9_999)


def test_decoders_still_refuse_truncated_data_as_undecodable() -> None:
    body = os.urandom(50_000)
    for coding, encoded in [
        ("gzip", gzip.compress(body)),
        ("deflate", zlib.compress(body)),
        ("br", brotli.compress(body)),
        ("zstd", zstandard.ZstdCompressor().compress(body)),
    ]:
        with pytest.raises(ValueError, match=coding):
            decode_content(encoded[: len(encoded) // 2], coding, CAP)


def test_gzip_members_back_to_back_decode_as_one() -> None:
    assert decode_content(gzip.compress(b"one ") + gzip.compress(b"two"), "gzip") == b"one two"


def test_decoded_request_raises_for_a_bomb_and_keeps_small_bodies() -> None:
    def request(body: bytes, coding: str) -> Request:
        headers = (("content-type", "application/json"), ("content-encoding", coding))
        return Request("POST", "https", "api.openai.com", 443, "/v1/x", (), headers, body)

    assert decoded_request(request(gzip.compress(b"{}"), "gzip"), CAP).body == b"{}"
    with pytest.raises(BodyTooLarge):
        decoded_request(request(gzip_bomb(), "gzip"), CAP)
    with pytest.raises(BodyTooLarge):  # the default cap is replay_max_body's default
        decoded_request(request(gzip_bomb(canonical.DEFAULT_MAX_BODY + MIB), "gzip"))


# -- deep JSON -----------------------------------------------------------------------------

DEEP = b'{"model":"m","x":' + b"[" * 200_000 + b"]" * 200_000 + b"}"


def test_json_nested_200000_deep_is_refused_with_a_typed_error() -> None:
    with pytest.raises(JsonTooDeep) as info:
        check_json_depth(DEEP)
    assert isinstance(info.value, RequestRefused)
    assert info.value.limit == MAX_JSON_DEPTH and str(MAX_JSON_DEPTH) in str(info.value)
    check_json_depth(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)


def test_deep_json_is_never_handed_to_the_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> object:
        raise AssertionError("parsed a body nested too deep")

    monkeypatch.setattr("json.loads", refuse)
    assert parse_json(DEEP) is None
    assert body_material(DEEP) == {"text": DEEP.decode()}


def test_a_deep_body_still_has_a_fingerprint() -> None:
    headers = (("content-type", "application/json"),)
    req = Request("POST", "https", "api.openai.com", 443, "/v1/chat/completions", (), headers, DEEP)
    assert len(fingerprint(req, FingerprintPolicy()).hex) == 64


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'["]]]]", "[[[[", "\\"[", {}]', 2),  # brackets inside strings do not count
        (b'["\\\\", [[]]]', 3),  # an escaped backslash ends before the quote
        (b'{"a": "unterminated [[[', 1),
    ],
)
def test_json_depth_counts_brackets_outside_strings(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth
    if depth:
        assert json_depth(text, stop_at=0) >= 1


def test_json_depth_agrees_with_the_parser_on_real_bodies() -> None:
    doc = {"messages": [{"role": "user", "content": 'a [ { ] } " \\'}] * 300, "n": [[[[1]]]]}
    assert json_depth(json.dumps(doc).encode()) == 5


# -- cassette files ------------------------------------------------------------------------


@pytest.mark.parametrize("with_size", [False, True])
def test_a_cassette_bomb_is_a_corrupt_entry_and_stays_under_the_cap(with_size: bool) -> None:
    bomb = zstd_bomb(with_size=with_size)
    peak, raised = peak_of(lambda: codec.decode(bomb, "ns/ab/x.0.zst", CAP))
    assert isinstance(raised, CorruptEntry) and raised.path == "ns/ab/x.0.zst"
    assert "replay_max_body" in raised.reason and str(CAP) in raised.reason
    assert peak < PEAK, f"peak {peak / MIB:.1f} MiB"


# -- JSON that parses into far more memory than its size ------------------------------------


@pytest.mark.parametrize(
    ("text", "items"),
    [
        (b"{}", 1),
        (b'[1, 2, {"a,b": [3]}]', 5),  # the comma inside the key does not count
        (b'["[{,", "\\",["]', 2),
        (b"1", 0),
    ],
)
def test_json_items_counts_structure_outside_strings(text: bytes, items: int) -> None:
    assert json_items(text) == items
    assert json_items(text, stop_at=items) == items


def test_json_of_too_many_items_is_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(canonical, "MAX_JSON_ITEMS", 1000)
    fits = b"[" + b"0," * 999 + b"0]"  # one [ and 999 commas: 1000 items
    assert json_items(fits) == 1000 and parse_json(fits) is not None
    too_many = b"[" + b"0," * 1000 + b"0]"
    assert parse_json(too_many) is None
    assert body_material(too_many) == {"text": too_many.decode()}


def test_a_json_amplification_bomb_stays_small() -> None:
    """6 MB of `[[],[],...]` would parse into some 200 MB of lists; it is keyed as text."""
    bomb = b"[" + b"[]," * (MAX_JSON_ITEMS + 10) + b"[]]"
    peak, raised = peak_of(lambda: parse_json(bomb))
    assert raised is None and parse_json(bomb) is None
    assert peak < 4 * len(bomb), f"peak {peak / MIB:.1f} MiB"


def test_a_cassette_that_parses_into_gbs_is_corrupt() -> None:
    document = b"[" + b"{}," * (MAX_JSON_ITEMS + 10) + b"{}]"
    data = zstandard.ZstdCompressor(level=3).compress(document)
    assert len(data) < 64 * 1024
    peak, raised = peak_of(lambda: codec.decode(data, "ns/ab/x.0.zst"))
    assert isinstance(raised, CorruptEntry) and "JSON items" in raised.reason
    assert peak < 3 * len(document), f"peak {peak / MIB:.1f} MiB"
