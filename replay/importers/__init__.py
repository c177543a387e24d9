"""Other tools' recordings as replay interactions: VCR.py cassettes, HAR files, mitmproxy
flow files (read in `replay.mitm.flowfile`).

Owns `Exchange` (one request and its answer as another tool kept it) and `interactions`,
which turns exchanges into interactions the way a live recording would store them:
fingerprinted under the default policy, occurrences counted per namespace and fingerprint
in file order, an SSE or NDJSON body split into its events, provenance naming the source.
The caller redacts (`replay.redact.redact`) before `Store.put`, as the engine does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from replay import __version__
from replay.fingerprint import FINGERPRINT_VERSION, FingerprintPolicy, fingerprint
from replay.models import Chunk, Headers, Interaction, Key, Provenance, Request, ResponseHead
from replay.prepared import Prepared


class ImportFormatError(ValueError):
    """A file that is not what its format says; the message names the file and the place."""


@dataclass(frozen=True, slots=True)
class Exchange:
    request: Request
    status: int
    reason: str
    headers: Headers
    body: bytes
    """As the response carried it (still content-encoded if `headers` say so)."""
    http_version: str = "HTTP/1.1"
    ttfb: float = 0.0
    duration: float = 0.0
    """Seconds from the response headers to its last byte, when the source knows."""
    recorded_at: str | None = None


def split_events(body: bytes, content_type: str | None) -> list[bytes]:
    """An SSE body cut after each blank line, NDJSON after each newline; else one piece."""
    ctype = (content_type or "").lower()
    if "text/event-stream" in ctype:
        separator = b"\n\n"
    elif "ndjson" in ctype or "jsonl" in ctype:
        separator = b"\n"
    else:
        return [body] if body else []
    pieces, start = [], 0
    normal = body.replace(b"\r\n", b"\n") == body
    while normal and (cut := body.find(separator, start)) >= 0:
        pieces.append(body[start : cut + len(separator)])
        start = cut + len(separator)
    if start < len(body):
        pieces.append(body[start:])
    return pieces


def _chunks(exchange: Exchange) -> tuple[Chunk, ...]:
    head = ResponseHead(exchange.status, "", "", exchange.headers)
    encoded = head.header("content-encoding") not in (None, "", "identity")
    ctype = None if encoded else head.header("content-type")
    pieces = split_events(exchange.body, ctype)
    if len(pieces) < 2:
        return tuple(Chunk(0.0, p) for p in pieces)
    step = exchange.duration / (len(pieces) - 1)
    return tuple(Chunk(round(n * step, 6), p) for n, p in enumerate(pieces))


def interactions(
    exchanges: Iterable[Exchange], namespace: str, source: str
) -> Iterator[Interaction]:
    """The exchanges as interactions of `namespace`, occurrences numbered from 0 per
    fingerprint in order; `source` (e.g. `vcr:cassette.yaml`) goes into the provenance."""
    seen: Counter[str] = Counter()
    policy = FingerprintPolicy()
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    for ex in exchanges:
        fp = fingerprint(ex.request, policy).hex
        occurrence = seen[fp]
        seen[fp] += 1
        prepared = Prepared(ex.request, namespace)  # decoded and routed as the engine does
        yield Interaction(
            key=Key(namespace, fp, occurrence),
            fingerprint_version=FINGERPRINT_VERSION,
            ignore=(),
            request=prepared.decoded,
            response=ResponseHead(ex.status, ex.reason, ex.http_version, ex.headers),
            ttfb=ex.ttfb,
            chunks=_chunks(ex),
            complete=True,
            provenance=Provenance(
                recorded_at=ex.recorded_at or now,
                provider=prepared.provider,
                model=prepared.model,
                user_agent=ex.request.header("user-agent"),
                upstream_status=ex.status,
                tool_version=f"{__version__} (imported from {source})",
            ),
        )


def request_from_url(method: str, url: str, headers: Headers, body: bytes) -> Request:
    """A Request from an absolute URL (query kept in order, percent-encoding as given)."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImportFormatError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    return Request(
        method.upper(), parts.scheme, parts.hostname, port, parts.path or "/", query, headers, body
    )
