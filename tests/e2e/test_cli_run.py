"""`replay run` as a user runs it: a real `replay` process, a real mitmdump, the openai SDK
in the wrapped command, exit codes, the summary, `--strict`, signals and a drained recording."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import cassettes
from support.certs import TestCerts
from support.fake_upstream import FakeUpstream
from support.proxy import subprocess_env

from replay.store import Store

pytestmark = pytest.mark.e2e

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    import openai

    def on_sigint(signum, frame):
        sys.exit(42)

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(43))
    question, code, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    client = openai.OpenAI(api_key="test-key", max_retries=0)
    try:
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
        print("ANSWER:", answer.choices[0].message.content, flush=True)
    except openai.APIStatusError as e:
        print("STATUS:", e.status_code, flush=True)
    if marker != "-":
        Path(marker).write_text("asked")
        time.sleep(30)
    sys.exit(code)
    """
)


def replay_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "replay", "run", *args]


def run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = subprocess_env({"PYTHONUNBUFFERED": "1"})
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def child(tmp_path: Path) -> Path:
    path = tmp_path / "child.py"
    path.write_text(CHILD)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "cassettes"
    req = cassettes.chat("What is 2+2?")
    cassettes.write(root, [cassettes.interaction(req, [cassettes.completion("Four.")])])
    return root


def report_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_hit_through_the_proxy_and_the_commands_exit_code(
    store: Path, child: Path, confdir: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.jsonl"
    args = ["--dir", str(store), "--confdir", str(confdir), "--report", str(report)]
    done = run(replay_cmd(*args, "--", sys.executable, str(child), "What is 2+2?", "7", "-"))
    assert done.returncode == 7, done.stderr
    assert "ANSWER: Four." in done.stdout
    assert "replay: 1 request: 1 hit" in done.stderr
    [line] = report_lines(report)
    assert line["outcome"] == "hit" and line["url"] == "https://api.openai.com/v1/chat/completions"


def test_a_miss_is_summarised_and_fails_strict(
    store: Path, child: Path, confdir: Path, tmp_path: Path
) -> None:
    cmd = [sys.executable, str(child), "What is 3+3?", "0", "-"]
    args = ["--dir", str(store), "--confdir", str(confdir), "--miss", "error"]
    lenient = run(replay_cmd(*args, "--", *cmd))
    assert lenient.returncode == 0, lenient.stderr
    assert "STATUS: 404" in lenient.stdout
    assert "1 request: 1 miss" in lenient.stderr
    assert "miss POST https://api.openai.com/v1/chat/completions" in lenient.stderr

    strict = run(replay_cmd(*args, "--strict", "--", *cmd))
    assert strict.returncode == 1
    assert "--strict: 1 request(s) not served from the store" in strict.stderr
    assert "miss POST https://api.openai.com/v1/chat/completions" in strict.stderr

    # The command's own failure wins over --strict's.
    failing = run(replay_cmd(*args, "--strict", "--", *cmd[:3], "5", "-"))
    assert failing.returncode == 5


def interrupted(cmd: list[str], marker: Path, signum: int) -> tuple[int, str, str]:
    """Run `replay run` until its command made its request (`marker`), send it `signum`;
    (exit code, stdout, stderr)."""
    env = subprocess_env({"PYTHONUNBUFFERED": "1"})
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the command never made its request"
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def test_sigint_reaches_the_command_and_the_recording_is_drained(
    child: Path,
    confdir: Path,
    certs: TestCerts,
    fake_upstream: FakeUpstream,
    tmp_path: Path,
) -> None:
    store, marker = tmp_path / "recorded", tmp_path / "asked"
    args = [
        "--dir",
        str(store),
        "--confdir",
        str(confdir),
        "--mode",
        "record",
        "--upstream",
        f"https://127.0.0.1:{fake_upstream.port}",
        "--set",
        f"ssl_verify_upstream_trusted_ca={certs.ca_cert}",
        "--",
        sys.executable,
        str(child),
        "Record me",
        "0",
        str(marker),
    ]
    code, out, _ = interrupted(replay_cmd(*args), marker, signal.SIGINT)
    assert code == 42  # the child's SIGINT handler ran, its code came back
    assert "ANSWER:" in out
    [(path, key)] = list(Store(store).entries())
    assert key.occurrence == 0 and path.stat().st_size > 0
    assert [r.path for r in fake_upstream.requests] == ["/v1/chat/completions"]


def test_sigterm_is_forwarded_and_the_summary_still_printed(
    store: Path, child: Path, confdir: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "asked"
    args = ["--dir", str(store), "--confdir", str(confdir), "--"]
    cmd = replay_cmd(*args, sys.executable, str(child), "What is 2+2?", "0", str(marker))
    code, out, err = interrupted(cmd, marker, signal.SIGTERM)
    assert code == 43
    assert "ANSWER: Four." in out and "replay: 1 request: 1 hit" in err


def test_a_proxy_that_cannot_start_is_one_line(confdir: Path, tmp_path: Path) -> None:
    done = run(
        replay_cmd("--confdir", str(confdir), "--set", "replay_speed=fast", "--", "true"),
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replay: error: the proxy did not start")
    assert "replay_speed" in lines[0]
