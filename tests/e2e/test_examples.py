"""The README's "Try it" examples and `make run`'s instructions hit the shipped cassettes.

A replay proxy with no upstream serves the repository's own `cassettes/` (what `make run`
serves). The code is taken from the README itself (its sh block's curl commands, its python
block) and from what tools/run_demo.py prints, so neither can drift from the recordings made
by tools/record_examples.py (`make cassettes`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.proxy import READY_PATTERN, Proxy, ProxyFactory, client_env, subprocess_env

from replay import codec

pytestmark = pytest.mark.e2e

ProxyEnv = Callable[[Proxy | None], dict[str, str]]
ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "cassettes"
SECTION = "## Try it against the shipped cassettes"
HELLO = "echo: Say hello #0"
COUNT = "echo: Count to five #0"


def readme_block(lang: str) -> str:
    """The first ```lang block of the README's "Try it" section."""
    section = (ROOT / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"^```{lang}\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match, f"no {lang} block under {SECTION!r}"
    return match.group(1)


def curl_commands(script: str) -> list[str]:
    """The curl commands of a shell script, backslash continuations joined."""
    joined = script.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.startswith("curl ")]


def shipped() -> dict[str, Path]:
    """Fingerprint → file, for every example cassette."""
    files = sorted(p for p in (STORE / "default").rglob("*.zst") if not p.name.startswith("."))
    return {p.name.split(".")[0]: p for p in files}


def curl(command: str, env: dict[str, str]) -> tuple[dict[str, str], bytes]:
    """Run a README curl command (plus `-D -` to see the headers) with `env`."""
    done = subprocess.run(
        ["bash", "-c", command + " -D - --suppress-connect-headers --max-time 10"],
        capture_output=True,
        env=subprocess_env(env),
        timeout=20,
        check=True,
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    headers = dict(
        (k.strip().lower(), v.strip())
        for k, _, v in (line.decode().partition(":") for line in head.splitlines()[1:])
    )
    return headers, body


def test_readme_and_make_run_examples_hit_the_shipped_cassettes(
    proxy_factory: ProxyFactory,
    proxy_env: ProxyEnv,
    bundle: Path,
    confdir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert len(shipped()) == 3, "run `make cassettes`"
    report = tmp_path / "report.jsonl"
    proxy = proxy_factory(
        "-s",
        "addons/replay.py",
        "--set",
        f"replay_dir={STORE}",
        "--set",
        f"replay_report={report}",
        upstream_port=None,
    )
    commands = curl_commands(readme_block("sh"))
    assert len(commands) == 2

    # What `make run` prints: the README's first curl command, and lines that work as
    # printed (run in the background while the rest runs: a python start-up takes a second).
    printed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "run_demo.py"),
            "--print-only",
            "--port",
            str(proxy.port),
            "--confdir",
            str(confdir),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env=subprocess_env({}),
    ).stdout
    assert curl_commands(printed) == commands[:1]
    script = "\n".join(
        line
        for line in printed.splitlines()
        if line.startswith(("export ", "curl ", "  -d ", "python3 "))
    )
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    shell = subprocess.Popen(
        ["bash", "-euc", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=subprocess_env({"PATH": path}),
    )
    try:
        check_readme_examples(commands, client_env(proxy, bundle), proxy_env, proxy, capsys)
        check_sdk_headers_and_timing()
        out, _ = shell.communicate(timeout=30)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)  # the group started above, by its id
            shell.wait()
    assert shell.returncode == 0 and out.count(HELLO) == 2, out

    proxy.stop()
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert {line["outcome"] for line in lines} == {"hit"}
    assert {line["fingerprint"] for line in lines} == set(shipped())  # no unused cassette


def check_readme_examples(
    commands: list[str],
    env: dict[str, str],
    proxy_env: ProxyEnv,
    proxy: Proxy,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's curl commands and python block, verbatim."""
    headers, body = curl(commands[0], env)
    assert headers["x-replay"] == "hit"
    assert json.loads(body)["choices"][0]["message"]["content"] == HELLO
    headers, body = curl(commands[1], env)
    assert headers["x-replay"] == "hit"
    assert json.loads(body)["content"][0]["text"] == HELLO

    proxy_env(proxy)  # the SDK reads HTTPS_PROXY and SSL_CERT_FILE when it is built
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(readme_block("python"), "README.md", "exec"), namespace)
    namespace["client"].close()
    assert capsys.readouterr().out == f"{HELLO}\n{COUNT}\n"


def check_sdk_headers_and_timing() -> None:
    """The README's SDK calls again, looking at the headers and the stream's timing."""
    import openai

    with openai.OpenAI(api_key="sk-not-needed-for-replay", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello"}]
        )
        assert raw.headers["x-replay"] == "hit"
        assert raw.parse().choices[0].message.content == HELLO
        raw_stream = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            stream=True,
            messages=[{"role": "user", "content": "Count to five"}],
        )
        assert raw_stream.headers["x-replay"] == "hit"
        pieces, times = [], []
        with raw_stream.parse() as stream:
            for chunk in stream:
                pieces.append(chunk.choices[0].delta.content or "")
                times.append(time.monotonic())
    assert "".join(pieces) == COUNT
    path = shipped()[raw_stream.headers["x-replay-fingerprint"]]
    recorded = codec.decode(path.read_bytes(), str(path))
    span = recorded.chunks[-1].offset - recorded.chunks[0].offset
    assert span >= 0.3  # recorded with x-fake-gap-ms, so a replay at speed 1 visibly flows
    assert times[-1] - times[0] >= 0.8 * span


def test_use_it_on_your_own_suite_works_verbatim_from_a_checkout(
    confdir: Path, bundle: Path
) -> None:
    section = "## Use it on your own suite"
    text = (ROOT / "README.md").read_text().split(section, 1)[1].split("\n## ", 1)[0]
    match = re.search(r"^```sh\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    assert match
    lines = [line for line in match.group(1).replace("\\\n", " ").splitlines() if line.strip()]
    assert lines[0].split("#")[0].split() == ["make", "install"]
    assert re.search(r"^install:", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert lines[1].split("#")[0].split() == [".", ".venv/bin/activate"]
    venv_bin = Path(sys.executable).parent  # what activate puts first on PATH
    assert (venv_bin / "mitmdump").is_file()
    [ci] = [line for line in lines if line.startswith("mitmdump") and "replay_miss=error" in line]
    command = ci.replace("-p 8080", "-p 0") + f" --set confdir={confdir}"
    env = subprocess_env({"PATH": f"{venv_bin}:{os.environ['PATH']}", "PYTHONUNBUFFERED": "1"})
    proc = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    proxy = Proxy(proc, READY_PATTERN)
    try:
        proxy.wait_ready(20)
        env = client_env(proxy, bundle)
        body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"unrecorded"}]}'
        headers, answer = curl(
            "curl -s https://api.openai.com/v1/chat/completions "
            f"-H 'content-type: application/json' -d '{body}'",
            env,
        )
        assert headers["x-replay"] == "miss" and b"replay_no_cassette" in answer
    finally:
        assert proxy.stop() == 0
    assert "first difference" in proxy.output()  # the miss was logged with its nearest
