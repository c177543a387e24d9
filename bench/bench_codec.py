"""Size and time of the cassette codec per zstd level (how COMPRESSION_LEVEL was chosen).

Run: python bench/bench_codec.py [--repeat N] [--large]

Three realistic interactions: an OpenAI chat stream of ~200 small SSE chunks, a 50 KB
non-streamed JSON answer (English text), and a 2 x 1536 embedding answer (numbers). For each
zstd level: file size, ratio against the uncompressed JSON document, median time of
`codec.encode` (JSON + zstd) and `codec.decode` (zstd + JSON + validation). Text comes from the
docstrings of the standard library, so the input is the same on every machine. `--large` adds
a 10 MB request body (words drawn at random) at a few levels: the background writer's worst case.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import random
import statistics
import time
from collections.abc import Callable

import zstandard

from replay import codec
from replay.models import (
    Chunk,
    Interaction,
    Key,
    Provenance,
    RedactedInteraction,
    Request,
    ResponseHead,
)

LEVELS = (1, 3, 5, 7, 9, 12, 15, 19, 22)
_MODULES = ("argparse", "asyncio", "collections", "email", "json", "logging", "pathlib", "typing")
rng = random.Random(7)


def _words() -> list[str]:
    words: list[str] = []
    for name in _MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            doc = getattr(value, "__doc__", None)
            if isinstance(doc, str):
                words.extend(doc.split())
    return words


WORDS = _words()


def _rid(n: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(rng.choice(alphabet) for _ in range(n))


def _headers(content_type: str) -> tuple[tuple[str, str], ...]:
    return (
        ("date", "Sat, 22 Nov 2025 01:15:00 GMT"),
        ("content-type", content_type),
        ("transfer-encoding", "chunked"),
        ("connection", "keep-alive"),
        ("openai-organization", "<redacted>"),
        ("openai-processing-ms", "187"),
        ("openai-version", "2020-10-01"),
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-request-id", "req_" + _rid(32)),
        ("strict-transport-security", "max-age=31536000; includeSubDomains; preload"),
        ("cf-cache-status", "DYNAMIC"),
        ("set-cookie", "<redacted>"),
        ("server", "cloudflare"),
        ("cf-ray", _rid(16) + "-AMS"),
        ("alt-svc", 'h3=":443"; ma=86400'),
    )


def _interaction(body: bytes, content_type: str, chunks: tuple[Chunk, ...]) -> Interaction:
    headers = (("content-type", "application/json"), ("authorization", "<redacted>"))
    return Interaction(
        key=Key("default", f"{rng.getrandbits(256):064x}", 0),
        fingerprint_version=1,
        ignore=(),
        request=Request(
            "POST", "https", "api.openai.com", 443, "/v1/chat/completions", (), headers, body
        ),
        response=ResponseHead(200, "OK", "HTTP/1.1", _headers(content_type)),
        ttfb=0.412345678,
        chunks=chunks,
        complete=True,
        provenance=Provenance(
            "2025-11-22T01:15:00Z", "openai", "gpt-4o-mini", "OpenAI/Python 1.99.0", 200, "0.1.0"
        ),
    )


def sse_stream(n: int = 200) -> Interaction:
    base = {
        "id": "chatcmpl-" + _rid(29),
        "object": "chat.completion.chunk",
        "created": 1763774100,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_" + _rid(10).lower(),
    }

    def event(delta: dict[str, str], finish: str | None = None) -> dict[str, object]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice]}

    start = rng.randrange(len(WORDS) - n)
    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": " " + w}) for w in WORDS[start : start + n - 3]]
    events.append(event({}, "stop"))
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 41, "total_tokens": n}})
    lines = [f"data: {json.dumps(e, separators=(',', ':'))}\n\n".encode() for e in events]
    lines.append(b"data: [DONE]\n\n")
    offset, chunks = 0.0, []
    for line in lines:
        chunks.append(Chunk(offset, line))
        offset += rng.uniform(0.004, 0.04)
    prompt = {"role": "user", "content": " ".join(WORDS[:60])}
    request = json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": [prompt]})
    return _interaction(request.encode(), "text/event-stream", tuple(chunks))


def json_answer(size: int = 50_000) -> Interaction:
    start = rng.randrange(len(WORDS) // 2)
    words: list[str] = []
    while sum(map(len, words)) + len(words) < size - 600:
        words.append(WORDS[start + len(words)])
    message = {"role": "assistant", "content": " ".join(words), "refusal": None}
    answer = {
        "id": "chatcmpl-" + _rid(29),
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 41, "completion_tokens": 11000, "total_tokens": 11041},
    }
    body = json.dumps(answer, indent=2).encode()
    return _interaction(b'{"model":"gpt-4o-mini"}', "application/json", (Chunk(0.0, body),))


def embedding_answer() -> Interaction:
    data = [
        {"object": "embedding", "index": i, "embedding": [rng.gauss(0, 0.03) for _ in range(1536)]}
        for i in range(2)
    ]
    body = json.dumps({"object": "list", "data": data, "model": "text-embedding-3-small"}).encode()
    return _interaction(b'{"input":["a","b"]}', "application/json", (Chunk(0.0, body),))


def large_request(size: int = 10_000_000) -> Interaction:
    words = " ".join(rng.choice(WORDS) for _ in range(size // 6))[:size]
    body = json.dumps({"messages": [{"role": "user", "content": words}]}).encode()
    return _interaction(body, "application/json", (Chunk(0.0, b'{"ok":true}'),))


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--large", action="store_true", help="add a 10 MB body (slow)")
    args = parser.parse_args()
    repeat = args.repeat
    cases = {"sse-200": sse_stream(), "json-50k": json_answer(), "embed-2x1536": embedding_answer()}
    for name, interaction in cases.items():
        # The constructor is redact.py's alone in the product; a benchmark has no secrets.
        ri = RedactedInteraction(interaction)
        raw = codec.dumps(codec.to_document(interaction))
        body, n = len(interaction.body), len(interaction.chunks)
        print(f"\n{name}: body {body} B in {n} chunks, JSON document {len(raw)} B")
        print(f"{'level':>5} {'file B':>8} {'ratio':>6} {'encode ms':>10} {'decode ms':>10}")
        for level in LEVELS:
            data = codec.encode(ri, level=level)
            encode_ms = _median_ms(lambda: codec.encode(ri, level=level), repeat)  # noqa: B023
            decode_ms = _median_ms(lambda: codec.decode(data), repeat)  # noqa: B023
            ratio = len(raw) / len(data)
            print(f"{level:>5} {len(data):>8} {ratio:>6.1f} {encode_ms:>10.3f} {decode_ms:>10.3f}")
    doc = codec.to_document(cases["sse-200"])
    text_size = len(codec.encode(RedactedInteraction(cases["sse-200"])))
    for chunk in doc["response"]["chunks"]:
        chunk["base64"] = base64.b64encode(chunk.pop("text").encode()).decode()
    level = codec.COMPRESSION_LEVEL
    b64_size = len(zstandard.ZstdCompressor(level=level).compress(codec.dumps(doc)))
    print(f"\nsse-200 at level {level}: chunks as text {text_size} B, as base64 {b64_size} B")
    if args.large:
        big = RedactedInteraction(large_request())
        print(f"\n10 MB request body ({len(big.interaction.request.body)} B):")
        for level in (1, 3, 9, 12, 19):
            start = time.perf_counter()
            size = len(codec.encode(big, level=level))
            elapsed = (time.perf_counter() - start) * 1000
            print(f"{level:>5} {size:>9} B {elapsed:>8.0f} ms")


if __name__ == "__main__":
    main()
