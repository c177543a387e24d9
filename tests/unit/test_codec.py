"""replay.codec: the versioned file format (round trips, readability, corrupt input)."""

from __future__ import annotations

import base64
import gzip
import json
import random
from pathlib import Path
from typing import Any

import pytest
import zstandard

from replay import codec
from replay.errors import CorruptEntry, FormatVersionError
from replay.models import (
    Chunk,
    Interaction,
    Key,
    Provenance,
    RedactedInteraction,
    Request,
    ResponseHead,
)

FP = "ab" + "0123456789abcdef" * 3 + "0123456789abcd"

SSE = (
    Chunk(0.0, b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\n'),
    Chunk(0.0123456789, b'data: {"choices":[{"delta":{"content":"lo \xc3\xa9t\xc3\xa9"}}]}\n\n'),
    Chunk(0.5, b"data: [DONE]\n\n"),
)


def make(
    *,
    chunks: tuple[Chunk, ...] = SSE,
    body: bytes = b'{"model":"gpt-4o-mini","stream":true}',
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),),
    response_headers: tuple[tuple[str, str], ...] = (("content-type", "text/event-stream"),),
    ttfb: float = 0.25,
    complete: bool = True,
) -> Interaction:
    return Interaction(
        key=Key("default", FP, 0),
        fingerprint_version=1,
        ignore=("user", "metadata.trace_id"),
        request=Request(
            method="POST",
            scheme="https",
            host="api.openai.com",
            port=443,
            path="/v1/chat/completions",
            query=(("api-version", "2024-06-01"),),
            headers=headers,
            body=body,
        ),
        response=ResponseHead(200, "OK", "HTTP/1.1", response_headers),
        ttfb=ttfb,
        chunks=chunks,
        complete=complete,
        provenance=Provenance(
            recorded_at="2025-11-22T01:15:00.000+00:00",
            provider="openai",
            model="gpt-4o-mini",
            user_agent="OpenAI/Python 1.99.0",
            upstream_status=200,
            tool_version="0.1.0",
        ),
    )


def redacted(interaction: Interaction) -> RedactedInteraction:
    """A RedactedInteraction the way the product makes one (redact.py), if it exists yet."""
    try:
        from replay.redact import redact
    except ImportError:
        return RedactedInteraction(interaction)
    return redact(interaction)


def round_trip(interaction: Interaction) -> tuple[RedactedInteraction, Interaction]:
    ri = redacted(interaction)
    return ri, codec.decode(codec.encode(ri))


def document_of(data: bytes) -> Any:
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return json.loads(raw)


def compress(raw: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(raw)


# --- round trips --------------------------------------------------------------------------


def test_round_trip_text_chunks_keeps_bytes_and_boundaries() -> None:
    ri, back = round_trip(make())
    assert back == codec.normalize(ri.interaction)
    assert [c.data for c in back.chunks] == [c.data for c in SSE]
    assert back.body == b"".join(c.data for c in SSE)


def test_utf8_chunks_are_stored_as_text_binary_ones_as_base64() -> None:
    gz = gzip.compress(b'{"id":"x","object":"chat.completion"}' * 20, mtime=0)
    chunks = (Chunk(0.0, SSE[1].data), Chunk(0.01, gz[:40]), Chunk(0.02, gz[40:]))
    ri, back = round_trip(make(chunks=chunks))
    stored = document_of(codec.encode(ri))["response"]["chunks"]
    assert stored[0] == {"offset_ms": 0.0, "text": SSE[1].data.decode()}
    assert set(stored[1]) == {"offset_ms", "base64"}
    assert base64.b64decode(stored[2]["base64"]) == gz[40:]
    assert gzip.decompress(back.body[len(SSE[1].data) :]) == gzip.decompress(gz)
    assert back.chunks == codec.normalize(ri.interaction).chunks


def test_chunk_split_inside_a_character_is_kept_exactly() -> None:
    data = "é".encode()
    chunks = (Chunk(0.0, b"caf" + data[:1]), Chunk(0.001, data[1:] + b"!"))
    _, back = round_trip(make(chunks=chunks))
    assert [c.data for c in back.chunks] == [b"caf\xc3", b"\xa9!"]
    assert back.body.decode() == "café!"


def test_empty_body_and_no_chunks() -> None:
    ri, back = round_trip(make(body=b"", chunks=()))
    doc = document_of(codec.encode(ri))
    assert doc["request"]["body"] == {"text": ""}
    assert doc["response"]["chunks"] == []
    assert back.request.body == b""
    assert back.chunks == ()


def test_non_utf8_request_body_is_base64_and_exact() -> None:
    body = b"\xff\xfe\x00binary\x80"
    ri, back = round_trip(make(body=body, headers=(("Content-Type", "application/octet-stream"),)))
    doc = document_of(codec.encode(ri))
    assert doc["request"]["body"] == {"base64": base64.b64encode(body).decode()}
    assert back.request.body == ri.interaction.request.body == body


def test_header_order_case_and_duplicates_are_kept() -> None:
    headers = (("X-Zeta", "1"), ("accept", "*/*"), ("X-Dup", "a"), ("x-dup", "b"))
    response_headers = (("Content-Type", "text/event-stream"), ("X-Request-ID", "req_1"))
    ri, back = round_trip(make(headers=headers, response_headers=response_headers))
    assert back.request.headers == ri.interaction.request.headers == headers
    assert back.response.headers == response_headers
    doc = document_of(codec.encode(ri))
    assert doc["request"]["headers"] == [list(h) for h in headers]


def test_incomplete_flag_and_fingerprint_policy_survive() -> None:
    ri, back = round_trip(make(complete=False))
    assert back.complete is False
    assert back.fingerprint_version == 1
    assert back.ignore == ("user", "metadata.trace_id")
    assert back.provenance == ri.interaction.provenance


def test_lone_surrogate_in_a_header_still_round_trips() -> None:
    headers = (("x-odd", "caf\udce9"),)
    data = codec.encode(redacted(make(headers=headers)))
    document_of(data)  # still valid UTF-8 JSON
    assert codec.decode(data).request.headers == headers


def test_non_ascii_text_is_readable_in_the_file() -> None:
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(codec.encode(redacted(make())))
    assert "lo été".encode() in raw


def test_encode_takes_only_redacted_interactions() -> None:
    with pytest.raises(TypeError):
        codec.encode(make())  # type: ignore[arg-type]


def test_nan_time_is_refused_at_encode() -> None:
    with pytest.raises(ValueError):
        codec.encode(redacted(make(ttfb=float("nan"))))


# --- times --------------------------------------------------------------------------------


def test_times_are_rounded_to_the_microsecond_and_stable() -> None:
    rng = random.Random(1)
    offsets = [*sorted(rng.uniform(0, 120) for _ in range(300)), 1e-7, 0.0004999, 3600.0000005]
    chunks = tuple(Chunk(o, b"x") for o in offsets)
    original = make(chunks=chunks, ttfb=0.123456789)
    ri, back = round_trip(original)
    doc = document_of(codec.encode(ri))
    for chunk, stored in zip(chunks, doc["response"]["chunks"], strict=True):
        assert stored["offset_ms"] == round(chunk.offset * 1000, 3)
    assert doc["response"]["ttfb_ms"] == 123.457
    assert back == codec.normalize(original)
    assert codec.normalize(back) == back
    assert codec.decode(codec.encode(RedactedInteraction(back))) == back
    for b, c in zip(back.chunks, chunks, strict=True):
        assert abs(b.offset - c.offset) <= 5e-7 + 1e-9


# --- the document -------------------------------------------------------------------------


def test_file_is_one_zstd_frame_of_readable_json() -> None:
    ri = redacted(make())
    data = codec.encode(ri)
    assert data[:4] == b"\x28\xb5\x2f\xfd"
    assert zstandard.get_frame_parameters(data).has_checksum
    doc = document_of(data)
    assert doc["format"] == "llm-replay"
    assert doc["version"] == codec.FORMAT_VERSION == 1
    assert list(doc) == [
        "format",
        "version",
        "key",
        "fingerprint",
        "provenance",
        "request",
        "response",
    ]
    assert doc["key"] == {"namespace": "default", "fingerprint": FP, "occurrence": 0}
    assert doc["fingerprint"] == {"version": 1, "ignore": ["user", "metadata.trace_id"]}
    assert doc["request"]["url"] == ri.interaction.request.url
    assert doc["request"]["query"] == [["api-version", "2024-06-01"]]
    assert set(doc["response"]) == {
        "status",
        "reason",
        "http_version",
        "headers",
        "ttfb_ms",
        "complete",
        "chunks",
    }
    assert set(doc["provenance"]) == {
        "recorded_at",
        "provider",
        "model",
        "user_agent",
        "upstream_status",
        "tool_version",
    }


def test_to_document_and_from_document_are_inverse() -> None:
    interaction = make()
    doc = codec.to_document(interaction)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON types only
    assert codec.from_document(doc) == codec.normalize(interaction)


def test_several_frames_back_to_back_decode_as_one() -> None:
    # `zstd -T0` or a hand re-compression may produce several frames.
    raw = codec.dumps(codec.to_document(make()))
    data = compress(raw[:100]) + compress(raw[100:])
    assert codec.decode(data) == codec.normalize(make())


def test_a_frame_without_content_size_decodes() -> None:
    # What `zstd` writes when it compresses a pipe (a file edited by hand).
    raw = codec.dumps(codec.to_document(make()))
    data = zstandard.ZstdCompressor(write_content_size=False).compress(raw)
    assert zstandard.get_frame_parameters(data).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert codec.decode(data) == codec.normalize(make())


# --- corrupt input ------------------------------------------------------------------------


def _mutated(mutate: Any) -> bytes:
    doc = codec.to_document(make())
    mutate(doc)
    return compress(json.dumps(doc).encode())


GOOD = codec.encode(RedactedInteraction(make()))

CORRUPT = {
    "garbage": (b"this is not a cassette", "not a zstd frame"),
    "empty": (b"", "not a zstd frame"),
    "truncated": (GOOD[: len(GOOD) // 2], "zstd"),
    "trailing garbage": (GOOD + b"junk", "not a zstd frame"),
    "bit flip": (GOOD[:-6] + bytes([GOOD[-6] ^ 0xFF]) + GOOD[-5:], "zstd"),
    "not json": (compress(b"hello, world"), "not JSON"),
    "not utf-8": (compress(b'{"format": "\xff"}'), "not UTF-8"),
    "nan": (compress(b'{"format": NaN}'), "not JSON"),
    "not an object": (compress(b"[1, 2]"), "document: expected an object"),
    "other format": (compress(b'{"format": "vcr", "version": 1}'), '"format"'),
    "missing chunks": (
        _mutated(lambda d: d["response"].pop("chunks")),
        "response.chunks: missing",
    ),
    "missing provenance": (_mutated(lambda d: d.pop("provenance")), "provenance: missing"),
    "status as string": (
        _mutated(lambda d: d["response"].update(status="200")),
        "response.status: expected an integer",
    ),
    "bool as int": (
        _mutated(lambda d: d["key"].update(occurrence=True)),
        "key.occurrence: expected an integer",
    ),
    "header not a pair": (
        _mutated(lambda d: d["request"]["headers"].append(["a"])),
        "request.headers[1]: expected a [name, value] pair",
    ),
    "chunk with both forms": (
        _mutated(lambda d: d["response"]["chunks"][0].update(base64="")),
        'response.chunks[0]: expected exactly one of "text" or "base64"',
    ),
    "bad base64": (
        _mutated(lambda d: d["request"].update(body={"base64": "@@@"})),
        "request.body.base64",
    ),
    "negative offset": (
        _mutated(lambda d: d["response"]["chunks"][1].update(offset_ms=-1)),
        "response.chunks[1].offset_ms",
    ),
    "version not int": (_mutated(lambda d: d.update(version="1")), "version: expected an integer"),
    "magic only": (b"\x28\xb5\x2f\xfd", "bad zstd frame header"),
    "headers not a list": (
        _mutated(lambda d: d["request"].update(headers={})),
        "request.headers: expected a list, got dict",
    ),
    "method not a string": (
        _mutated(lambda d: d["request"].update(method=1)),
        "request.method: expected a string, got int",
    ),
    "model not a string": (
        _mutated(lambda d: d["provenance"].update(model=False)),
        "provenance.model: expected a string, got bool",
    ),
    "complete not a bool": (
        _mutated(lambda d: d["response"].update(complete=1)),
        "response.complete: expected true or false",
    ),
    "offset as string": (
        _mutated(lambda d: d["response"]["chunks"][0].update(offset_ms="0")),
        "response.chunks[0].offset_ms: expected a number, got str",
    ),
    "huge offset": (
        _mutated(lambda d: d["response"].update(ttfb_ms=10**400)),
        "response.ttfb_ms: expected a finite number",
    ),
    "lone surrogate in text": (
        compress(codec.dumps(codec.to_document(make())).replace(b"data: [DONE]", b"\\ud800")),
        "response.chunks[2].text: a lone surrogate",
    ),
    "ignore not strings": (
        _mutated(lambda d: d["fingerprint"].update(ignore=[None])),
        "fingerprint.ignore[0]: expected a string, got null",
    ),
}


@pytest.mark.parametrize("name", list(CORRUPT))
def test_corrupt_input_raises_corrupt_entry_with_path_and_reason(name: str) -> None:
    data, reason = CORRUPT[name]
    with pytest.raises(CorruptEntry) as info:
        codec.decode(data, "cassettes/default/ab/x.0.zst")
    assert not isinstance(info.value, FormatVersionError)
    assert info.value.path == "cassettes/default/ab/x.0.zst"
    assert reason in info.value.reason
    assert "cassettes/default/ab/x.0.zst" in str(info.value)


def test_unknown_version_raises_format_version_error() -> None:
    data = _mutated(lambda d: d.update(version=2, response="a shape v1 cannot read"))
    with pytest.raises(FormatVersionError) as info:
        codec.decode(data, "p.zst")
    assert info.value.path == "p.zst"
    assert "version 2" in info.value.reason


def test_good_bytes_decode() -> None:
    # The corrupt cases above are mutations of this file, which must itself be fine.
    assert codec.decode(GOOD) == codec.normalize(make())


def test_frame_needing_a_dictionary_is_reported_as_such() -> None:
    samples: list[bytes | bytearray | memoryview] = [
        codec.dumps(codec.to_document(make(body=b"%d" % n))) for n in range(200)
    ]
    dictionary = zstandard.train_dictionary(2048, samples)
    data = zstandard.ZstdCompressor(dict_data=dictionary).compress(samples[0])
    with pytest.raises(CorruptEntry, match="dictionary"):
        codec.decode(data)


def test_unknown_fields_are_ignored() -> None:
    doc = codec.to_document(make())
    doc["comment"] = "added by hand"
    doc["response"]["extra"] = 1
    assert codec.from_document(doc) == codec.normalize(make())


def test_times_written_as_integers_are_accepted() -> None:
    doc = codec.to_document(make())
    doc["response"]["chunks"][2]["offset_ms"] = 500
    doc["response"]["ttfb_ms"] = 1
    back = codec.from_document(doc)
    assert back.chunks[2].offset == 0.5
    assert back.ttfb == 0.001


# --- golden files: every FORMAT_VERSION stays readable ------------------------------------

GOLDEN = Path(__file__).parent.parent / "data" / "format"

GOLDEN_V1 = Interaction(
    key=Key("golden", "5e" + "0123456789abcdef" * 3 + "0123456789abcd", 2),
    fingerprint_version=1,
    ignore=("user",),
    request=Request(
        method="POST",
        scheme="http",
        host="localhost",
        port=11434,
        path="/api/chat",
        query=(("b", "2"), ("a", "1 é")),
        headers=(("Content-Type", "application/octet-stream"), ("X-Dup", "1"), ("x-dup", "2")),
        body=b"\xff\xfe\x00 not utf-8",
    ),
    response=ResponseHead(
        status=200,
        reason="OK",
        http_version="HTTP/1.1",
        headers=(("Content-Type", "application/x-ndjson"), ("Content-Encoding", "gzip")),
    ),
    ttfb=0.123457,
    chunks=(
        Chunk(0.0, '{"message":{"content":"héllo"}}\n'.encode()),
        Chunk(0.012346, b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff"),
        Chunk(1.5, b""),
    ),
    complete=False,
    provenance=Provenance(
        recorded_at="2025-11-22T01:15:00.000+00:00",
        provider="ollama",
        model=None,
        user_agent="curl/8.5.0",
        upstream_status=200,
        tool_version="0.1.0",
    ),
)


def test_golden_v1_file_still_decodes() -> None:
    """tests/data/format/v1.zst was written by FORMAT_VERSION 1. Never regenerate it: a
    format change bumps the version and adds a new golden file beside this one."""
    data = (GOLDEN / "v1.zst").read_bytes()
    assert codec.decode(data, "v1.zst") == GOLDEN_V1


def test_writer_still_produces_the_v1_document() -> None:
    # The document shape is pinned: changing it without a version bump fails here.
    data = (GOLDEN / "v1.zst").read_bytes()
    assert codec.to_document(GOLDEN_V1) == document_of(data)
    assert document_of(codec.encode(RedactedInteraction(GOLDEN_V1))) == document_of(data)
