"""Synthetic answers and rules through a real mitmdump, with the real SDKs.

The full endpoint × SDK matrix runs in-process (tests/sdk); here a representative set goes
through the proxy: made-up answers for each provider (streams through the chunk server), the
miss error naming the nearest recording, and rules: canned answers, 429s the SDK retries,
faults on recorded playbacks and on upstream answers, latency, and reloading on change.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.fake_upstream import FakeUpstream
from support.proxy import Proxy, ProxyFactory, subprocess_env
from support.rawclient import fetch

pytestmark = pytest.mark.e2e

ProxyEnv = Callable[[Proxy | None], dict[str, str]]
CHAT_URL = "https://api.openai.com/v1/chat/completions"
KEY = "sk-proj-Test0123456789abcdefghijklmnop"


def start(factory: ProxyFactory, store: Path, *extra: str, upstream: int | None = None) -> Proxy:
    return factory(
        "-s",
        "addons/replay.py",
        "--set",
        f"replay_dir={store}",
        *extra,
        upstream_port=upstream,
    )


def chat(text: str, stream: bool = False) -> bytes:
    body = {
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }
    return json.dumps(body).encode()


def post(proxy: Proxy, bundle: Path, body: bytes, url: str = CHAT_URL) -> object:
    headers = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
    return fetch(url, proxy_port=proxy.port, cafile=bundle, headers=headers, body=body)


def test_openai_sdk_gets_synthetic_answers_streamed_through_the_chunk_server(
    proxy_factory: ProxyFactory, proxy_env: ProxyEnv, bundle: Path, tmp_path: Path
) -> None:
    import openai

    proxy = start(proxy_factory, tmp_path / "s", "--set", "replay_speed=0")
    proxy_env(proxy)
    with openai.OpenAI(api_key=KEY, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
        assert raw.headers["x-replay"] == "synthetic"
        assert len(raw.headers["x-replay-fingerprint"]) == 64
        text = raw.parse().choices[0].message.content
        assert text
        with client.chat.completions.stream(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        ) as s:
            streamed = s.get_final_completion().choices[0].message.content
        assert streamed and streamed != text  # another request, another answer
    # On the wire: one HTTP chunk per SSE event.
    r = post(proxy, bundle, chat("count", stream=True))
    assert r.status == 200 and r.header("x-replay") == "synthetic"
    assert r.header("transfer-encoding") == "chunked" and len(r.chunks) > 3
    assert all(c.startswith(b"data: ") for c in r.chunks) and r.chunks[-1] == b"data: [DONE]\n\n"
    # Deterministic: a second proxy gives the same bytes for the same request.
    proxy_factory.stop_all()
    again = post(
        start(proxy_factory, tmp_path / "s2", "--set", "replay_speed=0"),
        bundle,
        chat("count", stream=True),
    )
    assert again.chunks == r.chunks


def test_anthropic_gemini_and_ollama_through_the_proxy(
    proxy_factory: ProxyFactory, proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    import anthropic
    import ollama
    from google import genai

    proxy_env(start(proxy_factory, tmp_path / "s", "--set", "replay_speed=0"))
    with anthropic.Anthropic(api_key="sk-ant-test", max_retries=0) as client:
        with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=200, messages=[{"role": "user", "content": "Hi"}]
        ) as s:
            message = s.get_final_message()
        assert message.stop_reason == "end_turn" and message.content[0].type == "text"
        assert message.usage.output_tokens > 0
    with genai.Client(api_key="AIza-test") as gemini:
        stream = gemini.models.generate_content_stream(model="gemini-2.5-flash", contents="Hi")
        chunks = list(stream)
    assert len(chunks) >= 2 and "".join(c.text or "" for c in chunks)
    with ollama.Client(host="http://ollama.test:11434") as local:
        messages = [{"role": "user", "content": "Hi"}]
        parts = list(local.chat(model="llama3.2", messages=messages, stream=True))
    assert parts[-1].done and parts[-1].eval_count == len(parts) - 1


def test_miss_error_names_the_nearest_recording_and_its_first_difference(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    store = tmp_path / "s"
    rec = start(proxy_factory, store, "--set", "replay_mode=record", upstream=fake_upstream.port)
    assert post(rec, bundle, chat("the recorded question")).header("x-replay") == "recorded"
    assert rec.stop() == 0
    proxy = start(proxy_factory, store, "--set", "replay_miss=error")
    miss = post(proxy, bundle, chat("a slightly different question"))
    assert miss.status == 404 and miss.header("x-replay") == "miss"
    message = json.loads(miss.body)["error"]["message"]
    assert miss.header("x-replay-fingerprint") in message
    assert "messages.0.content" in message and "replay_mode=" in message
    # An endpoint no responder knows is a miss even under the synthetic policy.
    other = start(proxy_factory, store)
    unknown = post(other, bundle, b"{}", url="https://api.openai.com/v1/moderations")
    assert unknown.status == 404 and unknown.header("x-replay") == "miss"


def write_rules(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_rules_429_twice_then_the_sdk_retry_succeeds(
    proxy_factory: ProxyFactory, proxy_env: ProxyEnv, tmp_path: Path
) -> None:
    import openai

    rules = write_rules(
        tmp_path / "rules.yaml",
        "rules:\n"
        "  - name: busy\n"
        "    match: {last_user_message: {contains: busy}}\n"
        "    error: {status: 429, retry_after: 0.01, message: slow down}\n"
        "    times: 2\n",
    )
    proxy_env(
        start(
            proxy_factory,
            tmp_path / "s",
            "--set",
            f"replay_rules={rules}",
            "--set",
            "replay_speed=0",
            "--set",
            f"replay_report={tmp_path / 'report.jsonl'}",
        )
    )
    with openai.OpenAI(api_key=KEY, max_retries=2) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "are you busy"}]
        )
        assert raw.retries_taken == 2 and raw.headers["x-replay"] == "synthetic"
        # `times: 2` is spent: the next matching request is answered as usual.
        later = client.with_options(max_retries=0).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "busy again"}]
        )
        assert later.retries_taken == 0 and later.parse().choices[0].message.content
    proxy_factory.stop_all()  # flushes the report
    lines = [json.loads(x) for x in (tmp_path / "report.jsonl").read_text().splitlines()]
    assert [(x["status"], x["outcome"]) for x in lines] == [(429, "synthetic")] * 2 + [
        (200, "synthetic")
    ] * 2
    assert [x.get("detail") for x in lines] == ["rules: busy"] * 2 + [None] * 2


def test_fault_cuts_a_recorded_playback_and_latency_delays_it(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    store = tmp_path / "s"
    rec = start(proxy_factory, store, "--set", "replay_mode=record", upstream=fake_upstream.port)
    recorded = post(rec, bundle, chat("stream me", stream=True))
    slow = post(rec, bundle, chat("slow one"))
    assert recorded.header("x-replay") == slow.header("x-replay") == "recorded"
    assert rec.stop() == 0
    rules = write_rules(
        tmp_path / "rules.yaml",
        "rules:\n"
        "  - match: {last_user_message: stream me}\n"
        "    fault: {cut_after: 2}\n"
        "  - match: {last_user_message: slow one}\n"
        "    latency: {ttfb_ms: 300}\n",
    )
    report = tmp_path / "report.jsonl"
    proxy = start(
        proxy_factory,
        store,
        "--set",
        f"replay_rules={rules}",
        "--set",
        "replay_speed=0",
        "--set",
        f"replay_report={report}",
    )
    cut = post(proxy, bundle, chat("stream me", stream=True))
    assert cut.header("x-replay") == "hit"
    assert cut.chunks == recorded.chunks[:2] and not cut.complete  # dropped, no terminator
    assert recorded.complete and len(recorded.chunks) > 2
    started = time.monotonic()
    delayed = post(proxy, bundle, chat("slow one"))
    assert time.monotonic() - started >= 0.25 and delayed.body == slow.body
    proxy_factory.stop_all()
    lines = [json.loads(x) for x in report.read_text().splitlines()]
    # The cut answer is reported as what the client was told it was, the fault in detail.
    assert [x["outcome"] for x in lines] == ["hit", "hit"]
    assert lines[0]["detail"].startswith("fault:") and "rules: rule 1" in lines[0]["detail"]


def test_fault_on_an_upstream_answer_drops_the_client(
    fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    rules = write_rules(
        tmp_path / "rules.yaml",
        "rules:\n  - match: {host: api.openai.com}\n    fault: {cut_after: 1}\n",
    )
    proxy = start(
        proxy_factory,
        tmp_path / "s",
        "--set",
        "replay_mode=passthrough",
        "--set",
        f"replay_rules={rules}",
        upstream=fake_upstream.port,
    )
    r = post(proxy, bundle, chat("stream me", stream=True))
    assert r.header("x-replay") == "forwarded"
    assert len(r.chunks) == 1 and not r.complete  # one chunk, then the connection dropped
    # A JSON answer with a content-length is one chunk: sent chunked, it still shows the cut.
    whole = post(proxy, bundle, chat("plain json"))
    assert whole.header("content-length") is None and whole.header("transfer-encoding")
    assert json.loads(whole.body)["object"] == "chat.completion" and not whole.complete


def test_rules_reload_when_the_file_changes(
    proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    def rules_answering(text: str) -> str:
        return f"rules:\n  - match: {{last_user_message: ping}}\n    reply: {{text: {text}}}\n"

    rules = write_rules(tmp_path / "rules.yaml", rules_answering("one"))
    proxy = start(
        proxy_factory, tmp_path / "s", "--set", f"replay_rules={rules}", "--set", "replay_speed=0"
    )
    bumps = iter(range(1, 10))

    def change(text: str) -> None:
        """Replace the file whole (as editors save), so no half-written file is read."""
        new = rules.with_name("rules.yaml.new")
        new.write_text(text)
        now = time.time_ns()  # a visibly newer mtime at each change
        os.utime(new, ns=(now, now + next(bumps) * 10**9))
        os.replace(new, rules)

    def answer() -> str:
        r = post(proxy, bundle, chat("ping"))
        return str(json.loads(r.body)["choices"][0]["message"]["content"])

    def answers_until(expected: str, stays: str | None = None) -> None:
        """Ask until the answer is `expected` (bounded); until then it is `stays`."""
        deadline = time.monotonic() + 10
        while (got := answer()) != expected:
            assert got == stays, f"answered {got!r} while waiting for {expected!r}"
            assert time.monotonic() < deadline, f"the rules file never answered {expected!r}"
            time.sleep(0.1)

    assert answer() == "one"
    change(rules_answering("two"))
    answers_until("two", stays="one")
    proxy.wait_for_output(re.escape(f"rules file {rules} reloaded: 1 rules"))
    # An invalid change is logged, naming the file, and the last rules stay in force.
    change("rules: [ this is not valid")
    deadline = time.monotonic() + 10
    while "the previous rules stay" not in proxy.output():
        assert answer() == "two"
        assert time.monotonic() < deadline, "the invalid change was never noticed"
        time.sleep(0.1)
    [logged] = [line for line in proxy.lines() if "the previous rules stay" in line]
    assert "rules file not reloaded" in logged and "rules.yaml:1" in logged
    assert answer() == "two"
    # The next valid change is read again.
    change(rules_answering("three"))
    answers_until("three", stays="two")


def test_an_invalid_rules_file_stops_startup(confdir: Path, tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path / "rules.yaml", "rules:\n  - match: {colour: red}\n    reply: {text: x}\n"
    )
    addon = Path(__file__).resolve().parents[2] / "addons" / "replay.py"
    mitmdump = [sys.executable, "-c", "from mitmproxy.tools.main import mitmdump; mitmdump()"]
    proc = subprocess.run(
        [
            *mitmdump,
            *("--set", f"confdir={confdir}", "--listen-host", "127.0.0.1", "-p", "0"),
            *("-s", str(addon), "--set", f"replay_rules={rules}"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
        env=subprocess_env({}),
        check=False,
    )
    assert proc.returncode != 0
    assert "rules.yaml:2" in proc.stdout + proc.stderr
    assert "colour" in proc.stdout + proc.stderr
