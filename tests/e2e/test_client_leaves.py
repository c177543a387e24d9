"""A client that hangs up as soon as it has read the provider's last event loses nothing.

The OpenAI SDK closes the connection when it reads `data: [DONE]`, Ollama's client on
`"done": true`: often before the upstream's final chunk terminator reaches the proxy. The
fake upstream holds that terminator back (`x-fake-tail-ms`), so every request here is such
a race lost by the transport; each answer must still be stored whole, under its own
occurrence, and replay in order.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.fake_upstream import FakeUpstream
from support.proxy import Proxy, ProxyFactory, h2_first_context

from replay.codec import decode

pytestmark = pytest.mark.e2e

RUNS = 50


def _sse_ended(data: bytes) -> bool:
    return data.endswith(b"data: [DONE]\n\n")


def _ndjson_ended(data: bytes) -> bool:
    lines = data.splitlines()
    return data.endswith(b"\n") and bool(lines) and json.loads(lines[-1]).get("done") is True


CASES: dict[str, tuple[str, bytes, Callable[[bytes], bool]]] = {
    "sse": (
        "https://api.openai.com/v1/chat/completions",
        b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"bye"}]}',
        _sse_ended,
    ),
    "ndjson": (
        "https://ollama.test/api/chat",
        b'{"model":"llama3.2","messages":[{"role":"user","content":"bye"}]}',
        _ndjson_ended,
    ),
}
KNOBS = {"content-type": "application/json", "x-fake-chunks": "3", "x-fake-gap-ms": "0"}


def _context(bundle: Path, http2: bool) -> ssl.SSLContext:
    return h2_first_context(bundle) if http2 else ssl.create_default_context(cafile=str(bundle))


async def _leave_on_the_last_event(
    proxy: Proxy, bundle: Path, kind: str, http2: bool
) -> list[tuple[str, bytes]]:
    url, body, ended = CASES[kind]
    seen = []
    headers = {**KNOBS, "x-fake-tail-ms": "150"}
    context = _context(bundle, http2)
    for _ in range(RUNS):
        # A connection each: mitmproxy keeps at most 5 upstream connections per client
        # connection, and one whose client stream was reset lingers a few seconds.
        async with (
            httpx.AsyncClient(proxy=proxy.url, verify=context, http2=http2, timeout=20) as client,
            client.stream("POST", url, content=body, headers=headers) as r,
        ):
            assert r.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
            data = b""
            async for piece in r.aiter_raw():
                data += piece
                if ended(data):
                    break  # hang up now, as the SDK does
            assert ended(data), data
            seen.append((r.headers["x-replay"], data))
    return seen


async def _read_whole(proxy: Proxy, bundle: Path, kind: str, http2: bool) -> list[bytes]:
    url, body, _ = CASES[kind]
    async with httpx.AsyncClient(
        proxy=proxy.url, verify=_context(bundle, http2), http2=http2, timeout=20
    ) as client:
        bodies = []
        for _ in range(RUNS):
            r = await client.post(url, content=body, headers=KNOBS)
            assert r.headers["x-replay"] == "hit"
            bodies.append(r.content)
        return bodies


@pytest.mark.parametrize("http2", [False, True], ids=["http1", "http2"])
@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_client_that_hangs_up_on_the_last_event_loses_nothing(
    kind: str,
    http2: bool,
    fake_upstream: FakeUpstream,
    proxy_factory: ProxyFactory,
    bundle: Path,
    tmp_path: Path,
) -> None:
    store = tmp_path / "cassettes"
    args = ("-s", "addons/replay.py", "--set", f"replay_dir={store}")
    recorder = proxy_factory(*args, "--set", "replay_mode=record", upstream_port=fake_upstream.port)
    recorded = asyncio.run(_leave_on_the_last_event(recorder, bundle, kind, http2))
    assert [outcome for outcome, _ in recorded] == ["recorded"] * RUNS
    assert recorder.stop() == 0
    files = sorted(store.rglob("*.zst"))
    stored = [decode(p.read_bytes()) for p in files]
    assert sorted(i.key.occurrence for i in stored) == list(range(RUNS))  # nothing lost
    assert all(i.complete for i in stored)
    fake_upstream.stop()
    player = proxy_factory(*args, "--set", "replay_speed=0", upstream_port=None)
    replayed = asyncio.run(_read_whole(player, bundle, kind, http2))
    assert replayed == [data for _, data in recorded]  # each answer under its own number
