"""Stream framing for synthetic answers: Server-Sent Events and NDJSON, as bytes.

Owns the byte layout of one frame. Does not own which events a provider sends, their order,
or pacing (responders and the chunk server decide those). The SDKs differ in what they
accept (PROTOCOLS.md §1.1, each verified against the real SDKs):

- openai chat completions and legacy completions: no `event:` line (openai-python <= 1.97
  silently loses the content of chunks behind one), end with `sse_done()`.
- openai Responses: the real API sends `event: <type>` and no `[DONE]`; the SDK dispatches on
  the JSON `type`, so send `event=` equal to it.
- anthropic: `event:` lines are required (frames without one are skipped: an empty stream, no
  error); never `[DONE]`.
- google-genai (`streamGenerateContent?alt=sse`): no `event:` line and no `[DONE]` (both raise
  `UnknownApiResponseError`), and exactly `data: ` with the space, which `sse_event` always
  writes.
- ollama native: not SSE but NDJSON, one object per `\\n`-terminated line, never a blank line
  (`json.loads("")` raises in the client); use `ndjson_line`.

JSON is compact (`,` and `:` separators), not ASCII-escaped, UTF-8 encoded; NaN and infinity
are refused because no JSON parser takes them.
"""

from __future__ import annotations

import json


def json_bytes(obj: object) -> bytes:
    """Compact UTF-8 JSON. A string holding a lone surrogate (a `"\\ud800"` escape in the
    request, echoed back) cannot be UTF-8: the whole document is then ASCII-escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def sse_event(data: object, event: str | None = None) -> bytes:
    """One SSE frame: `event: NAME\\n` if `event` is given, then `data: <json>\\n\\n`."""
    head = b""
    if event is not None:
        if not event or any(c in event for c in "\r\n"):
            raise ValueError(f"invalid SSE event name {event!r}")
        head = b"event: " + event.encode() + b"\n"
    return head + b"data: " + json_bytes(data) + b"\n\n"


def sse_done() -> bytes:
    """The OpenAI chat/completions terminator frame; never for anthropic or google-genai."""
    return b"data: [DONE]\n\n"


def ndjson_line(obj: object) -> bytes:
    """One NDJSON line (Ollama native streams): compact JSON and a single `\\n`."""
    return json_bytes(obj) + b"\n"
