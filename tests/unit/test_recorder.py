"""Recording: a pass-through tap that keeps every chunk with its offset."""

from __future__ import annotations

from replay.models import Chunk, ResponseHead
from replay.recorder import Recording


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_tap_returns_data_unchanged_and_keeps_offsets() -> None:
    clock = FakeClock()
    rec = Recording(clock=clock)
    clock.now = 100.25
    assert rec.tap(b"data: a\n\n") == b"data: a\n\n"
    clock.now = 100.5
    assert rec.tap(b"data: b\n\n") == b"data: b\n\n"
    assert not rec.complete
    assert rec.tap(b"") == b""
    assert rec.complete
    assert rec.chunks == (Chunk(0.25, b"data: a\n\n"), Chunk(0.5, b"data: b\n\n"))


def test_tap_copies_buffers_it_is_given() -> None:
    rec = Recording(clock=FakeClock())
    buf = bytearray(b"abc")
    rec.tap(bytes(buf))
    buf[:] = b"xyz"
    rec.tap(b"")
    assert rec.chunks[0].data == b"abc"


def test_aborted_recording_is_never_complete() -> None:
    rec = Recording(clock=FakeClock())
    rec.tap(b"part")
    rec.abort("client disconnected")
    rec.tap(b"more")
    rec.tap(b"")
    assert not rec.complete
    assert rec.abort_reason == "client disconnected"
    assert rec.chunks == (Chunk(0.0, b"part"),)


def test_stream_without_end_is_incomplete() -> None:
    rec = Recording(clock=FakeClock())
    rec.tap(b"x")
    assert not rec.complete


def sse_head(**extra: str) -> ResponseHead:
    headers = (("content-type", "text/event-stream; charset=utf-8"), *extra.items())
    return ResponseHead(200, "OK", "HTTP/1.1", headers)


def test_a_client_that_hangs_up_after_the_protocol_end_loses_nothing() -> None:
    rec = Recording(sse_head(), clock=FakeClock())
    rec.tap(b'data: {"choices":[]}\n\n')
    rec.tap(b"data: [DONE]\n\n")
    rec.abort("client disconnected")  # before the upstream's final chunk terminator
    assert rec.complete
    assert rec.abort_reason == "client disconnected"


def test_a_break_before_the_protocol_end_is_incomplete() -> None:
    rec = Recording(sse_head(), clock=FakeClock())
    rec.tap(b'data: {"choices":[]}\n\n')
    rec.abort("client disconnected")
    assert not rec.complete


def test_a_content_length_body_is_whole_when_every_byte_came() -> None:
    head = ResponseHead(200, "OK", "HTTP/1.1", (("content-length", "4"),))
    rec = Recording(head, clock=FakeClock())
    rec.tap(b"ab")
    rec.abort("gone")
    assert not rec.complete
    rec = Recording(head, clock=FakeClock())
    rec.tap(b"abcd")
    rec.abort("gone")
    assert rec.complete
