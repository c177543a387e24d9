"""Owns building stores for tests of the command line: provider-shaped interactions, named
by their real fingerprint, written through `redact` and `Store.put` as the proxy writes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from replay.fingerprint import FingerprintPolicy, fingerprint
from replay.models import Chunk, Interaction, Key, Provenance, Request, ResponseHead
from replay.redact import redact
from replay.store import Store

JSON = (("content-type", "application/json"),)
SSE = (("content-type", "text/event-stream"),)


def request(
    body: object,
    path: str = "/v1/chat/completions",
    host: str = "api.openai.com",
    *,
    method: str = "POST",
    headers: Sequence[tuple[str, str]] = (),
) -> Request:
    data = json.dumps(body).encode() if body is not None else b""
    all_headers = (("host", host), *JSON, *headers) if body is not None else (("host", host),)
    return Request(method, "https", host, 443, path, (), all_headers, data)


def chat(content: str, model: str = "gpt-4o-mini", **extra: object) -> Request:
    """The request the openai SDK sends for one user message."""
    body = {"messages": [{"role": "user", "content": content}], "model": model, **extra}
    return request(body)


def interaction(
    req: Request,
    chunks: Iterable[bytes | tuple[float, bytes]],
    *,
    namespace: str = "default",
    occurrence: int = 0,
    status: int = 200,
    headers: Sequence[tuple[str, str]] = JSON,
    provider: str = "openai",
    model: str | None = "gpt-4o-mini",
    recorded_at: str = "2026-11-30T12:00:00+00:00",
    complete: bool = True,
) -> Interaction:
    """An interaction named by `req`'s fingerprint; chunks are bytes (offset 0.01 s apart)
    or (offset, bytes)."""
    timed = [
        Chunk(c[0], c[1]) if isinstance(c, tuple) else Chunk(0.01 * n, c)
        for n, c in enumerate(chunks)
    ]
    fp = fingerprint(req, FingerprintPolicy()).hex
    return Interaction(
        key=Key(namespace, fp, occurrence),
        fingerprint_version=1,
        ignore=(),
        request=req,
        response=ResponseHead(status, "OK", "HTTP/1.1", tuple(headers)),
        ttfb=0.05,
        chunks=tuple(timed),
        complete=complete,
        provenance=Provenance(recorded_at, provider, model, "test/1.0", status, "0.1.0"),
    )


def completion(text: str, model: str = "gpt-4o-mini") -> bytes:
    """A non-streamed chat completion that the openai SDK parses."""
    return json.dumps(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1767225600,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    ).encode()


def write(root: Path, interactions: Iterable[Interaction]) -> list[Path]:
    """Store each interaction (redacted first) and wait for the writes; their paths."""
    with Store(root) as store:
        paths = []
        for i in interactions:
            store.put(redact(i))
            paths.append(store.path_for(i.key))
    return paths


def write_unredacted(root: Path, i: Interaction, name: str | None = None) -> Path:
    """Write `i` as the codec would, but WITHOUT redaction (a store someone edited by hand,
    or a tool that bypassed the proxy): what `replay verify` must catch."""
    import zstandard

    from replay.codec import dumps, to_document
    from replay.store import entry_name

    fp = i.key.fingerprint
    path = root / i.key.namespace / fp[:2] / (name or entry_name(fp, i.key.occurrence))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor().compress(dumps(to_document(i))))
    return path
