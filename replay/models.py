"""Plain values that cross module lines: requests, responses, chunks, interactions.

Owns the shapes only (frozen, slotted dataclasses); no behaviour beyond small derived
properties. Knows nothing of mitmproxy, files or fingerprints' computation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple
from urllib.parse import urlencode

Headers = tuple[tuple[str, str], ...]
"""An ordered header list as (name, value) pairs, names in their original case."""

DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_NAMESPACE = "default"


class Outcome(StrEnum):
    """The value of the `x-replay` response header and of a report line's outcome."""

    HIT = "hit"
    RECORDED = "recorded"
    FORWARDED = "forwarded"
    SYNTHETIC = "synthetic"
    MISS = "miss"
    ERROR = "error"


def header_value(headers: Headers, name: str) -> str | None:
    """The first value of header `name` (case-insensitive), or None."""
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None


def without_headers(headers: Headers, names: set[str] | frozenset[str]) -> Headers:
    """`headers` minus every header whose lower-cased name is in `names`."""
    return tuple((k, v) for k, v in headers if k.lower() not in names)


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request as the client meant it (in reverse mode: toward the upstream)."""

    method: str
    scheme: str
    host: str
    port: int
    path: str
    """The path without the query string, percent-encoding as sent."""
    query: tuple[tuple[str, str], ...]
    headers: Headers
    body: bytes
    """The body bytes as sent; `content-encoding` in `headers` says how they are encoded."""

    @property
    def authority(self) -> str:
        """Host, plus the port when it is not the scheme's default."""
        if DEFAULT_PORTS.get(self.scheme) == self.port:
            return self.host
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The full URL, default port dropped, query as stored."""
        base = f"{self.scheme}://{self.authority}{self.path}"
        return f"{base}?{urlencode(self.query)}" if self.query else base

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """Status line and headers of a response, headers in their order and case."""

    status: int
    reason: str
    http_version: str
    headers: Headers

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a response body as it arrived, `offset` seconds after the headers."""

    offset: float
    data: bytes


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where an interaction came from, for humans and for `replay ls`."""

    recorded_at: str
    """ISO 8601 UTC time the response ended."""
    provider: str
    model: str | None
    user_agent: str | None
    upstream_status: int
    tool_version: str


class Key(NamedTuple):
    """Where an interaction lives in the store."""

    namespace: str
    fingerprint: str
    occurrence: int


@dataclass(frozen=True, slots=True)
class Interaction:
    """One request and the response it got, with the fingerprint that names it."""

    key: Key
    fingerprint_version: int
    ignore: tuple[str, ...]
    """The `replay_ignore` paths in force when the fingerprint was computed."""
    request: Request
    """The request as stored: body content-decoded, `content-encoding` dropped."""
    response: ResponseHead
    ttfb: float
    """Seconds from the end of the request to the response headers."""
    chunks: tuple[Chunk, ...]
    complete: bool
    """False when the recording was cut short (client gone, upstream reset)."""
    provenance: Provenance

    @property
    def body(self) -> bytes:
        """The response body exactly as received (content-encoding included)."""
        return b"".join(c.data for c in self.chunks)


@dataclass(frozen=True, slots=True)
class RedactedInteraction:
    """An interaction whose credentials are gone; the only thing the store will write.

    Only `replay.redact.redact` constructs it (tests/test_layering.py enforces that).
    """

    interaction: Interaction
