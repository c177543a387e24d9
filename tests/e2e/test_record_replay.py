"""Record through a real mitmdump, stop the upstream, replay: the client sees the same bytes.

Each test records against the fake TLS upstream, stops the proxy cleanly (the writer
drains), replaces the upstream by a listener that only counts connections, and replays:
status line, headers (the `x-replay*` ones aside), body bytes and HTTP chunks must be what
the client saw while recording, and nothing may connect upstream.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import zstandard
from support.fake_upstream import SECRET_RESPONSE_HEADERS, FakeUpstream
from support.proxy import Proxy, ProxyFactory, h2_first_context, subprocess_env
from support.rawclient import ConnectionCounter, RawResponse, fetch

pytestmark = pytest.mark.e2e

ProxyEnv = Callable[[Proxy | None], dict[str, str]]
CHAT_URL = "https://api.openai.com/v1/chat/completions"
OPENAI_KEY = "sk-proj-Test0123456789abcdefghijklmnop"


def replay_proxy(
    factory: ProxyFactory, mode: str, store: Path, upstream_port: int | None, *extra: str
) -> Proxy:
    return factory(
        "-s",
        "addons/replay.py",
        "--set",
        f"replay_mode={mode}",
        "--set",
        f"replay_dir={store}",
        *extra,
        upstream_port=upstream_port,
    )


def chat_body(text: str, stream: bool = False) -> bytes:
    return json.dumps(
        {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": text}]}
    ).encode()


def post(proxy: Proxy, bundle: Path, body: bytes, **headers: str) -> RawResponse:
    hdrs = {
        "content-type": "application/json",
        "authorization": f"Bearer {OPENAI_KEY}",
        **{k.replace("_", "-"): v for k, v in headers.items()},
    }
    return fetch(CHAT_URL, proxy_port=proxy.port, cafile=bundle, headers=hdrs, body=body)


def stored_files(store: Path) -> list[Path]:
    return sorted(p for p in store.rglob("*.zst") if not p.name.startswith("."))


def decompressed(path: Path) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())


def redacted(headers: list[tuple[str, str]] | dict[str, str]) -> list[tuple[str, str]]:
    """Headers as stored: account-identifying values never reach the disk, so they replay as
    `<redacted>` (SPEC.md, Secrets); every other header is replayed as the client saw it."""
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [(k, "<redacted>" if k.lower() in SECRET_RESPONSE_HEADERS else v) for k, v in pairs]


def end_to_end(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Without the hop-by-hop `connection`/`keep-alive`, which replay does not repeat."""
    return [(k, v) for k, v in headers if k.lower() not in ("connection", "keep-alive")]


def assert_same_as_recorded(recorded: RawResponse, replayed: RawResponse) -> None:
    assert replayed.status_line == recorded.status_line
    assert end_to_end(replayed.headers_without_replay()) == end_to_end(
        redacted(recorded.headers_without_replay())
    )
    assert replayed.chunks == recorded.chunks


def test_streams_and_json_replay_byte_for_byte_offline(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    store = tmp_path / "cassettes"
    rec = replay_proxy(proxy_factory, "record", store, fake_upstream.port)
    cases = [
        (chat_body("stream me", stream=True), {"x_fake_chunks": "6"}),
        (chat_body("gzip stream", stream=True), {"x_fake_gzip": "1", "accept_encoding": "gzip"}),
        (chat_body("plain json"), {}),
        (chat_body("gzip json"), {"x_fake_gzip": "1", "accept_encoding": "gzip"}),
    ]
    recorded = [post(rec, bundle, body, **h) for body, h in cases]
    assert [r.header("x-replay") for r in recorded] == ["recorded"] * 4
    assert recorded[0].header("transfer-encoding") == "chunked"
    assert len(recorded[0].chunks) >= 8  # role chunk + 6 pieces + finish + [DONE]
    assert recorded[1].header("content-encoding") == "gzip"
    assert rec.stop() == 0
    fake_upstream.stop()

    with ConnectionCounter(fake_upstream.port) as counter:
        play = replay_proxy(proxy_factory, "replay", store, counter.port, "--set", "replay_speed=0")
        replayed = [post(play, bundle, body, **h) for body, h in cases]
        for rec_resp, rep_resp in zip(recorded, replayed, strict=True):
            assert rep_resp.header("x-replay") == "hit"
            assert rep_resp.header("x-replay-fingerprint") == rec_resp.header(
                "x-replay-fingerprint"
            )
            assert_same_as_recorded(rec_resp, rep_resp)
        assert counter.count() == 0
    assert json.loads(gzip.decompress(replayed[3].body))["object"] == "chat.completion"


def test_secrets_never_reach_the_disk(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    store = tmp_path / "cassettes"
    rec = replay_proxy(proxy_factory, "record", store, fake_upstream.port)
    # The fake echoes the last user message: the secret sits in an earlier one, since
    # response bodies are stored byte-exact (replay verify reports keys found there).
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {
                    "role": "user",
                    "content": "my other key is sk-ant-api03-Secret0123456789abcdefghij",
                },
                {"role": "user", "content": "hello"},
            ],
        }
    ).encode()
    url = CHAT_URL + "?key=AIzaSyTest0123456789abcdefghijklmnopqrs&api-version=2024-10-21"
    fetch(
        url,
        proxy_port=rec.port,
        cafile=bundle,
        body=body,
        headers={
            "authorization": f"Bearer {OPENAI_KEY}",
            "x-api-key": "hunter2-secret",
            "cookie": "session=cookie-secret",
            "content-type": "application/json",
        },
    )
    assert rec.stop() == 0
    [path] = stored_files(store)
    text = decompressed(path).decode()
    for secret in [
        OPENAI_KEY,
        "Secret0123456789",
        "AIzaSyTest0123",
        "hunter2-secret",
        "cookie-secret",
        *SECRET_RESPONSE_HEADERS.values(),
    ]:
        assert secret not in text, secret
    assert "api-version" in text and "<redacted" in text


def test_openai_sdk_stream_replays_in_order_and_last_repeats(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    import openai

    store = tmp_path / "cassettes"

    def ask(n: int) -> list[str]:
        answers = []
        with openai.OpenAI(api_key=OPENAI_KEY, max_retries=0) as client:
            for _ in range(n):
                stream = client.chat.completions.create(
                    model="gpt-4o-mini",
                    stream=True,
                    messages=[{"role": "user", "content": "again"}],
                )
                with stream:
                    answers.append(
                        "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                    )
        return answers

    proxy_env(replay_proxy(proxy_factory, "record", store, fake_upstream.port))
    assert ask(3) == ["echo: again #0", "echo: again #1", "echo: again #2"]
    proxy_factory.stop_all()
    fake_upstream.stop()
    proxy_env(replay_proxy(proxy_factory, "replay", store, None, "--set", "replay_speed=0"))
    assert ask(4) == ["echo: again #0", "echo: again #1", "echo: again #2", "echo: again #2"]


def test_anthropic_and_gemini_sdks_replay(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    import anthropic
    from google import genai

    store = tmp_path / "cassettes"

    def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        with anthropic.Anthropic(api_key="sk-ant-test-0000000000000", max_retries=0) as client:
            with client.messages.stream(
                model="claude-rig-test",
                max_tokens=64,
                messages=[{"role": "user", "content": "hi claude"}],
            ) as s:
                out["anthropic_stream"] = s.get_final_text()
            msg = client.messages.create(
                model="claude-rig-test",
                max_tokens=64,
                messages=[{"role": "user", "content": "plain"}],
            )
            out["anthropic"] = msg.content[0].text  # type: ignore[union-attr]
        with genai.Client(api_key="AIza-test-0000000000000000000000") as gem:
            out["gemini"] = gem.models.generate_content(model="gemini-rig", contents="hi gem").text
            stream = gem.models.generate_content_stream(model="gemini-rig", contents="stream gem")
            out["gemini_stream"] = "".join(c.text or "" for c in stream)
        return out

    proxy_env(replay_proxy(proxy_factory, "record", store, fake_upstream.port))
    recorded = run()
    assert recorded["anthropic_stream"] == "echo: hi claude #0"
    assert recorded["gemini_stream"] == "echo: stream gem #0"
    proxy_factory.stop_all()
    fake_upstream.stop()
    proxy_env(replay_proxy(proxy_factory, "replay", store, None, "--set", "replay_speed=0"))
    assert run() == recorded


def test_http2_client_gets_the_recorded_chunks(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    store = tmp_path / "cassettes"

    def stream(proxy: Proxy) -> tuple[str, dict[str, str], list[bytes]]:
        headers = {"content-type": "application/json", "x-fake-chunks": "5"}
        with (
            httpx.Client(proxy=proxy.url, verify=h2_first_context(bundle), http2=True) as c,
            c.stream("POST", CHAT_URL, content=chat_body("over h2", True), headers=headers) as r,
        ):
            chunks = list(r.iter_raw())
            seen = {k: v for k, v in r.headers.items() if not k.startswith("x-replay")}
            return r.http_version, seen, chunks

    version, rec_headers, rec_chunks = stream(
        replay_proxy(proxy_factory, "record", store, fake_upstream.port)
    )
    assert version == "HTTP/2"
    proxy_factory.stop_all()
    fake_upstream.stop()
    version, headers, chunks = stream(replay_proxy(proxy_factory, "replay", store, None))
    assert version == "HTTP/2" and redacted(headers) == redacted(rec_headers)
    assert headers["set-cookie"] == "<redacted>"
    assert b"".join(chunks) == b"".join(rec_chunks) and len(chunks) == len(rec_chunks)


def test_requests_curl_and_reverse_mode_share_fingerprints(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    store = tmp_path / "cassettes"
    body = chat_body("shared", stream=True)
    env = proxy_env(replay_proxy(proxy_factory, "record", store, fake_upstream.port))
    recorded = requests.post(
        CHAT_URL, data=body, timeout=10, headers={"content-type": "application/json"}
    )
    assert recorded.headers["x-replay"] == "recorded"
    proxy_factory.stop_all()
    fake_upstream.stop()

    env = proxy_env(replay_proxy(proxy_factory, "replay", store, None))
    curl = subprocess.run(
        [
            "curl",
            "-q",
            "-sS",
            "-D",
            "-",
            "--suppress-connect-headers",
            "--max-time",
            "10",
            CHAT_URL,
            "-H",
            "content-type: application/json",
            "--data-binary",
            body.decode(),
        ],
        capture_output=True,
        env=subprocess_env(env),
        check=True,
        timeout=20,
    )
    head, _, curl_body = curl.stdout.partition(b"\r\n\r\n")
    assert b"x-replay: hit" in head and curl_body == recorded.content

    reverse = proxy_factory(
        "-s",
        "addons/replay.py",
        "--set",
        f"replay_dir={store}",
        "--mode",
        "reverse:https://api.openai.com",
        upstream_port=None,
    )
    proxy_env(None)
    via_reverse = httpx.post(
        f"{reverse.url}/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert via_reverse.headers["x-replay"] == "hit"
    assert via_reverse.headers["x-replay-fingerprint"] == recorded.headers["x-replay-fingerprint"]
    assert via_reverse.content == recorded.content


def test_auto_records_a_miss_then_hits_it(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    store = tmp_path / "cassettes"
    proxy = replay_proxy(proxy_factory, "auto", store, fake_upstream.port)
    first = post(proxy, bundle, chat_body("auto"))
    assert first.header("x-replay") == "recorded" and len(fake_upstream.requests) == 1
    proxy.stop()
    proxy = replay_proxy(proxy_factory, "auto", store, fake_upstream.port)
    again = post(proxy, bundle, chat_body("auto"))
    assert again.header("x-replay") == "hit" and again.body == first.body
    assert len(fake_upstream.requests) == 1
    second_occurrence = post(proxy, bundle, chat_body("auto"))
    assert second_occurrence.header("x-replay") == "recorded"
    assert b"#1" in second_occurrence.body and len(fake_upstream.requests) == 2


def test_an_interrupted_stream_is_stored_incomplete_and_replays_as_a_miss(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    store = tmp_path / "cassettes"
    proxy = replay_proxy(proxy_factory, "record", store, fake_upstream.port)
    cut = post(proxy, bundle, chat_body("cut", stream=True), x_fake_cut_after="3")
    assert not cut.complete and len(cut.chunks) <= 3
    proxy.wait_for_output(r"stored as incomplete", timeout=10)
    assert proxy.stop() == 0
    assert "1 error" in proxy.output()  # the summary at the stop counts it
    [path] = stored_files(store)
    assert b'"complete":false' in decompressed(path).replace(b" ", b"")
    proxy = replay_proxy(proxy_factory, "replay", store, None, "--set", "replay_miss=error")
    miss = post(proxy, bundle, chat_body("cut", stream=True), x_fake_cut_after="3")
    assert miss.status == 404 and miss.header("x-replay") == "miss"
    rules = tmp_path / "rules.yaml"
    rules.write_text("settings:\n  replay_incomplete: true\n")
    proxy = replay_proxy(proxy_factory, "replay", store, None, "--set", f"replay_rules={rules}")
    replayed = post(proxy, bundle, chat_body("cut", stream=True), x_fake_cut_after="3")
    assert replayed.header("x-replay") == "hit" and not replayed.complete
    assert replayed.body == cut.body  # as it happened, the break included


def test_speed_scales_the_recorded_timing(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    store = tmp_path / "cassettes"
    body = chat_body("slow stream", stream=True)
    knobs = {"x_fake_chunks": "8", "x_fake_gap_ms": "50"}
    rec = post(
        replay_proxy(proxy_factory, "record", store, fake_upstream.port), bundle, body, **knobs
    )
    recorded_span = rec.times[-1] - rec.times[0]
    assert recorded_span >= 0.4
    proxy_factory.stop_all()
    spans = {}
    for speed in ("0", "1", "2"):
        proxy = replay_proxy(proxy_factory, "replay", store, None, "--set", f"replay_speed={speed}")
        resp = post(proxy, bundle, body, **knobs)
        assert resp.chunks == rec.chunks
        spans[speed] = resp.times[-1] - resp.times[0]
    # Orders of magnitude only; exact timing is measured in bench/.
    assert spans["1"] >= 0.9 * recorded_span
    assert 0.45 * recorded_span <= spans["2"] < spans["1"]
    assert spans["0"] < 0.25 * recorded_span


def test_namespaces_from_option_and_header(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    store = tmp_path / "cassettes"
    proxy = replay_proxy(proxy_factory, "record", store, fake_upstream.port)
    post(proxy, bundle, chat_body("ns"), x_replay_cassette="suite-a")
    bad = post(proxy, bundle, chat_body("ns"), x_replay_cassette="../escape")
    assert bad.status == 400 and bad.header("x-replay") == "error"
    proxy.stop()
    assert all(r.header("x-replay-cassette") is None for r in fake_upstream.requests)
    assert [p.relative_to(store).parts[0] for p in stored_files(store)] == ["suite-a"]
    proxy = replay_proxy(proxy_factory, "replay", store, None, "--set", "replay_miss=error")
    assert post(proxy, bundle, chat_body("ns")).header("x-replay") == "miss"
    assert post(proxy, bundle, chat_body("ns"), x_replay_cassette="suite-a").status == 200
    proxy.stop()
    proxy = replay_proxy(proxy_factory, "replay", store, None, "--set", "replay_cassette=suite-a")
    assert post(proxy, bundle, chat_body("ns")).header("x-replay") == "hit"


def test_report_corrupt_files_passthrough_and_forward(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    store, report = tmp_path / "cassettes", tmp_path / "report.jsonl"
    proxy = replay_proxy(proxy_factory, "passthrough", store, fake_upstream.port)
    assert post(proxy, bundle, chat_body("pass")).header("x-replay") == "forwarded"
    proxy.stop()
    assert stored_files(store) == []
    proxy = replay_proxy(proxy_factory, "record", store, fake_upstream.port)
    post(proxy, bundle, chat_body("one"))
    post(proxy, bundle, chat_body("two"))
    proxy.stop()
    first, _second = stored_files(store)
    first.write_bytes(b"not a cassette")
    proxy = replay_proxy(
        proxy_factory,
        "replay",
        store,
        fake_upstream.port,
        "--set",
        "replay_miss=forward",
        "--set",
        f"replay_report={report}",
    )
    outcomes = [post(proxy, bundle, chat_body(t)).header("x-replay") for t in ("one", "two")]
    assert sorted(outcomes) == ["forwarded", "hit"]  # the corrupt one is a miss
    proxy.wait_for_output(str(first.name), timeout=5)
    proxy.stop()
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    assert sorted(x["outcome"] for x in lines) == ["forwarded", "hit"]
    assert all(x["url"] == CHAT_URL and len(x["fingerprint"]) == 64 for x in lines)
    assert stored_files(store)[0].read_bytes() == b"not a cassette"  # forward stores nothing


def test_traffic_outside_llm_hosts_is_untouched(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    proxy = replay_proxy(proxy_factory, "replay", tmp_path, None)
    other = fetch(
        f"https://localhost:{fake_upstream.port}/not/llm",
        proxy_port=proxy.port,
        cafile=bundle,
        method="GET",
    )
    assert other.status == 404 and other.header("x-replay") is None
    assert [r.path for r in fake_upstream.requests] == ["/not/llm"]


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        (("replay_speed=fast",), "replay_speed"),
        (("replay_mode=replya",), "replay_mode"),
        (("replay_mdoe=record",), "unknown option replay_mdoe"),
        (("replay_mode=replay", "replay_mode=record"), "replay_mode is given 2 times"),
    ],
)
def test_bad_options_stop_the_proxy_with_a_line_naming_them(
    option: tuple[str, ...], needle: str, confdir: Path
) -> None:
    root = Path(__file__).resolve().parents[2]
    deadline = time.monotonic() + 30
    proc = subprocess.run(
        [
            *_mitmdump(),
            "--set",
            f"confdir={confdir}",
            "--listen-host",
            "127.0.0.1",
            "-p",
            "0",
            "-s",
            str(root / "addons" / "replay.py"),
            *(arg for o in option for arg in ("--set", o)),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        env=subprocess_env({}),
    )
    assert time.monotonic() < deadline
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr


def test_a_repeated_set_and_numbers_in_config_yaml_leave_the_addon_in_charge(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    # Either used to make mitmproxy drop the script silently: every request, keys and all,
    # then went to the real provider.
    store = tmp_path / "cassettes"
    rec = replay_proxy(proxy_factory, "record", store, fake_upstream.port)
    recorded = post(rec, bundle, chat_body("twice"))
    assert rec.stop() == 0
    fake_upstream.stop()
    confdir = tmp_path / "conf"
    shutil.copytree(proxy_factory.confdir, confdir)
    (confdir / "config.yaml").write_text("replay_speed: 0\nreplay_record_errors: false\n")
    factory = ProxyFactory(confdir, proxy_factory.test_ca, proxy_factory.cwd)
    with ConnectionCounter(fake_upstream.port) as counter:
        play = factory(
            "-s",
            "addons/replay.py",
            "--set",
            "replay_mode=replay",
            "--set",
            "replay_mode=replay",
            "--set",
            f"replay_dir={store}",
            upstream_port=counter.port,
        )
        play.wait_for_output(r"replay: ready: mode=replay .* speed=0", timeout=10)
        replayed = post(play, bundle, chat_body("twice"))
        assert replayed.header("x-replay") == "hit" and replayed.body == recorded.body
        assert counter.count() == 0
        factory.stop_all()


def _mitmdump() -> list[str]:
    import sys

    return [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()"]


def test_many_http2_streams_on_one_connection_and_a_client_that_leaves(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    import asyncio

    store = tmp_path / "cassettes"
    bodies = [chat_body(f"h2 stream {i}", stream=True) for i in range(12)]
    knobs = {"content-type": "application/json", "x-fake-chunks": "4", "x-fake-gap-ms": "20"}
    rec = replay_proxy(proxy_factory, "record", store, fake_upstream.port)
    recorded = [post(rec, bundle, b, x_fake_chunks="4", x_fake_gap_ms="20").body for b in bodies]
    proxy_factory.stop_all()
    fake_upstream.stop()
    play = replay_proxy(proxy_factory, "replay", store, None)

    async def run() -> tuple[list[bytes], bytes]:
        async with httpx.AsyncClient(
            proxy=play.url, verify=h2_first_context(bundle), http2=True, timeout=20
        ) as client:

            async def one(body: bytes) -> bytes:
                r = await client.post(CHAT_URL, content=body, headers=knobs)
                assert r.http_version == "HTTP/2" and r.headers["x-replay"] == "hit"
                return r.content

            async def leave_early() -> bytes:
                async with client.stream("POST", CHAT_URL, content=bodies[0], headers=knobs) as r:
                    return await anext(r.aiter_raw())  # then the stream is dropped

            first = await leave_early()
            # More streams than mitmproxy's 5 connections per address: the port pool copes.
            return list(await asyncio.gather(*(one(b) for b in bodies))), first

    replayed, first = asyncio.run(run())
    assert replayed == recorded
    assert recorded[0].startswith(first)


def test_plain_http_through_http_proxy_is_handled_like_https(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    store = tmp_path / "cassettes"
    url = "http://vllm.internal:8000/v1/chat/completions"  # a self-hosted server, no TLS
    plain = ("--set", f"pin_upstream_plain=127.0.0.1:{fake_upstream.plain_port}")
    rec = replay_proxy(proxy_factory, "record", store, fake_upstream.port, *plain)
    body = chat_body("plain http", stream=True)
    with httpx.Client(proxy=rec.url, timeout=10) as client:
        recorded = client.post(url, content=body, headers={"content-type": "application/json"})
    assert recorded.headers["x-replay"] == "recorded"
    assert fake_upstream.requests[-1].host == "vllm.internal:8000"
    proxy_factory.stop_all()
    fake_upstream.stop()
    play = replay_proxy(proxy_factory, "replay", store, None)
    with httpx.Client(proxy=play.url, timeout=10) as client:
        replayed = client.post(url, content=body, headers={"content-type": "application/json"})
    assert replayed.headers["x-replay"] == "hit" and replayed.content == recorded.content
    [path] = stored_files(store)
    assert b'"scheme":"http"' in decompressed(path).replace(b" ", b"")


def test_a_websocket_upgrade_in_replay_mode_never_reaches_the_provider(
    proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    upgrade = {
        "upgrade": "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    url = "https://api.openai.com/v1/realtime?model=gpt-realtime"
    store = tmp_path / "cassettes"
    with ConnectionCounter(0) as counter:
        play = replay_proxy(proxy_factory, "replay", store, counter.port)
        refused = fetch(url, proxy_port=play.port, cafile=bundle, method="GET", headers=upgrade)
        assert refused.status == 501 and refused.header("x-replay") == "error"
        assert b"not recorded" in refused.body and b"WebSocket" in refused.body
        assert counter.count() == 0
        passthrough = replay_proxy(proxy_factory, "passthrough", store, counter.port)
        with contextlib.suppress(OSError):  # the counter never answers: the client times out
            fetch(
                url,
                proxy_port=passthrough.port,
                cafile=bundle,
                method="GET",
                headers=upgrade,
                timeout=3,
            )
        assert counter.count() >= 1  # forwarded untouched


def test_replay_strict_exits_1_when_anything_was_not_a_hit(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    store = tmp_path / "cassettes"
    rec = replay_proxy(proxy_factory, "record", store, fake_upstream.port)
    post(rec, bundle, chat_body("strict"))
    assert rec.stop() == 0
    fake_upstream.stop()
    strict = ("--set", "replay_strict=true", "--set", "replay_speed=0")
    clean = replay_proxy(proxy_factory, "replay", store, None, *strict)
    assert post(clean, bundle, chat_body("strict")).header("x-replay") == "hit"
    assert clean.stop() == 0  # every answer from the cassettes
    missed = replay_proxy(proxy_factory, "replay", store, None, *strict)
    assert post(missed, bundle, chat_body("strict")).header("x-replay") == "hit"
    assert post(missed, bundle, chat_body("edited")).header("x-replay") == "synthetic"
    assert missed.stop() == 1
    output = missed.output()
    assert "strict: 1 request(s) were not answered" in output
    assert "first difference: body.json.messages.0.content" in output  # in the summary
