"""Whether an answer's body was whole: the end as the provider's protocol marks it.

Owns `body_ended`: given a response's content type, content-encoding, content-length and the
body bytes that arrived, it says whether the answer was complete, even when the connection
closed before the transport's last framing bytes (an SDK hangs up as soon as it reads
`data: [DONE]`, often before the upstream's final chunk terminator reaches the proxy).

What counts as the end, per protocol (PROTOCOLS.md):
- a body with a `content-length`: all its bytes arrived;
- SSE (`text/event-stream`): the last whole event is OpenAI's `data: [DONE]`, Anthropic's
  `message_stop` or `error`, a Responses API `response.completed` / `.incomplete` /
  `.failed`, or a Gemini chunk whose candidates carry a `finishReason`;
- NDJSON (Ollama): the last whole line is an object with `"done": true` (or an `error`);
- any other body (a JSON answer sent chunked, Gemini's JSON array stream): it parses whole.

Pure: knows nothing of mitmproxy or the recorder that asks.
"""

from __future__ import annotations

import json
import re

from replay.canonical import incremental_decoder

_SSE_END_EVENTS = frozenset(
    {
        "message_stop",
        "error",
        "response.completed",
        "response.incomplete",
        "response.failed",
    }
)
_EVENT_BREAK = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_MAX_PARSE = 64 * 2**20
"""A body past this size is not parsed to find its end (it is judged by its framing)."""


def body_ended(
    content_type: str | None,
    content_encoding: str | None,
    content_length: int | None,
    body: bytes,
) -> bool:
    """Whether `body` (as received, still content-encoded) is a whole answer."""
    if content_length is not None:
        return len(body) >= content_length
    decoded = _decoded(body, content_encoding)
    if decoded is None or len(decoded) > _MAX_PARSE:
        return False
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind == "text/event-stream":
        return _sse_ended(decoded)
    if kind in ("application/x-ndjson", "application/jsonl", "application/json-lines"):
        return _ndjson_ended(decoded)
    return _json_whole(decoded)


def _decoded(body: bytes, content_encoding: str | None) -> bytes | None:
    """`body` with its content-codings undone as far as it goes (a stream cut mid-way
    still decodes up to the cut), or None when a coding is unknown or broken."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    data = body
    for coding in reversed(codings):
        if coding == "identity":
            continue
        decode = incremental_decoder(coding)
        if decode is None:
            return None
        try:
            data = decode(data)
        except Exception:
            return None
    return data


def _last_event(text: bytes) -> bytes | None:
    """The last whole SSE event (the body must end with the blank line that closes it)."""
    stripped = text.rstrip(b" \t")
    if not (stripped.endswith((b"\n\n", b"\r\n\r\n", b"\r\r"))):
        return None
    events = [e for e in _EVENT_BREAK.split(stripped) if e.strip()]
    return events[-1] if events else None


def _sse_ended(text: bytes) -> bool:
    event = _last_event(text)
    if event is None:
        return False
    name = None
    data: list[bytes] = []
    for line in event.splitlines():
        field, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if field == b"event":
            name = value.decode("utf-8", "replace").strip()
        elif field == b"data":
            data.append(value)
    if name in _SSE_END_EVENTS:
        return True
    payload = b"\n".join(data).strip()
    if payload == b"[DONE]":
        return True
    try:
        value = json.loads(payload)
    except ValueError:
        return False
    if not isinstance(value, dict):
        return False
    if value.get("type") in _SSE_END_EVENTS:
        return True
    return _gemini_final(value)


def _gemini_final(value: dict[str, object]) -> bool:
    candidates = value.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        return False
    return all(isinstance(c, dict) and c.get("finishReason") for c in candidates)


def _ndjson_ended(text: bytes) -> bool:
    if not text.endswith(b"\n"):
        return False
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return False
    try:
        value = json.loads(lines[-1])
    except ValueError:
        return False
    return isinstance(value, dict) and (value.get("done") is True or "error" in value)


def _json_whole(text: bytes) -> bool:
    if not text.strip():
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True
