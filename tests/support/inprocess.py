"""Serve the real SDKs in-process the way the proxy answers them, through their HTTP
client's mock transport (httpx2 for openai and anthropic, httpx for ollama and google-genai).

A `Harness` answers every request through the proxy's own path: a replay-mode `Engine`
(synthetic misses, speed 0) over an empty temporary store, `Engine.prepare` → `plan` →
`make`, so routing, provider shapes, framing (`paced`, at speed 0) and HEAD handling are the
engine's. Canned replies come from a rules file, as the proxy's do. A streamed answer
reaches the SDK as its chunks one by one, so the SDK parses them as separate reads, like
chunks off the wire. No sockets, no sleeps.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import httpx2

from replay.config import Settings
from replay.engine import Engine
from replay.models import Outcome, Request, without_headers
from replay.plan import Make
from replay.player import HOP_HEADERS, Framing, Playback
from replay.providers.base import Answer


def canned(text: str | None = None, *tool_calls: dict[str, Any]) -> str:
    """A rules file (JSON, which is YAML) whose one rule answers every request with this
    reply: a text, tool calls `{name, arguments}` (arguments left out: made up from the
    request's schema), or both; see docs/rules.md."""
    reply: dict[str, Any] = {}
    if text is not None:
        reply["text"] = text
    if tool_calls:
        reply["tool_calls"] = list(tool_calls)
    return json.dumps({"rules": [{"name": "canned", "reply": reply}]})


def as_answer(playback: Playback) -> Answer:
    """What the proxy would send, as the in-process transports take it: the chunks as
    frames, streamed when the playback is chunked; no framing headers."""
    headers = without_headers(playback.headers, HOP_HEADERS)
    frames = tuple(c.data for c in playback.chunks)
    return Answer(playback.status, headers, frames, stream=playback.framing is Framing.CHUNKED)


class Harness:
    """A mock-transport handler answering through the engine; keeps every request and
    answer (`seen`) and each answer's outcome (`outcomes`).

    `rules`: the text of a rules file (docs/rules.md), e.g. a canned `reply:`. `ignore`:
    `replay_ignore`; `"stream"` keys a stream and its non-stream twin alike, so that both
    get the same made-up answer. `options`: further `replay_*` options (`replay_synthetic_tools`).
    """

    def __init__(
        self,
        root: Path,
        rules: str | None = None,
        ignore: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        root.mkdir(parents=True)
        options: dict[str, Any] = {
            "replay_mode": "replay",
            "replay_miss": "synthetic",
            "replay_dir": str(root / "cassettes"),  # never written: nothing is recorded
            "replay_speed": "0",
            "replay_ignore": ignore,
            **(options or {}),
        }
        if rules is not None:
            path = root / "rules.yaml"
            path.write_text(rules)
            options["replay_rules"] = str(path)
        self.engine = Engine(Settings.from_options(options))
        self.seen: list[tuple[Request, Answer]] = []
        self.outcomes: list[Outcome] = []

    def close(self) -> None:
        self.engine.close()

    def answer(self, request: Request) -> Answer:
        engine = self.engine
        plan = engine.plan(*engine.prepare(request, engine.namespace(None)))
        if not isinstance(plan, Make):  # the store is empty: every request is made up
            raise AssertionError(f"{request.method} {request.path}: planned {plan!r}")
        made = engine.make(plan)
        self.outcomes.append(made.outcome)
        answer = as_answer(made.playback)
        self.seen.append((request, answer))
        if made.outcome is Outcome.MISS:
            raise AssertionError(
                f"no synthetic answer for {request.method} {request.path}: {answer.body!r}"
            )
        return answer

    def _request(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes
    ) -> Request:
        parts = urlsplit(url)
        return Request(
            method=method,
            scheme=parts.scheme,
            host=parts.hostname or "",
            port=parts.port or (443 if parts.scheme == "https" else 80),
            path=parts.path,
            query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
            headers=tuple(headers),
            body=body,
        )

    def httpx2_handler(self, request: httpx2.Request) -> httpx2.Response:
        answer = self.answer(
            self._request(
                request.method, str(request.url), list(request.headers.items()), request.read()
            )
        )
        if answer.stream:
            stream = _Frames2(answer.frames)
            return httpx2.Response(answer.status, headers=list(answer.headers), stream=stream)
        return httpx2.Response(answer.status, headers=list(answer.headers), content=answer.body)

    def httpx_handler(self, request: httpx.Request) -> httpx.Response:
        answer = self.answer(
            self._request(
                request.method, str(request.url), list(request.headers.items()), request.read()
            )
        )
        if answer.stream:
            stream = _Frames(answer.frames)
            return httpx.Response(answer.status, headers=list(answer.headers), stream=stream)
        return httpx.Response(answer.status, headers=list(answer.headers), content=answer.body)

    async def httpx2_async_handler(self, request: httpx2.Request) -> httpx2.Response:
        return self.httpx2_handler(request)

    async def httpx_async_handler(self, request: httpx.Request) -> httpx.Response:
        return self.httpx_handler(request)

    def httpx_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.httpx_handler)

    def httpx_async_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.httpx_async_handler)


class Harnesses:
    """Makes harnesses, each over its own empty store under `root`; closes them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[Harness] = []

    def __call__(
        self,
        rules: str | None = None,
        ignore: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Harness:
        harness = Harness(self.root / f"harness-{len(self.made)}", rules, ignore, options)
        self.made.append(harness)
        return harness

    def close(self) -> None:
        for harness in self.made:
            harness.close()


class _FrameIteration:
    """A streamed body: the frames one by one, sync or async."""

    def __init__(self, frames: tuple[bytes, ...]) -> None:
        self.frames = frames

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.frames)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for frame in self.frames:
            yield frame


class _Frames(_FrameIteration, httpx.SyncByteStream, httpx.AsyncByteStream):
    """For httpx."""


class _Frames2(_FrameIteration, httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """For httpx2."""


def http_client_for(sdk: ModuleType, harness: Harness, *, asynchronous: bool = False) -> Any:
    """The `http_client=` for a Stainless SDK module (openai, anthropic) of any generation:
    httpx2 for the current ones, httpx for openai 1.x and anthropic 0.x (`make compat`)."""
    base = sdk.DefaultAsyncHttpxClient if asynchronous else sdk.DefaultHttpxClient
    if any(cls.__module__.startswith("httpx2") for cls in base.__mro__):
        if asynchronous:
            return httpx2.AsyncClient(transport=httpx2.MockTransport(harness.httpx2_async_handler))
        return httpx2.Client(transport=httpx2.MockTransport(harness.httpx2_handler))
    if asynchronous:
        return httpx.AsyncClient(transport=harness.httpx_async_transport())
    return httpx.Client(transport=harness.httpx_transport())
