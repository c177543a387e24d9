"""Conversions between mitmproxy flows and replay's plain values.

Owns reading a `Request` and a `ResponseHead` off a flow, making mitmproxy responses from a
playback or an error, the `x-replay*` headers, and re-pointing a flow at the chunk server
and back. The only module besides `addon.py` that touches mitmproxy objects.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import parse_qsl

from mitmproxy import http

from replay.models import Outcome, Request, ResponseHead
from replay.player import Playback

REPLAY_HEADER = "x-replay"
FINGERPRINT_HEADER = "x-replay-fingerprint"
CASSETTE_HEADER = "x-replay-cassette"


def request_from_flow(flow: http.HTTPFlow) -> Request:
    """The request as the client meant it (in reverse mode, toward the upstream host)."""
    r = flow.request
    path, _, query = r.path.partition("?")
    return Request(
        method=r.method,
        scheme=r.scheme,
        host=r.host,
        port=r.port,
        path=path,
        # What r.query and r.headers give, without building their multidict views.
        query=tuple(parse_qsl(query.partition("#")[0], True, errors="surrogateescape")),
        headers=tuple((_text(k), _text(v)) for k, v in r.headers.fields),
        body=r.raw_content or b"",
    )


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def _raw(value: str) -> bytes:
    """The bytes a header had on the wire (`_text`'s inverse; mitmproxy decodes alike)."""
    return value.encode("utf-8", "surrogateescape")


def head_from_response(response: http.Response) -> ResponseHead:
    """Status line and headers as received, before replay adds its own headers."""
    return ResponseHead(
        status=response.status_code,
        reason=response.reason,
        http_version=response.http_version,
        headers=tuple(response.headers.items(multi=True)),
    )


def mark(response: http.Response, outcome: Outcome, fingerprint: str | None) -> None:
    """Add `x-replay` and `x-replay-fingerprint` to a response the addon handled."""
    response.headers[REPLAY_HEADER] = outcome.value
    if fingerprint:
        response.headers[FINGERPRINT_HEADER] = fingerprint


def inline_response(playback: Playback, http_version: str) -> http.Response:
    """A response set from the request hook: sent in one piece by mitmproxy."""
    now = time.time()
    return http.Response(
        http_version=http_version.encode(),
        status_code=playback.status,
        reason=playback.reason.encode("latin-1", "replace"),
        headers=http.Headers([(_raw(k), _raw(v)) for k, v in playback.headers]),
        content=playback.body,
        trailers=None,
        timestamp_start=now,
        timestamp_end=now,
    )


class InlineResponses:
    """Hits answered inline (`x-replay: hit` and the fingerprint already marked), fast for
    playbacks served before.

    mitmproxy's Response constructor type-checks every field; a hit served again is a copy
    of the first response made for its playback (its own data and header list, fresh
    timestamps). Keyed by playback object (`player.Planner` hands out the same one), the
    entry holding it; bounded (LRU).
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._memo: OrderedDict[tuple[int, str, str], tuple[Playback, http.Response]] = (
            OrderedDict()
        )

    def __call__(self, playback: Playback, http_version: str, fingerprint: str) -> http.Response:
        key = (id(playback), http_version, fingerprint)
        entry = self._memo.get(key)
        if entry is None or entry[0] is not playback:
            prototype = inline_response(playback, http_version)
            mark(prototype, Outcome.HIT, fingerprint)
            self._memo[key] = (playback, prototype)
            if len(self._memo) > self._size:
                self._memo.popitem(last=False)
        else:
            self._memo.move_to_end(key)
            prototype = entry[1]
        response = copy.copy(prototype)
        response.data = copy.copy(prototype.data)
        response.data.headers = http.Headers(prototype.data.headers.fields)
        response.data.timestamp_start = response.data.timestamp_end = time.time()
        return response


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    host_header: str | None


def route_to_loopback(flow: http.HTTPFlow, port: int, job_header: str, job_id: str) -> Target:
    """Point the flow at the chunk server; returns the original target for `restore`."""
    r = flow.request
    original = Target(r.scheme, r.host, r.port, r.headers.get("host"))
    r.headers[job_header] = job_id
    r.scheme = "http"
    r.host = "127.0.0.1"
    r.port = port
    return original


def restore(flow: http.HTTPFlow, target: Target, job_header: str) -> None:
    """Put back what `route_to_loopback` changed, so logs and dumps show the real URL."""
    r = flow.request
    r.scheme, r.host, r.port = target.scheme, target.host, target.port
    if target.host_header is not None:
        r.headers["host"] = target.host_header
    r.headers.pop(job_header, None)
