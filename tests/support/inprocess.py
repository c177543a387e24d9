"""Serve synthetic answers to the real SDKs in-process, through their HTTP client's mock
transport (httpx2 for openai and anthropic, httpx for ollama and google-genai).

`Responders` turns an SDK's request into a `replay.models.Request`, finds its route, calls the
responder and hands back the answer: a streamed answer as its frames one by one, so the SDK
parses them as separate reads, like chunks off the wire. `ViaEngine` answers the way the proxy
does instead (`Engine.prepare`, `plan`, `make`). No sockets, no sleeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import httpx2

from replay.engine import Engine
from replay.fingerprint import FingerprintPolicy, fingerprint
from replay.models import Outcome, Request, without_headers
from replay.plan import Make
from replay.player import HOP_HEADERS, Framing, Playback
from replay.providers import router
from replay.providers.base import Answer, BadCall, Call, Reply, Session


@dataclass
class Responders:
    """A mock-transport handler over the routes; records every request and answer."""

    reply: Reply | None = None
    session: Session = field(default_factory=Session)
    seen: list[tuple[Request, Answer]] = field(default_factory=list)
    fingerprint: str | None = "f" * 64
    """One fingerprint for every request, so that different requests (a stream and its
    non-stream twin) get the same made-up text; None: each request's own fingerprint, as
    the proxy computes it (stateful surfaces need distinct ids per request)."""
    occurrences: dict[str, int] = field(default_factory=dict)

    def answer(self, request: Request) -> Answer:
        found = router.find(request)
        if found is None:
            raise AssertionError(f"no route for {request.method} {request.path}")
        route, params = found
        if self.fingerprint is None:
            fp = fingerprint(request, FingerprintPolicy()).hex
            occurrence = self.occurrences.get(fp, 0)
            self.occurrences[fp] = occurrence + 1
        else:  # occurrences count identical requests
            fp = self.fingerprint
            occurrence = sum(1 for r, _ in self.seen if r == request)
        call = Call(request, fp, occurrence, self.reply, self.session, params)
        try:
            answer = route.respond(call)
        except BadCall as e:
            raise AssertionError(f"responder refused the SDK's request: {e}") from None
        self.seen.append((request, answer))
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

    def httpx2_client(self, **kwargs: Any) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self.httpx2_handler), **kwargs)

    def httpx2_async_client(self, **kwargs: Any) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            transport=httpx2.MockTransport(self.httpx2_async_handler), **kwargs
        )

    def httpx_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.httpx_handler)

    def httpx_async_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.httpx_async_handler)


@dataclass
class ViaEngine(Responders):
    """Answers through an engine as the proxy does (`prepare`, `plan`, `make`), and keeps
    each request's outcome."""

    engine: Engine | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def answer(self, request: Request) -> Answer:
        assert self.engine is not None
        plan = self.engine.plan(*self.engine.prepare(request, "default"))
        assert isinstance(plan, Make)
        made = self.engine.make(plan)
        self.outcomes.append(made.outcome)
        answer = as_answer(made.playback)
        self.seen.append((request, answer))
        return answer


def as_answer(playback: Playback) -> Answer:
    """What the proxy would send, as the in-process transports take it."""
    headers = without_headers(playback.headers, HOP_HEADERS)
    frames = tuple(c.data for c in playback.chunks)
    return Answer(playback.status, headers, frames, stream=playback.framing is Framing.CHUNKED)


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


def http_client_for(sdk: ModuleType, responders: Responders, *, asynchronous: bool = False) -> Any:
    """The `http_client=` for a Stainless SDK module (openai, anthropic) of any generation:
    httpx2 for the current ones, httpx for openai 1.x and anthropic 0.x (`make compat`)."""
    base = sdk.DefaultAsyncHttpxClient if asynchronous else sdk.DefaultHttpxClient
    if any(cls.__module__.startswith("httpx2") for cls in base.__mro__):
        if asynchronous:
            return responders.httpx2_async_client()
        return responders.httpx2_client()
    if asynchronous:
        return httpx.AsyncClient(transport=responders.httpx_async_transport())
    return httpx.Client(transport=responders.httpx_transport())
