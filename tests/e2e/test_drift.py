"""`replay drift` against the fake upstream, before and after it changes the shape of its answers.

The store is recorded through a real mitmdump with the official SDKs (OpenAI chat, plain and
streamed with usage; Anthropic, plain and streamed; Gemini, plain and streamed). `replay drift`
then runs as a subprocess, as a scheduled CI job would: real-looking keys in its environment,
and HTTPS_PROXY / SSL_CERT_FILE toward a bare mitmdump that pins the providers' hosts to the
fake (the way a runner reaches the real providers). The fake's API then changes: a renamed
field, a new event type, an error status.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.fake_upstream import FakeUpstream, ShapeChange
from support.proxy import Proxy, ProxyFactory, client_env, subprocess_env

pytestmark = pytest.mark.e2e

ProxyEnv = Callable[[Proxy | None], dict[str, str]]
LIVE_KEYS = {
    "OPENAI_API_KEY": "sk-live-openai-drift-0000000000000000",
    "ANTHROPIC_API_KEY": "sk-ant-live-drift-000000000000000000",
    "GEMINI_API_KEY": "AIza-live-drift-00000000000000000000",
}


def record(store: Path, factory: ProxyFactory, upstream: FakeUpstream, env: ProxyEnv) -> None:
    import anthropic
    import openai
    from google import genai

    proxy = factory(
        "-s", "addons/replay.py", "--set", "replay_mode=record", "--set", f"replay_dir={store}",
        upstream_port=upstream.port,
    )  # fmt: skip
    env(proxy)
    chat = [{"role": "user", "content": "what changed?"}]
    with openai.OpenAI(api_key="sk-test-recording-000000000000000000", max_retries=0) as client:
        for _ in range(2):  # a repeat: occurrence 1 is the same request, checked once
            client.chat.completions.create(model="gpt-4o-mini", messages=chat)  # type: ignore[arg-type]
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=chat,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    with anthropic.Anthropic(api_key="sk-ant-test-recording-0000000000", max_retries=0) as a:
        a.messages.create(model="claude-drift", max_tokens=64, messages=chat)  # type: ignore[arg-type]
        with a.messages.stream(model="claude-drift", max_tokens=64, messages=chat) as s:  # type: ignore[arg-type]
            assert s.get_final_text()
    with genai.Client(api_key="AIza-test-recording-00000000000000000") as gem:
        gem.models.generate_content(model="gemini-drift", contents="what changed?")
        assert "".join(
            c.text or ""
            for c in gem.models.generate_content_stream(model="gemini-drift", contents="s")
        )
    factory.stop_all()
    assert len(list(store.rglob("*.zst"))) == 7  # 6 requests, one of them twice


def snapshot(store: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()
    }


class Drift:
    """Runs `replay drift --json` in a child process through a pinning mitmdump."""

    def __init__(self, store: Path, proxy: Proxy, bundle: Path) -> None:
        self.store = store
        self.env = subprocess_env({**client_env(proxy, bundle), **LIVE_KEYS})

    def __call__(
        self, *args: str, drop: tuple[str, ...] = ()
    ) -> tuple[int, list[dict[str, Any]], str]:
        env = {k: v for k, v in self.env.items() if k not in drop}
        done = subprocess.run(
            [sys.executable, "-m", "replay", "drift", "--dir", str(self.store), "--json", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        return done.returncode, lines, done.stderr

    def text(self, *args: str) -> tuple[int, str]:
        """Without --json: (exit code, stdout) as people read it."""
        done = subprocess.run(
            [sys.executable, "-m", "replay", "drift", "--dir", str(self.store), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.returncode, done.stdout


@pytest.fixture
def drift(
    fake_upstream: FakeUpstream,
    proxy_factory: ProxyFactory,
    proxy_env: ProxyEnv,
    bundle: Path,
    tmp_path: Path,
) -> Drift:
    store = tmp_path / "cassettes"
    record(store, proxy_factory, fake_upstream, proxy_env)
    fake_upstream.clear()
    return Drift(store, proxy_factory(upstream_port=fake_upstream.port), bundle)


def test_the_same_api_is_no_drift_and_the_live_keys_are_sent(
    drift: Drift, fake_upstream: FakeUpstream
) -> None:
    before = snapshot(drift.store)
    code, lines, err = drift()
    assert code == 0, lines
    assert [line["result"] for line in lines] == ["same"] * 6, lines
    assert "6 request(s) checked: 0 drifted, 6 the same" in err
    seen = fake_upstream.requests
    assert len(seen) == 6  # the repeated request is sent once
    for request in seen:
        headers = dict(request.headers)
        assert "<redacted" not in json.dumps(headers)
        if request.path == "/v1/chat/completions":
            assert headers["authorization"] == f"Bearer {LIVE_KEYS['OPENAI_API_KEY']}"
        elif request.path == "/v1/messages":  # anthropic 2.x sends its key as a bearer token
            assert headers["authorization"] == f"Bearer {LIVE_KEYS['ANTHROPIC_API_KEY']}"
        else:
            assert headers["x-goog-api-key"] == LIVE_KEYS["GEMINI_API_KEY"]
    assert snapshot(drift.store) == before  # nothing written


def test_a_renamed_field_is_drift_naming_both_paths(
    drift: Drift, fake_upstream: FakeUpstream
) -> None:
    before = snapshot(drift.store)
    fake_upstream.shape = ShapeChange(rename={"finish_reason": "stop_reason"})
    code, lines, err = drift()
    assert code == 1, err
    results = {(line["url"].rsplit("/", 1)[-1], line["result"]) for line in lines}
    assert results == {
        ("completions", "drift"),
        ("messages", "same"),
        ("gemini-drift:generateContent", "same"),
        ("gemini-drift:streamGenerateContent", "same"),
    }
    chat = [line["differences"] for line in lines if line["url"].endswith("/completions")]
    [stream] = [d for d in chat if d[0]["where"].startswith("[")]
    [plain] = [d for d in chat if d is not stream]
    assert {(d["kind"], d["where"]) for d in plain} == {
        ("gone", "choices[].finish_reason"),
        ("new", "choices[].stop_reason"),
    }
    assert {(d["kind"], d["where"]) for d in stream} == {
        ("gone", "[chat.completion.chunk].choices[].finish_reason"),
        ("new", "[chat.completion.chunk].choices[].stop_reason"),
    }
    assert "2 drifted, 4 the same" in err
    assert snapshot(drift.store) == before


def test_a_new_event_type_is_drift_in_streams_only(
    drift: Drift, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.shape = ShapeChange(new_event="content_block_citation")
    code, lines, _ = drift("--namespace", "default")
    assert code == 1
    drifted = {
        line["url"].rsplit("/", 1)[-1]: line["differences"] for line in lines if line["differences"]
    }
    assert set(drifted) == {"completions", "messages", "gemini-drift:streamGenerateContent"}
    for differences in drifted.values():
        assert [(d["kind"], d["where"]) for d in differences] == [
            ("event-new", "content_block_citation")
        ]
    code, out = drift.text("--namespace", "default")
    assert code == 1
    assert "\n          + event content_block_citation: new\n" in out
    assert out.count("drift     default/") == 3
    code, _, _ = drift("--ignore", "[content_block_citation]")
    assert code == 0  # ignored: no drift left


def test_an_error_status_is_drift_with_the_providers_message(
    drift: Drift, fake_upstream: FakeUpstream
) -> None:
    code, lines, err = drift("--header", "x-fake-status: 404", "--sample", "2", "--seed", "7")
    assert code == 1, err
    assert len(lines) == 2 and len(fake_upstream.requests) == 2
    for line in lines:
        [difference] = line["differences"]
        assert difference["kind"] == "status"
        assert difference["recorded"] == "200"
        assert difference["live"] == "404 (fake status 404)"
    assert "2 of 6 (sample, seed 7)" in err
    _, again, _ = drift("--header", "x-fake-status: 404", "--sample", "2", "--seed", "7")
    assert [line["fingerprint"] for line in again] == [line["fingerprint"] for line in lines]


def test_a_missing_key_is_named_and_nothing_is_sent(
    drift: Drift, fake_upstream: FakeUpstream
) -> None:
    code, lines, err = drift("--dry-run")
    assert code == 0, err
    assert {line["reason"] for line in lines} == {
        "would be sent with OPENAI_API_KEY",
        "would be sent with ANTHROPIC_API_KEY",
        "would be sent with GEMINI_API_KEY",
    }
    code, lines, err = drift(drop=("ANTHROPIC_API_KEY",))
    assert code == 1
    unchecked = [line for line in lines if line["result"] == "unchecked"]
    assert len(unchecked) == 2
    assert {line["reason"] for line in unchecked} == {
        "no key for the authorization header: set ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN"
    }
    assert "2 could not be checked" in err
    assert not any(r.path == "/v1/messages" for r in fake_upstream.requests)
    assert len(fake_upstream.requests) == 4  # the dry run sent nothing either


def test_a_refused_key_is_could_not_be_checked_not_drift(
    drift: Drift, fake_upstream: FakeUpstream
) -> None:
    code, lines, err = drift("--header", "x-fake-status: 401", "--namespace", "default")
    assert code == 1, err
    assert {line["result"] for line in lines} == {"unchecked"}
    assert {line["reason"] for line in lines} == {
        "the provider refused the key: 401 (fake status 401)"
    }
    assert "0 drifted, 0 the same, 6 could not be checked" in err
