"""Regenerate the example cassettes in cassettes/default (`make cassettes`).

Starts the project's fake provider upstream (tests/support/fake_upstream.py) and a mitmdump
with addons/replay.py in record mode, pinned to that upstream (tests/support/pin_hosts.py), and
sends the requests of the README's "Try it against the shipped cassettes" examples: the openai
SDK's "Say hello" (the same request as the README's OpenAI curl command) and streamed "Count to
five", and the README's Anthropic curl command. The proxy is stopped with SIGTERM (the store
flushes on a clean stop), then the new recordings replace cassettes/default as a whole: that
namespace holds the examples only, so a rerun gives the same files (only `recorded_at` and the
measured timings change). Needs no network and no keys; everything listens on 127.0.0.1.

tests/e2e/test_examples.py replays these files with the README's own code blocks, so a request
changed here or in the README without the other fails there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test rig: fake upstream, mitmdump launcher

import openai  # noqa: E402
from support.certs import make_certs  # noqa: E402
from support.fake_upstream import FakeUpstream  # noqa: E402
from support.proxy import (  # noqa: E402
    MANAGED_VARS,
    Proxy,
    ProxyFactory,
    ca_bundle,
    client_env,
    subprocess_env,
)

STORE = ROOT / "cassettes"
NAMESPACE = "default"
OPENAI_MODEL = "gpt-4o-mini"
STREAM_GAP_MS = "100"
"""Pause between the fake's stream events, so a replay at speed 1 visibly flows."""
ANTHROPIC_CURL = [
    "curl",
    "-sS",
    "--fail",
    "--max-time",
    "20",
    "https://api.anthropic.com/v1/messages",
    "-H",
    "content-type: application/json",
    "-H",
    "anthropic-version: 2023-06-01",
    "-d",
    '{"model":"claude-haiku-4-5","max_tokens":64,'
    '"messages":[{"role":"user","content":"Say hello"}]}',
]
"""The README's Anthropic example, argument for argument (a fixed `anthropic-version`: the
SDK sends its own release's, and that header is part of the fingerprint)."""


def record(proxy_url: str, bundle: Path) -> list[str]:
    """Send the example requests through the recording proxy; return one line per answer."""
    env = client_env(proxy_url, bundle)
    for name in MANAGED_VARS:
        os.environ.pop(name, None)
    os.environ.update(env)  # the SDK reads the proxy and CA variables when it is built
    lines = []
    with openai.OpenAI(api_key="sk-not-needed-for-replay", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=OPENAI_MODEL, messages=[{"role": "user", "content": "Say hello"}]
        )
        check(raw.headers.get("x-replay"), "openai chat")
        lines.append(f"openai chat: {raw.parse().choices[0].message.content}")

        raw_stream = client.chat.completions.with_raw_response.create(
            model=OPENAI_MODEL,
            stream=True,
            messages=[{"role": "user", "content": "Count to five"}],
            extra_headers={"x-fake-gap-ms": STREAM_GAP_MS},  # x-fake-*: not in the fingerprint
        )
        check(raw_stream.headers.get("x-replay"), "openai stream")
        with raw_stream.parse() as stream:
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        lines.append(f"openai stream: {text}")

    done = subprocess.run(
        [*ANTHROPIC_CURL, "-D", "-", "--suppress-connect-headers"],
        capture_output=True,
        env=subprocess_env(env),
        timeout=30,
    )
    if done.returncode != 0:
        raise SystemExit(f"anthropic curl failed ({done.returncode}): {done.stderr!r}")
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    outcome = next(
        (
            line.split(b":", 1)[1].strip().decode()
            for line in head.splitlines()
            if line.lower().startswith(b"x-replay:")
        ),
        None,
    )
    check(outcome, "anthropic messages")
    lines.append(f"anthropic messages: {json.loads(body)['content'][0]['text']}")
    return lines


def check(outcome: str | None, what: str) -> None:
    if outcome != "recorded":
        raise SystemExit(f"{what}: the proxy answered x-replay: {outcome}, not recorded")


def main() -> int:
    STORE.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".examples-", dir=STORE))  # dot-named: never read
    work = Path(tempfile.mkdtemp(prefix="replay-record-examples-"))
    upstream: FakeUpstream | None = None
    proxy: Proxy | None = None
    try:
        certs = make_certs(work / "certs")
        confdir = work / "mitm"
        bundle = ca_bundle(confdir)  # creates mitmproxy's CA in confdir first
        upstream = FakeUpstream(certs).start()
        factory = ProxyFactory(confdir=confdir, test_ca=certs.ca_cert, cwd=ROOT)
        proxy = factory(
            "-s",
            str(ROOT / "addons" / "replay.py"),
            "--set",
            "replay_mode=record",
            "--set",
            f"replay_dir={staging}",
            upstream_port=upstream.port,
        )
        lines = record(proxy.url, bundle)
        code = proxy.stop()  # SIGTERM: the store writes everything before the exit
        if code != 0:
            raise SystemExit(f"mitmdump exited {code}")
        new = staging / NAMESPACE
        if len(list(new.rglob("*.zst"))) != len(lines):
            raise SystemExit(f"expected {len(lines)} cassettes in {new}")
        shutil.rmtree(STORE / NAMESPACE, ignore_errors=True)
        new.rename(STORE / NAMESPACE)
    except BaseException:
        if proxy is not None:
            proxy.stop()
            print(f"--- mitmdump output ---\n{proxy.output()}", file=sys.stderr)
        raise
    finally:
        if proxy is not None:
            proxy.stop()  # by its pid; idempotent
        if upstream is not None:
            upstream.stop()
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    for path in sorted((STORE / NAMESPACE).rglob("*.zst")):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
