"""Owns the fake provider upstream: a hypercorn TLS server (h2 + http/1.1) on 127.0.0.1.

It answers OpenAI chat completions, Anthropic messages and Gemini generateContent /
streamGenerateContent in the shapes the official SDKs parse, records every request it got, and
takes per-request knobs from ``x-fake-*`` request headers (see :class:`Knobs`). Responses are a
pure function of (path, body, knobs, n), where n counts earlier requests with the same (path,
body), whatever their headers (so a repeated request gets ``#0``, ``#1``, … in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import re
import socket
import threading
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, cast
from urllib.parse import parse_qs

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app

from support.certs import TestCerts

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CREATED = 1767225600
"""The fixed ``created`` timestamp of every OpenAI object."""
DEFAULT_GAP_MS = 5.0
SECRET_RESPONSE_HEADERS: dict[str, str] = {
    "openai-organization": "org-secret123",
    "anthropic-organization-id": "org-secret456",
    "set-cookie": "__cf_bm=abc",
}
"""Account-identifying response headers the fake sends; the proxy must redact them on disk."""

_log = logging.getLogger("fake_upstream")
_SSE_TYPE = ("content-type", "text/event-stream; charset=utf-8")
_GEMINI_PATH = re.compile(r"^/(v1|v1beta)/models/([^/:]+):(generateContent|streamGenerateContent)$")


@dataclass(frozen=True)
class SeenRequest:
    """One request as the fake upstream received it."""

    method: str
    host: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    http_version: str
    """ASGI spelling: ``"1.1"`` or ``"2"``."""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k == wanted), None)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Knobs:
    """Per-request behaviour, read from request headers.

    - ``x-fake-gap-ms: F``: sleep between SSE events (default 5 ms).
    - ``x-fake-chunks: N``: number of content chunks in a stream (default: one per word).
    - ``x-fake-gzip: 1``: gzip the body if ``accept-encoding`` allows it (SSE: sync-flushed
      per event, so the stream stays incremental).
    - ``x-fake-cut-after: K``: abort the connection after K SSE events (K bytes of a plain body).
    - ``x-fake-status: S``: answer status S with the provider's error body instead of a result.
    - ``x-fake-ttfb-ms: F``: sleep before sending the response head.
    - ``x-fake-tail-ms: F``: sleep after the last event before ending the body (a client
      that hangs up on the protocol's end then leaves before the transport's end).
    """

    gap_s: float = DEFAULT_GAP_MS / 1000
    chunks: int | None = None
    gzip: bool = False
    cut_after: int | None = None
    status: int | None = None
    ttfb_s: float = 0.0
    tail_s: float = 0.0

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Knobs:
        """Parse the knobs; raises ValueError on a malformed value."""

        def num(name: str) -> float | None:
            raw = headers.get(name)
            if raw is None:
                return None
            value = float(raw)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")
            return value

        gap = num("x-fake-gap-ms")
        chunks = num("x-fake-chunks")
        cut = num("x-fake-cut-after")
        status = num("x-fake-status")
        ttfb = num("x-fake-ttfb-ms")
        tail = num("x-fake-tail-ms")
        if chunks is not None and chunks < 1:
            raise ValueError("x-fake-chunks must be >= 1")
        if status is not None and not 400 <= status <= 599:
            raise ValueError("x-fake-status must be 400..599")
        return cls(
            gap_s=DEFAULT_GAP_MS / 1000 if gap is None else gap / 1000,
            chunks=None if chunks is None else int(chunks),
            gzip=headers.get("x-fake-gzip") == "1" and _accepts_gzip(headers),
            cut_after=None if cut is None else int(cut),
            status=None if status is None else int(status),
            ttfb_s=0.0 if ttfb is None else ttfb / 1000,
            tail_s=0.0 if tail is None else tail / 1000,
        )


@dataclass
class Reply:
    """A response before transport knobs (gzip, pacing, cut) are applied."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    events: list[bytes] | None = None
    """SSE frames; each one is sent as its own ASGI body message."""


def echo_text(last_user: str, n: int) -> str:
    """The reply text for a prompt: ``"echo: <last user message> #<n>"``."""
    return f"echo: {last_user} #{n}"


def content_pieces(text: str, chunks: int | None = None) -> list[str]:
    """Split ``text`` into stream pieces: one word each (with its leading space), or exactly
    ``chunks`` pieces (the tail merged into the last one, or padded with ``" ."``)."""
    words = text.split(" ")
    pieces = [words[0], *(" " + w for w in words[1:])]
    if chunks is None:
        return pieces
    if len(pieces) > chunks:
        return [*pieces[: chunks - 1], "".join(pieces[chunks - 1 :])]
    return pieces + [" ."] * (chunks - len(pieces))


def _accepts_gzip(headers: Mapping[str, str]) -> bool:
    for item in headers.get("accept-encoding", "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() not in ("gzip", "*"):
            continue
        q = params.strip()
        if q.startswith("q="):
            with contextlib.suppress(ValueError):
                return float(q[2:]) > 0
        return True
    return False


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _text_of(content: Any) -> str:
    """Text of an OpenAI/Anthropic message content (a string or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def _last_user(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _text_of(msg.get("content"))
    return ""


def _gemini_last_user(contents: Any) -> str:
    if not isinstance(contents, list):
        return ""
    for item in reversed(contents):
        if isinstance(item, dict) and item.get("role", "user") == "user":
            return _text_of(item.get("parts"))
    return ""


def _words(text: str) -> int:
    return len(text.split())


# ---------------------------------------------------------------- provider shapes


def _openai_error(status: int, message: str, code: str | None = None) -> Reply:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Reply(status, [("content-type", "application/json")], _dumps(body))


def _openai_chat(req: Any, n: int, digest: str, knobs: Knobs) -> Reply:
    headers = [
        ("x-request-id", f"req_{digest[:32]}"),
        ("openai-organization", SECRET_RESPONSE_HEADERS["openai-organization"]),
        ("openai-processing-ms", "7"),
        ("set-cookie", SECRET_RESPONSE_HEADERS["set-cookie"]),
    ]
    if knobs.status is not None:
        reply = _openai_error(knobs.status, f"fake status {knobs.status}", "fake_status")
        reply.headers[1:1] = headers
        return reply
    model = str(req.get("model", "gpt-4o-mini"))
    text = echo_text(_last_user(req.get("messages")), n)
    cid = f"chatcmpl-{digest[:29]}"
    prompt_tokens = sum(_words(_text_of(m.get("content"))) for m in req.get("messages") or [])
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": _words(text),
        "total_tokens": prompt_tokens + _words(text),
    }
    if not req.get("stream"):
        body = {
            "id": cid,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": usage,
            "system_fingerprint": "fp_fake",
        }
        return Reply(200, [("content-type", "application/json"), *headers], _dumps(body))

    include_usage = bool((req.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            obj["usage"] = None
        return b"data: " + _dumps(obj) + b"\n\n"

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": p}) for p in content_pieces(text, knobs.chunks)]
    events.append(chunk({}, "stop"))
    if include_usage:
        last = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        events.append(b"data: " + _dumps(last) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return Reply(200, [_SSE_TYPE, *headers], events=events)


def _ollama_chat(req: Any, n: int, knobs: Knobs) -> Reply:
    """Ollama's `/api/chat`: NDJSON, one object a line, streamed unless `stream` is false."""
    model = str(req.get("model", "llama3.2"))
    text = echo_text(_last_user(req.get("messages")), n)
    created = "2026-01-01T00:00:00Z"
    final = {
        "model": model,
        "created_at": created,
        "message": {"role": "assistant", "content": "" if req.get("stream", True) else text},
        "done": True,
        "done_reason": "stop",
        "eval_count": _words(text),
    }
    ndjson = ("content-type", "application/x-ndjson")
    if req.get("stream", True) is False:
        return Reply(200, [("content-type", "application/json")], _dumps(final))
    lines = [
        _dumps(
            {
                "model": model,
                "created_at": created,
                "message": {"role": "assistant", "content": piece},
                "done": False,
            }
        )
        + b"\n"
        for piece in content_pieces(text, knobs.chunks)
    ]
    return Reply(200, [ndjson], events=[*lines, _dumps(final) + b"\n"])


def _anthropic_error(status: int, message: str, request_id: str) -> Reply:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    return Reply(status, [("content-type", "application/json")], _dumps(body))


def _anthropic_messages(req: Any, n: int, digest: str, knobs: Knobs) -> Reply:
    request_id = f"req_011CFake{digest[:20]}"
    headers = [
        ("request-id", request_id),
        ("anthropic-organization-id", SECRET_RESPONSE_HEADERS["anthropic-organization-id"]),
        ("set-cookie", SECRET_RESPONSE_HEADERS["set-cookie"]),
    ]
    if knobs.status is not None:
        reply = _anthropic_error(knobs.status, f"fake status {knobs.status}", request_id)
        reply.headers[1:1] = headers
        return reply
    model = str(req.get("model", "claude-sonnet-4-5"))
    text = echo_text(_last_user(req.get("messages")), n)
    mid = f"msg_fake{digest[:20]}"
    input_tokens = sum(_words(_text_of(m.get("content"))) for m in req.get("messages") or [])
    if not req.get("stream"):
        body = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": _words(text)},
        }
        return Reply(200, [("content-type", "application/json"), *headers], _dumps(body))

    def event(name: str, data: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + _dumps({"type": name, **data}) + b"\n\n"

    start: dict[str, Any] = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1},
    }
    events = [
        event("message_start", {"message": start}),
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        event("ping", {}),
    ]
    events += [
        event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": p}})
        for p in content_pieces(text, knobs.chunks)
    ]
    events += [
        event("content_block_stop", {"index": 0}),
        event(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": _words(text)},
            },
        ),
        event("message_stop", {}),
    ]
    return Reply(200, [_SSE_TYPE, *headers], events=events)


def _gemini_error(status: int, message: str) -> Reply:
    kind = {
        400: "INVALID_ARGUMENT",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    }
    body = {"error": {"code": status, "message": message, "status": kind.get(status, "INTERNAL")}}
    return Reply(status, [("content-type", "application/json; charset=UTF-8")], _dumps(body))


def _gemini_generate(
    req: Any, n: int, digest: str, knobs: Knobs, model: str, stream: bool, alt: str | None
) -> Reply:
    if knobs.status is not None:
        return _gemini_error(knobs.status, f"fake status {knobs.status}")
    text = echo_text(_gemini_last_user(req.get("contents")), n)
    prompt_tokens = _words(_gemini_last_user(req.get("contents")))

    def response(piece: str, done: bool, so_far: int) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": piece}]}}
        if done:
            candidate["finishReason"] = "STOP"
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": so_far,
                "totalTokenCount": prompt_tokens + so_far,
            },
            "modelVersion": model,
            "responseId": f"fake{digest[:20]}",
        }

    json_type = ("content-type", "application/json; charset=UTF-8")
    if not stream:
        return Reply(200, [json_type], _dumps(response(text, True, _words(text))))
    pieces = content_pieces(text, knobs.chunks)
    chunks = [
        response(p, i == len(pieces) - 1, _words("".join(pieces[: i + 1])))
        for i, p in enumerate(pieces)
    ]
    if alt != "sse":  # without alt=sse Gemini streams one JSON array
        return Reply(200, [json_type], _dumps(chunks))
    events = [b"data: " + _dumps(c) + b"\r\n\r\n" for c in chunks]
    return Reply(200, [("content-type", "text/event-stream")], events=events)


# ---------------------------------------------------------------- a changed API


@dataclass(frozen=True)
class ShapeChange:
    """The provider changed its API (for `replay drift`): ``rename`` renames keys in every JSON
    answer, event and NDJSON line; ``new_event`` sends an SSE event of a new type just before a
    stream's last event (with an ``event:`` line when the stream has them)."""

    rename: Mapping[str, str] = field(default_factory=dict)
    new_event: str | None = None

    def apply(self, reply: Reply) -> Reply:
        if reply.events is None:
            return Reply(reply.status, reply.headers, self._line(reply.body))
        events = [b"\n".join(self._line(line) for line in e.split(b"\n")) for e in reply.events]
        if self.new_event is not None and dict(reply.headers)["content-type"].startswith(
            "text/event-stream"
        ):
            data = _dumps({"type": self.new_event})
            named = events[0].startswith(b"event:")
            head = b"event: " + self.new_event.encode() + b"\n" if named else b""
            events.insert(len(events) - 1, head + b"data: " + data + b"\n\n")
        return Reply(reply.status, reply.headers, events=events)

    def _line(self, line: bytes) -> bytes:
        prefix = b"data: " if line.startswith(b"data: ") else b""
        text = line[len(prefix) :]
        cr = b"\r" if text.endswith(b"\r") else b""
        try:
            value = json.loads(text)
        except ValueError:
            return line
        return prefix + _dumps(self._renamed(value)) + cr

    def _renamed(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {self.rename.get(k, k): self._renamed(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._renamed(v) for v in value]
        return value


# ---------------------------------------------------------------- the ASGI app


@dataclass
class FakeProviderApp:
    """The ASGI application; ``record`` is called with every request before it is answered."""

    record: Callable[[SeenRequest], None]
    _seen: Counter[tuple[str, bytes]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    on_startup: Callable[[], None] | None = None
    shape: ShapeChange | None = None
    """When set, every answer is changed by it (see :class:`ShapeChange`)."""

    def reset_counters(self) -> None:
        """Forget how often each request was seen (``#n`` restarts at 0)."""
        with self._lock:
            self._seen.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = tuple(
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]
        )
        seen = SeenRequest(
            method=scope["method"],
            host=dict(headers).get("host", ""),
            path=scope["path"],
            query=scope["query_string"].decode("latin-1"),
            headers=headers,
            body=bytes(body),
            http_version=scope["http_version"],
        )
        self.record(seen)
        with self._lock:
            key = (seen.path, seen.body)
            n = self._seen[key]
            self._seen[key] += 1
        header_map = dict(headers)
        try:
            knobs = Knobs.from_headers(header_map)
        except ValueError as exc:
            await self._send(send, _openai_error(400, f"bad x-fake header: {exc}"), Knobs())
            return
        reply = self._route(seen, n, knobs)
        if self.shape is not None:
            reply = self.shape.apply(reply)
        await self._send(send, reply, knobs)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                if self.on_startup is not None:
                    self.on_startup()
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _route(self, req: SeenRequest, n: int, knobs: Knobs) -> Reply:
        digest = hashlib.sha256(
            req.path.encode() + b"\0" + req.body + b"\0" + str(n).encode()
        ).hexdigest()
        gemini = _GEMINI_PATH.match(req.path)
        known = req.path in ("/v1/chat/completions", "/v1/messages", "/api/chat")
        known = known or gemini is not None
        if req.method != "POST" or not known:
            return _openai_error(404, f"Invalid URL ({req.method} {req.path})")
        try:
            payload = json.loads(req.body or b"{}")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return _openai_error(400, "We could not parse the JSON body of your request.")
        if req.path == "/v1/chat/completions":
            return _openai_chat(payload, n, digest, knobs)
        if req.path == "/v1/messages":
            return _anthropic_messages(payload, n, digest, knobs)
        if req.path == "/api/chat":
            return _ollama_chat(payload, n, knobs)
        assert gemini is not None
        alt = parse_qs(req.query).get("alt", [None])[0]
        stream = gemini.group(3) == "streamGenerateContent"
        return _gemini_generate(payload, n, digest, knobs, gemini.group(2), stream, alt)

    async def _send(self, send: Send, reply: Reply, knobs: Knobs) -> None:
        if knobs.ttfb_s:
            await asyncio.sleep(knobs.ttfb_s)
        headers = list(reply.headers)
        compressor = zlib.compressobj(wbits=31) if knobs.gzip else None
        if compressor is not None:
            headers.append(("content-encoding", "gzip"))
            headers.append(("vary", "Accept-Encoding"))
        if reply.events is None:
            body = reply.body
            if compressor is not None:
                body = compressor.compress(body) + compressor.flush()
            headers.append(("content-length", str(len(body))))
            await send(
                {"type": "http.response.start", "status": reply.status, "headers": _encode(headers)}
            )
            if knobs.cut_after is not None:
                await send(
                    {
                        "type": "http.response.body",
                        "body": body[: knobs.cut_after],
                        "more_body": True,
                    }
                )
                return _cut(f"{knobs.cut_after} bytes")
            await send({"type": "http.response.body", "body": body})
            return
        await send(
            {"type": "http.response.start", "status": reply.status, "headers": _encode(headers)}
        )
        for i, frame in enumerate(reply.events):
            if knobs.cut_after is not None and i >= knobs.cut_after:
                return _cut(f"{knobs.cut_after} events")
            if i and knobs.gap_s:
                await asyncio.sleep(knobs.gap_s)
            data = frame
            if compressor is not None:
                data = compressor.compress(frame) + compressor.flush(zlib.Z_SYNC_FLUSH)
            await send({"type": "http.response.body", "body": data, "more_body": True})
        if knobs.cut_after is not None:
            return _cut(f"all {len(reply.events)} events")
        if knobs.tail_s:
            await asyncio.sleep(knobs.tail_s)
        tail = compressor.flush() if compressor is not None else b""
        await send({"type": "http.response.body", "body": tail, "more_body": False})


def _cut(what: str) -> None:
    """Abort the response: an ASGI app that returns before its last body message makes hypercorn
    close the HTTP/1.1 connection mid-body (and, with the patch below, reset an h2 stream)."""
    _log.info("fake upstream: cutting the response after %s", what)


def _encode(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


# ---------------------------------------------------------------- hypercorn h2 abort


def _install_h2_abort_reset() -> None:
    """Make hypercorn reset an HTTP/2 stream whose app ended mid-body.

    Over HTTP/1.1 hypercorn closes the connection when an app returns (or raises) mid-body,
    which is the cut we want. Over HTTP/2 it just forgets the stream (no END_STREAM, no RST), so the
    peer would wait forever. This wraps ``H2Protocol.stream_send`` (idempotent, test-process only)
    to send RST_STREAM(INTERNAL_ERROR) when a stream is closed before its body was completed.
    """
    import h2.errors
    import h2.exceptions
    from hypercorn.protocol.events import StreamClosed
    from hypercorn.protocol.h2 import H2Protocol

    if getattr(H2Protocol, "_replay_abort_reset", False):
        return
    original = H2Protocol.stream_send

    async def stream_send(self: H2Protocol, event: Any) -> None:
        if isinstance(event, StreamClosed):
            buffer = self.stream_buffers.get(event.stream_id)
            if buffer is not None and not buffer._complete:
                with contextlib.suppress(h2.exceptions.ProtocolError, KeyError):
                    code = h2.errors.ErrorCodes.INTERNAL_ERROR
                    self.connection.reset_stream(event.stream_id, code)
                    await self._flush()
                await buffer.close()
                self.stream_buffers.pop(event.stream_id, None)
                with contextlib.suppress(Exception):
                    self.priority.remove_stream(event.stream_id)
        await original(self, event)

    H2Protocol.stream_send = stream_send  # type: ignore[method-assign]
    H2Protocol._replay_abort_reset = True  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the server


def _listener() -> socket.socket:
    """A non-blocking listening socket on 127.0.0.1, port chosen by the OS."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)  # connections queue up even before hypercorn accepts
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class FakeUpstream:
    """The fake provider upstream on ``127.0.0.1:<OS port>``, served from a background thread.

    ``with FakeUpstream(certs) as up: ...`` or ``start()`` / ``stop()``. ``requests`` lists what it
    received; ``pin`` is the ``host:port`` to give ``pin_upstream``.
    """

    def __init__(self, certs: TestCerts, *, graceful_timeout: float = 1.0) -> None:
        self.certs = certs
        self.graceful_timeout = graceful_timeout
        self.port = 0
        self.plain_port = 0
        """A second, plain-HTTP listener (same app), for traffic that reaches the proxy
        through HTTP_PROXY (self-hosted servers)."""
        self._lock = threading.Lock()
        self._requests: list[SeenRequest] = []
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.app = FakeProviderApp(record=self._record, on_startup=self._ready.set)

    @property
    def pin(self) -> str:
        """``"127.0.0.1:PORT"``, the value for ``--set pin_upstream=…``."""
        return f"127.0.0.1:{self.port}"

    @property
    def shape(self) -> ShapeChange | None:
        """The change applied to every answer from now on (None: the API as it was)."""
        return self.app.shape

    @shape.setter
    def shape(self, change: ShapeChange | None) -> None:
        self.app.shape = change

    @property
    def requests(self) -> list[SeenRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        """Forget recorded requests and the per-request ``#n`` counters."""
        with self._lock:
            self._requests.clear()
        self.app.reset_counters()

    def _record(self, request: SeenRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def start(self, timeout: float = 10.0) -> Self:
        """Bind, start serving, and return once the app has started (bounded by ``timeout``)."""
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        config = Config()
        config.certfile = str(self.certs.leaf_cert)
        config.keyfile = str(self.certs.leaf_key)
        config.alpn_protocols = ["h2", "http/1.1"]
        config.graceful_timeout = self.graceful_timeout
        config.keep_alive_timeout = 5.0
        config.accesslog = None
        config.errorlog = _log  # pytest captures it
        config.create_ssl_context()  # fail here, in the caller, on a bad cert or key
        _install_h2_abort_reset()
        sock, plain = _listener(), _listener()
        self.port, self.plain_port = sock.getsockname()[1], plain.getsockname()[1]
        self._thread = threading.Thread(
            target=self._run,
            args=(config, sock, plain),
            name=f"fake-upstream-{self.port}",
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise RuntimeError(f"fake upstream did not start: {self._error!r}")
        return self

    def _run(self, config: Config, sock: socket.socket, plain: socket.socket) -> None:
        try:
            with asyncio.Runner() as runner:
                runner.run(self._serve(config, sock, plain))
        except BaseException as exc:  # reported by start() / stop()
            self._error = exc
        finally:
            sock.close()
            plain.close()
            self._ready.set()

    async def _serve(self, config: Config, sock: socket.socket, plain: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        app = wrap_app(cast(Any, self.app), config.wsgi_max_body_size, "asgi")
        sockets = Sockets([sock], [plain], [])
        await worker_serve(app, config, sockets=sockets, shutdown_trigger=self._shutdown.wait)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and join the thread (graceful, then cancelling what is left)."""
        thread = self._thread
        if thread is None:
            return
        loop, shutdown = self._loop, self._shutdown
        if loop is not None and shutdown is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(shutdown.set)
        thread.join(self.graceful_timeout + 2.0)
        if thread.is_alive() and loop is not None:

            def cancel_all() -> None:
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(cancel_all)
            thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError("fake upstream thread did not stop")
        self._thread = None

    def __enter__(self) -> Self:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
