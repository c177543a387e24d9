"""SSE and NDJSON frames, byte for byte (PROTOCOLS.md §1.1)."""

from __future__ import annotations

import json

import pytest

from replay.providers.sse import ndjson_line, sse_done, sse_event


def test_data_only_frame_is_compact_with_a_space_after_data() -> None:
    assert sse_event({"a": 1, "b": [1, 2]}) == b'data: {"a":1,"b":[1,2]}\n\n'


def test_event_line_precedes_data() -> None:
    frame = sse_event({"type": "message_stop"}, event="message_stop")
    assert frame == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def test_non_ascii_is_utf8_not_escaped() -> None:
    assert sse_event({"t": "Olá ✓"}) == 'data: {"t":"Olá ✓"}\n\n'.encode()


def test_newlines_in_strings_stay_escaped_inside_one_data_line() -> None:
    frame = sse_event({"t": "a\nb\r\n"})
    assert frame == b'data: {"t":"a\\nb\\r\\n"}\n\n'
    assert frame.count(b"\n") == 2


def test_done_frame() -> None:
    assert sse_done() == b"data: [DONE]\n\n"


def test_ndjson_line_is_one_line_and_never_blank() -> None:
    line = ndjson_line({"message": {"content": "hi"}, "done": False})
    assert line == b'{"message":{"content":"hi"},"done":false}\n'
    assert not line.endswith(b"\n\n")
    assert json.loads(line) == {"message": {"content": "hi"}, "done": False}


@pytest.mark.parametrize("name", ["", "a\nb", "a\rb"])
def test_invalid_event_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        sse_event({}, event=name)


def test_nan_is_refused() -> None:
    with pytest.raises(ValueError):
        sse_event({"x": float("nan")})
    with pytest.raises(ValueError):
        ndjson_line(float("inf"))
