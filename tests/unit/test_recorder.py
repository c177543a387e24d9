"""Recording: a pass-through tap that keeps every chunk with its offset."""

from __future__ import annotations

from replay.models import Chunk
from replay.recorder import Recording


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_tap_returns_data_unchanged_and_keeps_offsets() -> None:
    clock = FakeClock()
    rec = Recording(clock)
    clock.now = 100.25
    assert rec.tap(b"data: a\n\n") == b"data: a\n\n"
    clock.now = 100.5
    assert rec.tap(b"data: b\n\n") == b"data: b\n\n"
    assert not rec.complete
    assert rec.tap(b"") == b""
    assert rec.complete
    assert rec.chunks == (Chunk(0.25, b"data: a\n\n"), Chunk(0.5, b"data: b\n\n"))


def test_tap_copies_buffers_it_is_given() -> None:
    rec = Recording(FakeClock())
    buf = bytearray(b"abc")
    rec.tap(bytes(buf))
    buf[:] = b"xyz"
    rec.tap(b"")
    assert rec.chunks[0].data == b"abc"


def test_aborted_recording_is_never_complete() -> None:
    rec = Recording(FakeClock())
    rec.tap(b"part")
    rec.abort("client disconnected")
    rec.tap(b"more")
    rec.tap(b"")
    assert not rec.complete
    assert rec.abort_reason == "client disconnected"
    assert rec.chunks == (Chunk(0.0, b"part"),)


def test_stream_without_end_is_incomplete() -> None:
    rec = Recording(FakeClock())
    rec.tap(b"x")
    assert not rec.complete
