"""Proves the end-to-end rig with plain mitmdump (no replay addon): real clients, through
HTTPS_PROXY or reverse mode, reach the fake upstream while believing they talk to the provider."""

from __future__ import annotations

import gzip
import json
import ssl
import subprocess
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import requests
from google import genai
from support.certs import TestCerts
from support.fake_upstream import SECRET_RESPONSE_HEADERS, FakeUpstream, content_pieces
from support.proxy import Proxy, ProxyFactory, h2_first_context, subprocess_env

pytestmark = pytest.mark.e2e

OPENAI_KEY = "sk-test-000000000000000000000000"
ANTHROPIC_KEY = "sk-ant-test-000000000000000000000"
GEMINI_KEY = "AIza-test-0000000000000000000000"
CHAT_URL = "https://api.openai.com/v1/chat/completions"

ProxyEnv = Callable[[Proxy | None], dict[str, str]]


def _chat_body(text: str, *, stream: bool = False) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}]
    return {"model": "gpt-4o-mini", "messages": messages, "stream": stream}


def test_openai_sdk_through_https_proxy(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv
) -> None:
    proxy = proxy_factory(upstream_port=fake_upstream.port)
    proxy_env(proxy)
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [
        {"role": "user", "content": "hello rig"}
    ]
    with openai.OpenAI(api_key=OPENAI_KEY, max_retries=0) as client:
        first = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        again = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
        with stream:
            deltas = [c.choices[0].delta.content for c in stream if c.choices]

        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, extra_headers={"x-fake-status": "429"}
            )

    assert limited.value.request_id is not None and limited.value.request_id.startswith("req_")
    assert first.choices[0].message.content == "echo: hello rig #0"
    assert again.choices[0].message.content == "echo: hello rig #1"
    assert first._request_id is not None and first._request_id.startswith("req_")
    assert "".join(d for d in deltas if d) == "echo: hello rig #0"
    assert [d for d in deltas if d] == content_pieces("echo: hello rig #0")

    seen = fake_upstream.requests
    assert [r.path for r in seen] == ["/v1/chat/completions"] * 4
    assert {r.host for r in seen} == {"api.openai.com"}
    assert {r.http_version for r in seen} == {"1.1"}  # the SDKs speak HTTP/1.1 only
    assert seen[0].header("authorization") == f"Bearer {OPENAI_KEY}"
    assert seen[2].json()["stream"] is True


def test_anthropic_messages_stream_helper(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv
) -> None:
    proxy = proxy_factory(upstream_port=fake_upstream.port)
    proxy_env(proxy)
    with (
        anthropic.Anthropic(api_key=ANTHROPIC_KEY, max_retries=0) as client,
        client.messages.stream(
            model="claude-rig-test",
            max_tokens=64,
            messages=[{"role": "user", "content": "hello claude"}],
        ) as stream,
    ):
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "echo: hello claude #0"
    assert final.content[0].type == "text"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 4
    (seen,) = fake_upstream.requests
    assert (seen.host, seen.path) == ("api.anthropic.com", "/v1/messages")


def test_google_genai_generate_and_stream(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv
) -> None:
    proxy = proxy_factory(upstream_port=fake_upstream.port)
    proxy_env(proxy)
    with genai.Client(api_key=GEMINI_KEY) as client:
        reply = client.models.generate_content(model="gemini-2.5-flash", contents="hello gemini")
        pieces = [
            c.text
            for c in client.models.generate_content_stream(
                model="gemini-2.5-flash", contents="hello gemini"
            )
        ]

    assert reply.text == "echo: hello gemini #0"
    assert "".join(p or "" for p in pieces) == "echo: hello gemini #0"
    assert len(pieces) == len(content_pieces("echo: hello gemini #0"))
    generate, streamed = fake_upstream.requests
    assert {generate.host, streamed.host} == {"generativelanguage.googleapis.com"}
    assert generate.path.endswith("/models/gemini-2.5-flash:generateContent")
    assert streamed.path.endswith("/models/gemini-2.5-flash:streamGenerateContent")
    assert streamed.query == "alt=sse"
    assert generate.header("x-goog-api-key") == GEMINI_KEY


def test_requests_and_curl(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv
) -> None:
    proxy = proxy_factory(upstream_port=fake_upstream.port)
    env = proxy_env(proxy)
    with requests.Session() as session:
        r = session.post(CHAT_URL, json=_chat_body("via requests"), timeout=10)
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "echo: via requests #0"
    assert r.headers["openai-organization"] == SECRET_RESPONSE_HEADERS["openai-organization"]

    curl = subprocess.run(
        [
            "curl",
            "-q",
            "-sS",
            "--max-time",
            "10",
            "--http2",
            "-H",
            "content-type: application/json",
            "-H",
            f"authorization: Bearer {OPENAI_KEY}",
            "--data-binary",
            json.dumps(_chat_body("via curl", stream=True)),
            "-w",
            "\nHTTP_VERSION=%{http_version}",
            CHAT_URL,
        ],
        env=subprocess_env(env),
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert curl.returncode == 0, curl.stderr.decode()
    out, _, version = curl.stdout.decode().rpartition("\nHTTP_VERSION=")
    assert version == "2"  # curl prefers h2; the lazy proxy honours it
    events = [line for line in out.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    text = "".join(
        json.loads(e[6:])["choices"][0]["delta"].get("content") or "" for e in events[:-1]
    )
    assert text == "echo: via curl #0"

    by_agent, by_curl = fake_upstream.requests
    assert (by_agent.host, by_agent.http_version) == ("api.openai.com", "1.1")
    assert (by_curl.host, by_curl.http_version) == ("api.openai.com", "2")


def test_httpx_prefers_h2_toward_proxy(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv, bundle: Path
) -> None:
    proxy = proxy_factory(upstream_port=fake_upstream.port)
    proxy_env(proxy)
    with httpx.Client(http2=True, verify=h2_first_context(bundle), timeout=10) as client:
        r = client.post(CHAT_URL, json=_chat_body("over h2"))
        body_json = _chat_body("over h2", stream=True)
        with client.stream("POST", CHAT_URL, json=body_json, headers={"x-fake-chunks": "3"}) as s:
            body = s.read()
            stream_version = s.http_version

    assert r.http_version == "HTTP/2"
    assert stream_version == "HTTP/2"
    assert r.json()["choices"][0]["message"]["content"] == "echo: over h2 #0"
    assert body.count(b"data: ") == 1 + 3 + 1 + 1  # role, 3 pieces, finish, [DONE]
    assert {(x.host, x.http_version) for x in fake_upstream.requests} == {("api.openai.com", "2")}


def test_plain_httpx_without_h2_preference_gets_http1(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv, bundle: Path
) -> None:
    """Documents MITMPROXY.md §1: httpcore offers http/1.1 first, so http2=True alone is not h2."""
    proxy = proxy_factory(upstream_port=fake_upstream.port)
    proxy_env(proxy)
    ctx = ssl.create_default_context(cafile=str(bundle))
    with httpx.Client(http2=True, verify=ctx, timeout=10) as client:
        r = client.post(CHAT_URL, json=_chat_body("over h1"))
    assert r.http_version == "HTTP/1.1"


def test_reverse_mode(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv
) -> None:
    reverse = ("--mode", "reverse:https://api.openai.com")
    proxy = proxy_factory(*reverse, upstream_port=fake_upstream.port)
    proxy_env(None)  # no HTTPS_PROXY: the client talks to the proxy directly
    with openai.OpenAI(api_key=OPENAI_KEY, base_url=proxy.url + "/v1", max_retries=0) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "reverse"}]
        )
    assert reply.choices[0].message.content == "echo: reverse #0"
    (seen,) = fake_upstream.requests
    assert (seen.host, seen.path) == ("api.openai.com", "/v1/chat/completions")


def test_gzip_stream_through_proxy(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv
) -> None:
    proxy = proxy_factory(upstream_port=fake_upstream.port)
    proxy_env(proxy)
    with (
        openai.OpenAI(api_key=OPENAI_KEY, max_retries=0) as client,
        client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "zipped words"}],
            stream=True,
            extra_headers={"x-fake-gzip": "1"},
        ) as response,
    ):
        assert response.headers["content-encoding"] == "gzip"
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: zipped words #0"
    (seen,) = fake_upstream.requests
    assert "gzip" in (seen.header("accept-encoding") or "")


def test_cut_stream_raises_in_sdk(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv
) -> None:
    # Plain mitmdump buffers bodies; stream_large_bodies=1 makes it pass chunks through, so the
    # client sees the upstream's mid-body abort as its own.
    proxy = proxy_factory("--set", "stream_large_bodies=1", upstream_port=fake_upstream.port)
    proxy_env(proxy)
    received: list[str] = []
    with openai.OpenAI(api_key=OPENAI_KEY, max_retries=0) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "one two three four five"}],
            stream=True,
            extra_headers={"x-fake-cut-after": "3"},
        )
        with pytest.raises(openai.APIConnectionError), stream:
            for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
    assert received[1:] == ["echo:", " one"]  # role chunk, then 2 pieces, then the cut
    proxy.wait_for_output(r"peer closed connection without sending complete message body")


def test_cut_stream_buffered_proxy_gives_502(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv
) -> None:
    proxy = proxy_factory(upstream_port=fake_upstream.port)
    proxy_env(proxy)
    with (
        openai.OpenAI(api_key=OPENAI_KEY, max_retries=0) as client,
        pytest.raises(openai.APIStatusError) as err,
    ):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "cut"}],
            stream=True,
            extra_headers={"x-fake-cut-after": "2"},
        )
    assert err.value.status_code == 502


def test_fake_upstream_streams_incrementally_with_gzip(
    fake_upstream: FakeUpstream, certs: TestCerts
) -> None:
    """Directly, no proxy: each SSE event is its own sync-flushed gzip piece, paced by the gap."""
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    url = f"https://127.0.0.1:{fake_upstream.port}/v1/chat/completions"
    headers = {"x-fake-gzip": "1", "x-fake-gap-ms": "40", "x-fake-chunks": "4"}
    arrivals: list[tuple[float, bytes]] = []
    with (
        httpx.Client(verify=ctx, timeout=10) as client,
        client.stream("POST", url, json=_chat_body("paced", stream=True), headers=headers) as r,
    ):
        t0 = time.monotonic()
        arrivals += [(time.monotonic() - t0, raw) for raw in r.iter_raw()]
    decoder = zlib.decompressobj(wbits=31)
    events = [decoder.decompress(raw) for _, raw in arrivals]
    assert r.headers["content-encoding"] == "gzip"
    assert all(e.endswith(b"\n\n") for e in events if e)  # every piece decodes to whole events
    assert b"".join(events) == gzip.decompress(b"".join(raw for _, raw in arrivals))
    assert arrivals[-1][0] - arrivals[0][0] >= 0.1  # 6 gaps of 40 ms, not one burst


def test_stopped_upstream_and_loopback_exemption(
    fake_upstream: FakeUpstream,
    certs: TestCerts,
    proxy_factory: ProxyFactory,
    proxy_env: ProxyEnv,
) -> None:
    """Pinned to a stopped upstream, provider hosts fail fast with 502; loopback targets are not
    pinned (the replay addon's own chunk server must stay reachable)."""
    with FakeUpstream(certs) as gone:
        dead_port = gone.port
    proxy = proxy_factory(upstream_port=dead_port)
    proxy_env(proxy)
    with requests.Session() as session:
        pinned = session.post(CHAT_URL, json=_chat_body("nobody home"), timeout=10)
        local_url = f"https://127.0.0.1:{fake_upstream.port}/v1/chat/completions"
        direct = session.post(local_url, json=_chat_body("loopback"), timeout=10)
    assert pinned.status_code == 502
    assert direct.status_code == 200
    assert direct.json()["choices"][0]["message"]["content"] == "echo: loopback #0"
    (seen,) = fake_upstream.requests
    assert seen.host == f"127.0.0.1:{fake_upstream.port}"
