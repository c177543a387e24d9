"""The proxy lets go of closed upstream connections while their client stays connected.

mitmproxy keeps every server connection a client connection has used until that client
leaves (replay/mitm/conns.py). An HTTP/2 client getting streamed replays makes mitmproxy open
one connection to the chunk server per stream (it never reuses HTTP/1 connections for HTTP/2
clients) and close it after the answer: without the addon's `server_disconnected` hook, each
of them, with its layers and last message, stays in memory for as long as the client's
connection lives. Measured, not timed: a probe addon counts what mitmproxy holds.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import httpx
import pytest
from support.fake_upstream import FakeUpstream
from support.proxy import Proxy, ProxyFactory, h2_first_context

from replay.codec import decode

pytestmark = pytest.mark.e2e

CHAT = "https://api.openai.com/v1/chat/completions"
BODY = b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"held"}]}'
KNOBS = {"content-type": "application/json", "x-fake-chunks": "3", "x-fake-gap-ms": "0"}
STREAMS = 30
PROBE = ("-s", "tests/support/conn_probe.py")


def _replay(store: Path, *options: str) -> list[str]:
    """The replay addon's arguments: `replay_dir=store`, then each option as a `--set`."""
    args = ["-s", "addons/replay.py", "--set", f"replay_dir={store}"]
    for option in options:
        args += ["--set", option]
    return args


def _probe(proxy: Proxy) -> dict[str, int]:
    with httpx.Client(proxy=proxy.url, timeout=10) as client:
        r = client.get("http://conn-probe.test/")
    assert r.status_code == 200, r.text
    held: dict[str, int] = json.loads(r.content)
    return held


async def _streams_then_probe(proxy: Proxy, bundle: Path) -> tuple[list[str], dict[str, int]]:
    """STREAMS streamed replays over one HTTP/2 connection, then the probe while it is open."""
    context = h2_first_context(bundle)
    async with httpx.AsyncClient(proxy=proxy.url, verify=context, http2=True, timeout=20) as client:
        outcomes = []
        for _ in range(STREAMS):
            r = await client.post(CHAT, content=BODY, headers=KNOBS)
            assert r.http_version == "HTTP/2"
            assert r.content.endswith(b"data: [DONE]\n\n")
            outcomes.append(r.headers["x-replay"])
        held = await asyncio.to_thread(_probe, proxy)
        return outcomes, held


def test_streamed_replays_to_an_http2_client_leave_no_connections_behind(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    store = tmp_path / "cassettes"
    recorder = proxy_factory(
        *_replay(store, "replay_mode=record"), upstream_port=fake_upstream.port
    )
    context = ssl.create_default_context(cafile=str(bundle))
    with httpx.Client(proxy=recorder.url, verify=context, timeout=20) as client:
        assert client.post(CHAT, content=BODY, headers=KNOBS).headers["x-replay"] == "recorded"
    assert recorder.stop() == 0

    player = proxy_factory(*PROBE, *_replay(store, "replay_speed=0"), upstream_port=None)
    outcomes, held = asyncio.run(_streams_then_probe(player, bundle))

    assert outcomes == ["hit"] * STREAMS
    assert held["layers"] >= 1  # the probe sees the live client's HTTP layers
    # One chunk-server connection was opened and closed per stream; at most the last one
    # or two may still be closing when the probe asks. Without the hook: STREAMS of them.
    assert held["closed"] <= 3, held


def test_the_rig_can_reuse_pinned_connections_as_a_real_upstream_would(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    """`pin_upstream_reuse=true` (tests/support/pin_hosts.py): one client connection, one
    upstream connection, and the recordings still name the provider's host."""
    store = tmp_path / "cassettes"
    options = ("replay_mode=record", "pin_upstream_reuse=true")
    recorder = proxy_factory(*PROBE, *_replay(store, *options), upstream_port=fake_upstream.port)
    context = ssl.create_default_context(cafile=str(bundle))
    with httpx.Client(proxy=recorder.url, verify=context, timeout=20) as client:
        for i in range(10):
            body = BODY.replace(b"held", f"held {i}".encode())
            assert client.post(CHAT, content=body, headers=KNOBS).headers["x-replay"] == "recorded"
        held = _probe(recorder)
    assert recorder.stop() == 0

    assert held["held"] == 1, held  # without the option: one per request, 5 of them open
    assert len(fake_upstream.requests) == 10
    stored = [decode(p.read_bytes()) for p in sorted(store.rglob("*.zst"))]
    assert len(stored) == 10
    assert {(i.request.scheme, i.request.host) for i in stored} == {("https", "api.openai.com")}
