"""stream_end: the end of an answer as each provider's protocol marks it."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from replay.stream_end import body_ended

SSE = "text/event-stream"


def sse(*events: str) -> bytes:
    return "".join(f"{e}\n\n" for e in events).encode()


@pytest.mark.parametrize(
    ("body", "ended"),
    [
        (sse('data: {"choices":[{"delta":{}}]}', "data: [DONE]"), True),
        (sse('data: {"choices":[{"delta":{}}]}'), False),
        (b'data: {"x":1}\n\ndata: [DONE]', False),  # the closing blank line never came
        (sse('event: message_delta\ndata: {"type":"message_delta"}'), False),
        (sse('event: message_stop\ndata: {"type":"message_stop"}'), True),
        (sse('event: error\ndata: {"type":"error","error":{}}'), True),
        (sse('data: {"type":"message_stop"}'), True),  # no event: line, the type says it
        (sse('event: response.output_text.delta\ndata: {"type":"x"}'), False),
        (sse('event: response.completed\ndata: {"type":"response.completed"}'), True),
        (sse('event: response.incomplete\ndata: {"type":"response.incomplete"}'), True),
        (sse('data: {"candidates":[{"content":{}}]}'), False),
        (sse('data: {"candidates":[{"content":{},"finishReason":"STOP"}]}'), True),
        (b"data: [DONE]\r\n\r\n", True),
        (b"", False),
    ],
)
def test_sse(body: bytes, ended: bool) -> None:
    assert body_ended(SSE, None, None, body) is ended


def test_gzip_sse_is_judged_decoded_even_without_the_gzip_trailer() -> None:
    compressor = zlib.compressobj(wbits=31)
    body = compressor.compress(sse("data: [DONE]")) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert body_ended(SSE, "gzip", None, body)
    assert not body_ended(SSE, "gzip", None, body[:5])
    assert not body_ended(SSE, "unknown-coding", None, body)


def test_ndjson() -> None:
    lines = [{"message": {"content": "hi"}, "done": False}, {"done": True, "eval_count": 3}]
    whole = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    assert body_ended("application/x-ndjson", None, None, whole)
    assert not body_ended("application/x-ndjson", None, None, whole[:-1])
    assert not body_ended("application/x-ndjson", None, None, whole.split(b"\n")[0] + b"\n")


def test_json_and_other_bodies() -> None:
    assert body_ended("application/json", None, None, b'[{"candidates": []}]')
    assert not body_ended("application/json", None, None, b'[{"candidates": []}')
    assert body_ended("application/json", "gzip", None, gzip.compress(b'{"a": 1}'))
    assert not body_ended("application/octet-stream", None, None, b"\x00\x01")


def test_content_length_decides_when_there_is_one() -> None:
    assert body_ended(SSE, None, 5, b"12345")
    assert not body_ended(SSE, None, 6, b"data: [DONE]\n\n"[:5])
