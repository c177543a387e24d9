"""Turns a stored interaction into a playback: what to send, how it is framed, and when.

Owns `plan()`: header clean-up and framing, content-encoding negotiation against the
client's `accept-encoding` (a body is replayed as recorded when the client admits its
encoding, else decoded on the way out, chunk by chunk), and time scaling by `replay_speed`;
`paced()` for made-up answers, `modified()` for the rules' latency and faults, and
`Withheld`, which counts the chunks of a forwarded answer a fault cuts.
Knows nothing of sockets (the chunk server sends a playback) or of mitmproxy.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus

from replay.canonical import incremental_decoder
from replay.models import (
    Chunk,
    Headers,
    Interaction,
    ResponseHead,
    header_value,
    without_headers,
)

NO_BODY_STATUSES = frozenset({204, 304})
HOP_HEADERS = frozenset({"content-length", "transfer-encoding"})
"""Framing headers: replaced by the framing the playback is sent with."""
CONNECTION_HEADERS = frozenset({"connection", "keep-alive"})
"""Hop-by-hop: they described the recording client's connection, not this one's (a
`connection: close` answer to a client that asked for it would otherwise close every
replaying client's connection after one answer)."""


class Framing(StrEnum):
    """How a body is delimited toward the client."""

    LENGTH = "length"
    """`content-length`: the bytes and their timing are kept, the client's reads decide
    the boundaries."""
    CHUNKED = "chunked"
    """HTTP/1.1 chunked (HTTP/2 DATA frames): one chunk per recorded chunk."""


@dataclass(frozen=True, slots=True)
class Interruption:
    """A fault injected into a playback: after `after` body chunks, stop sending; then
    drop the connection at once (`stall` None and not `hold`), after `stall` seconds, or
    (`hold`) only when the client gives up. The stream never ends cleanly."""

    after: int
    stall: float | None = None
    hold: bool = False


@dataclass(frozen=True, slots=True)
class Playback:
    """A response ready to send: offsets already scaled by the replay speed."""

    status: int
    reason: str
    headers: Headers
    ttfb: float
    chunks: tuple[Chunk, ...]
    framing: Framing
    interruption: Interruption | None = None

    @property
    def streamed(self) -> bool:
        """Sent through the chunk server (several chunks, or a fault), rather than inline."""
        return len(self.chunks) > 1 or self.interruption is not None

    @property
    def body(self) -> bytes:
        return b"".join(c.data for c in self.chunks)


def accepts(accept_encoding: str | None, coding: str) -> bool:
    """Whether an `accept-encoding` value admits `coding` (q > 0, or `*`)."""
    if coding == "identity":
        return True
    if accept_encoding is None:
        return False
    star = False
    for item in accept_encoding.split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        params = params.strip().replace(" ", "")
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        name = name.strip().lower()
        if name == coding or (coding == "gzip" and name == "x-gzip"):
            return q > 0
        if name == "*":
            star = q > 0
    return star


def _decode_chunks(chunks: tuple[Chunk, ...], codings: list[str]) -> tuple[Chunk, ...] | None:
    """Chunks with their content-codings undone, empty pieces dropped; None if impossible."""
    decoders = [incremental_decoder(c) for c in reversed(codings)]
    if any(d is None for d in decoders):
        return None
    out: list[Chunk] = []
    try:
        for chunk in chunks:
            data = chunk.data
            for decode in decoders:
                assert decode is not None
                data = decode(data)
            if data:
                out.append(Chunk(chunk.offset, data))
    except Exception:
        return None
    return tuple(out)


def _scaled(value: float, speed: float) -> float:
    return 0.0 if speed == 0 else value / speed


def plan(interaction: Interaction, speed: float, accept_encoding: str | None) -> Playback:
    """The playback of `interaction` for a client that sent `accept_encoding`. An
    incomplete recording (replayed only when asked) ends with the connection dropped."""
    head = interaction.response
    headers = without_headers(head.headers, CONNECTION_HEADERS)
    chunks = interaction.chunks
    encoding = (header_value(headers, "content-encoding") or "").strip().lower()
    codings = [c.strip() for c in encoding.split(",") if c.strip() and c.strip() != "identity"]
    if codings and not all(accepts(accept_encoding, c) for c in codings):
        decoded = _decode_chunks(chunks, codings)
        if decoded is not None:
            chunks = decoded
            headers = without_headers(headers, frozenset({"content-encoding"}))
    scaled = tuple(Chunk(_scaled(c.offset, speed), c.data) for c in chunks)
    chunked = "chunked" in (header_value(headers, "transfer-encoding") or "").lower()
    length = header_value(headers, "content-length")
    total = sum(len(c.data) for c in scaled)
    if len(scaled) > 1 and (chunked or length is None):
        framing = Framing.CHUNKED
        headers = _with_framing(headers, ("transfer-encoding", "chunked"))
    elif chunked:
        framing = Framing.CHUNKED
    else:
        framing = Framing.LENGTH
        if head.status in NO_BODY_STATUSES or head.status < 200:
            pass  # no body, and no content-length allowed (RFC 9110)
        elif interaction.chunks or length is None:
            headers = _with_framing(headers, ("content-length", str(total)))
        # else: a body-less recording with a length (an answer to HEAD) keeps it

    playback = Playback(
        status=head.status,
        reason=_reason(head),
        headers=headers,
        ttfb=_scaled(interaction.ttfb, speed),
        chunks=scaled,
        framing=framing,
    )
    if not interaction.complete:  # replayed as it happened: the connection breaks
        return modified(playback, interruption=Interruption(len(scaled)))
    return playback


def _reason(head: ResponseHead) -> str:
    """The reason phrase an HTTP/1 client saw: HTTP/2 has none, mitmproxy makes one up."""
    if head.reason or not head.http_version.startswith(("HTTP/2", "HTTP/3")):
        return head.reason
    return _phrase(head.status)


def _with_framing(headers: Headers, framing: tuple[str, str]) -> Headers:
    """Headers with one framing header: the recorded one, its value fixed, kept in place."""
    name = framing[0]
    out: list[tuple[str, str]] = []
    placed = False
    for key, value in headers:
        lower = key.lower()
        if lower == name and not placed:
            out.append((key, framing[1]))
            placed = True
        elif lower not in HOP_HEADERS:
            out.append((key, value))
    if not placed:
        out.append(framing)
    return tuple(out)


class Planner:
    """`plan()` at one speed, memoised for interactions served again (tests repeat requests).

    Keyed by the interaction object (the store's cache hands out the same object for the
    same file) and the client's `accept-encoding`; the entry holds the interaction, so an
    id is never reused while its entry lives. Bounded (LRU).
    """

    def __init__(self, speed: float, size: int = 256) -> None:
        self.speed = speed
        self._size = size
        self._memo: OrderedDict[tuple[int, str | None], tuple[Interaction, Playback]] = (
            OrderedDict()
        )

    def __call__(self, interaction: Interaction, accept_encoding: str | None) -> Playback:
        key = (id(interaction), accept_encoding)
        entry = self._memo.get(key)
        if entry is not None and entry[0] is interaction:
            self._memo.move_to_end(key)
            return entry[1]
        playback = plan(interaction, self.speed, accept_encoding)
        self._memo[key] = (interaction, playback)
        if len(self._memo) > self._size:
            self._memo.popitem(last=False)
        return playback


def paced(
    status: int,
    headers: Headers,
    frames: tuple[bytes, ...],
    stream: bool,
    ttfb: float,
    gap: float,
    speed: float,
    omit_body: bool = False,
) -> Playback:
    """The playback of a made-up answer: a stream sends its frames `gap` seconds apart
    after `ttfb` (both divided by `speed`), chunked; anything else one body with a length.
    `headers` carry no framing. `omit_body` (an answer to HEAD): the headers, with the
    length the body would have had, and no body."""
    headers = without_headers(headers, HOP_HEADERS | CONNECTION_HEADERS)
    reason = _phrase(status)
    if omit_body:
        length = sum(map(len, frames))
        if status not in NO_BODY_STATUSES and status >= 200 and not stream:
            headers = (*headers, ("content-length", str(length)))
        return Playback(status, reason, headers, _scaled(ttfb, speed), (), Framing.LENGTH)
    if stream and len(frames) > 1:
        sent = [f for f in frames if f]
        chunks = tuple(Chunk(_scaled(i * gap, speed), f) for i, f in enumerate(sent))
        headers = (*headers, ("transfer-encoding", "chunked"))
        return Playback(status, reason, headers, _scaled(ttfb, speed), chunks, Framing.CHUNKED)
    body = b"".join(frames)
    if status not in NO_BODY_STATUSES and status >= 200:
        headers = (*headers, ("content-length", str(len(body))))
    chunks = (Chunk(0.0, body),) if body else ()
    return Playback(status, reason, headers, _scaled(ttfb, speed), chunks, Framing.LENGTH)


def modified(
    playback: Playback,
    ttfb: float | None = None,
    gap: float | None = None,
    interruption: Interruption | None = None,
) -> Playback:
    """`playback` with a rule's modifiers: a new time to first byte, chunks re-spaced
    `gap` seconds apart (a playback of one chunk has no gaps), a fault. Unscaled: a rule's
    latency is meant as written, whatever `replay_speed`."""
    chunks = playback.chunks
    if gap is not None:
        chunks = tuple(Chunk(i * gap, c.data) for i, c in enumerate(chunks))
    headers, framing = playback.headers, playback.framing
    if interruption is not None and framing is Framing.LENGTH and chunks:
        # A body with a content-length that is cut after its last chunk would look whole:
        # chunked framing without its last chunk shows the break in every case.
        headers, framing = _with_framing(headers, ("transfer-encoding", "chunked")), Framing.CHUNKED
    return Playback(
        playback.status,
        playback.reason,
        headers,
        playback.ttfb if ttfb is None else ttfb,
        chunks,
        framing,
        interruption if interruption is not None else playback.interruption,
    )


class Withheld:
    """A fault on a forwarded answer, counted as its chunks go by: a response-stream
    function that passes the first `after` chunks (through `inner`, the recording tap, or
    as they are) and withholds the rest from the client, whose connection is then dropped.
    The recording, if any, still sees every chunk."""

    def __init__(self, inner: object, after: int) -> None:
        self.inner = inner if callable(inner) else None
        self.left = after
        self.cut_at: float | None = time.monotonic() if after <= 0 else None
        """When the last chunk the client gets went by (monotonic)."""

    def __call__(self, data: bytes) -> bytes | list[bytes]:
        if self.inner is not None:
            data = self.inner(data)
        if not data:
            return data
        if self.left <= 0:
            return []  # not b"": an empty chunk would end a chunked body cleanly
        self.left -= 1
        if self.left == 0:
            self.cut_at = time.monotonic()
        return data


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
