"""plan(): framing, content-encoding negotiation and time scaling of a stored interaction."""

from __future__ import annotations

import gzip
import zlib

import pytest

from replay.models import Chunk, Interaction, Key, Provenance, Request, ResponseHead, header_value
from replay.player import Framing, Interruption, accepts, modified, paced, plan

REQ = Request("POST", "https", "api.openai.com", 443, "/v1/chat/completions", (), (), b"{}")
PROV = Provenance("2026-01-01T00:00:00Z", "openai", "m", None, 200, "0")


def interaction(
    headers: list[tuple[str, str]], chunks: list[tuple[float, bytes]], ttfb: float = 0.2
) -> Interaction:
    return Interaction(
        key=Key("default", "f" * 64, 0),
        fingerprint_version=1,
        ignore=(),
        request=REQ,
        response=ResponseHead(200, "OK", "HTTP/1.1", tuple(headers)),
        ttfb=ttfb,
        chunks=tuple(Chunk(o, d) for o, d in chunks),
        complete=True,
        provenance=PROV,
    )


SSE = [(0.0, b"data: 1\n\n"), (0.05, b"data: 2\n\n"), (0.1, b"data: [DONE]\n\n")]


def test_chunked_stream_keeps_every_chunk_and_header_order() -> None:
    headers = [
        ("Content-Type", "text/event-stream"),
        ("Transfer-Encoding", "chunked"),
        ("X-Request-Id", "req_1"),
    ]
    p = plan(interaction(headers, SSE), speed=1.0, accept_encoding="gzip")
    assert p.streamed and p.framing is Framing.CHUNKED
    assert p.headers == tuple(headers)
    assert [c.data for c in p.chunks] == [d for _, d in SSE]
    assert [c.offset for c in p.chunks] == [0.0, 0.05, 0.1]
    assert p.ttfb == 0.2


@pytest.mark.parametrize(
    ("speed", "offsets", "ttfb"), [(2.0, [0.0, 0.025, 0.05], 0.1), (0.0, [0.0, 0.0, 0.0], 0.0)]
)
def test_speed_scales_offsets_and_ttfb(speed: float, offsets: list[float], ttfb: float) -> None:
    p = plan(interaction([("transfer-encoding", "chunked")], SSE), speed, None)
    assert [c.offset for c in p.chunks] == offsets and p.ttfb == ttfb
    assert len(p.chunks) == 3  # boundaries survive at every speed


def test_stream_recorded_over_http2_gets_chunked_framing() -> None:
    p = plan(interaction([("content-type", "text/event-stream")], SSE), 1.0, None)
    assert p.framing is Framing.CHUNKED
    assert ("transfer-encoding", "chunked") in p.headers


def test_content_length_body_keeps_length_and_timing() -> None:
    body = b'{"a": 1}'
    p = plan(
        interaction(
            [("Content-Length", "8"), ("Content-Type", "application/json")],
            [(0.0, body[:4]), (0.01, body[4:])],
        ),
        1.0,
        None,
    )
    assert p.framing is Framing.LENGTH and p.streamed
    assert p.headers == (("Content-Length", "8"), ("Content-Type", "application/json"))


def test_single_chunk_without_framing_gets_a_content_length() -> None:
    p = plan(interaction([("content-type", "application/json")], [(0.0, b"{}")]), 1.0, None)
    assert not p.streamed and p.framing is Framing.LENGTH
    assert ("content-length", "2") in p.headers


def test_gzip_kept_when_client_accepts_it() -> None:
    raw = gzip.compress(b'{"ok": true}')
    h = [("content-encoding", "gzip"), ("content-length", str(len(raw)))]
    p = plan(interaction(h, [(0.0, raw)]), 1.0, "gzip, deflate")
    assert p.body == raw and ("content-encoding", "gzip") in p.headers


def test_gzip_stream_decoded_chunk_by_chunk_when_client_refuses_it() -> None:
    comp = zlib.compressobj(wbits=31)
    events = [b"data: one\n\n", b"data: two\n\n", b"data: three\n\n"]
    pieces = [comp.compress(e) + comp.flush(zlib.Z_SYNC_FLUSH) for e in events]
    pieces[-1] += comp.flush()
    h = [
        ("content-type", "text/event-stream"),
        ("content-encoding", "gzip"),
        ("transfer-encoding", "chunked"),
    ]
    p = plan(interaction(h, [(i * 0.01, c) for i, c in enumerate(pieces)]), 1.0, "identity")
    assert [c.data for c in p.chunks] == events
    assert all(k.lower() != "content-encoding" for k, _ in p.headers)


def test_decoded_body_fixes_content_length() -> None:
    raw = gzip.compress(b"x" * 1000)
    h = [("content-encoding", "gzip"), ("content-length", str(len(raw)))]
    p = plan(interaction(h, [(0.0, raw)]), 1.0, None)
    assert p.body == b"x" * 1000 and ("content-length", "1000") in p.headers


def test_undecodable_body_is_sent_as_recorded() -> None:
    h = [("content-encoding", "gzip"), ("content-length", "4")]
    p = plan(interaction(h, [(0.0, b"nope")]), 1.0, None)
    assert p.body == b"nope" and ("content-encoding", "gzip") in p.headers


@pytest.mark.parametrize(
    ("header", "coding", "expected"),
    [
        ("gzip, deflate", "gzip", True),
        ("gzip;q=0, br", "gzip", False),
        ("br", "gzip", False),
        ("*", "zstd", True),
        ("*;q=0", "zstd", False),
        (None, "gzip", False),
        (None, "identity", True),
        ("GZIP", "gzip", True),
    ],
)
def test_accepts(header: str | None, coding: str, expected: bool) -> None:
    assert accepts(header, coding) is expected


def test_reason_phrase_is_kept_and_made_up_for_http2_recordings() -> None:
    blank = interaction([("content-length", "2")], [(0.0, b"{}")])
    assert plan(blank, 1.0, None).reason == "OK"  # the fixture's recorded reason
    h1_empty = Interaction(
        **{
            **{f: getattr(blank, f) for f in blank.__slots__},
            "response": ResponseHead(200, "", "HTTP/1.1", ()),
        }
    )
    assert plan(h1_empty, 1.0, None).reason == ""
    h2 = Interaction(
        **{
            **{f: getattr(blank, f) for f in blank.__slots__},
            "response": ResponseHead(429, "", "HTTP/2.0", ()),
        }
    )
    assert plan(h2, 1.0, None).reason == "Too Many Requests"


def test_planner_memoises_per_interaction_and_accept_encoding() -> None:
    from replay.player import Planner

    planner = Planner(speed=2.0, size=2)
    a = interaction([("content-type", "text/event-stream")], SSE)
    b = interaction([("content-type", "text/event-stream")], SSE[:2])
    first = planner(a, "gzip")
    assert planner(a, "gzip") is first
    assert planner(a, None) is not first and planner(a, None) == first
    assert first.chunks[1].offset == 0.025  # planned at the planner's speed
    planner(b, None)  # evicts (a, "gzip"), the least recently used
    assert planner(a, "gzip") is not first


def test_connection_headers_of_the_recording_are_not_replayed() -> None:
    h = [("Connection", "close"), ("Keep-Alive", "timeout=5"), ("content-type", "a/b")]
    p = plan(interaction(h, [(0.0, b"{}")]), 1.0, None)
    assert [k for k, _ in p.headers] == ["content-type", "content-length"]


def test_body_less_answers_keep_correct_lengths() -> None:
    head_answer = interaction([("content-length", "42")], [])
    assert ("content-length", "42") in plan(head_answer, 1.0, None).headers  # HEAD
    no_content = Interaction(
        **{
            **{f: getattr(head_answer, f) for f in head_answer.__slots__},
            "response": ResponseHead(204, "No Content", "HTTP/1.1", ()),
        }
    )
    assert all(k != "content-length" for k, _ in plan(no_content, 1.0, None).headers)
    empty_gzip = gzip.compress(b"")
    h = [("content-encoding", "gzip"), ("content-length", str(len(empty_gzip)))]
    decoded = plan(interaction(h, [(0.0, empty_gzip)]), 1.0, None)
    assert decoded.body == b"" and ("content-length", "0") in decoded.headers


def test_paced_stream_sends_each_frame_as_a_chunk_at_scaled_gaps() -> None:
    frames = (b"data: a\n\n", b"", b"data: b\n\n", b"data: [DONE]\n\n")
    headers = (("content-type", "text/event-stream"), ("content-length", "9"))
    p = paced(200, headers, frames, True, ttfb=0.04, gap=0.01, speed=2.0)
    assert p.framing is Framing.CHUNKED and p.streamed
    assert [c.data for c in p.chunks] == [f for f in frames if f]
    assert [c.offset for c in p.chunks] == [0.0, 0.005, 0.01]  # empty frame dropped
    assert p.ttfb == 0.02 and p.reason == "OK"
    assert header_value(p.headers, "transfer-encoding") == "chunked"
    assert header_value(p.headers, "content-length") is None


def test_paced_at_speed_zero_has_no_delays() -> None:
    p = paced(200, (), (b"a", b"b"), True, ttfb=0.04, gap=0.01, speed=0.0)
    assert p.ttfb == 0.0 and all(c.offset == 0.0 for c in p.chunks)


def test_paced_non_stream_is_one_body_with_a_length() -> None:
    p = paced(429, (("retry-after", "1"),), (b'{"e":', b"1}"), False, 0.03, 0.01, 1.0)
    assert not p.streamed and p.framing is Framing.LENGTH
    assert p.body == b'{"e":1}' and p.status == 429 and p.reason == "Too Many Requests"
    assert header_value(p.headers, "content-length") == "7"
    single = paced(200, (), (b"only",), True, 0.0, 0.01, 1.0)
    assert not single.streamed and header_value(single.headers, "content-length") == "4"


def test_modified_sets_latency_and_fault_unscaled() -> None:
    p = paced(200, (), (b"a", b"b", b"c"), True, ttfb=0.04, gap=0.01, speed=4.0)
    m = modified(p, ttfb=0.5, gap=0.2, interruption=Interruption(after=1))
    assert m.ttfb == 0.5 and [c.offset for c in m.chunks] == [0.0, 0.2, 0.4]
    assert m.interruption == Interruption(after=1) and m.body == p.body
    unchanged = modified(p)
    assert unchanged == p
    one = paced(200, (), (b"x",), False, 0.0, 0.0, 1.0)
    assert not one.streamed and modified(one, interruption=Interruption(after=0)).streamed
