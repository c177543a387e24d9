"""The README's "Day to day" section, run command by command as written, on a small pytest
suite that calls OpenAI through the openai SDK: record, replay strictly, a miss after a
prompt changed, inspect, verify, commit, prune. The only additions are environment
variables (click's REPLAY_RUN_<OPTION>) that pin the provider to the local fake upstream."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.certs import TestCerts
from support.fake_upstream import FakeUpstream
from support.proxy import PIN_HOSTS_SCRIPT, subprocess_env

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
SUITE = """
import openai

def ask(text):
    client = openai.OpenAI(api_key="test-key", max_retries=0)
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    return answer.choices[0].message.content

def test_summary():
    assert ask("SUMMARY_PROMPT")

def test_title():
    assert ask("Give the meeting a title")
"""


def readme_blocks() -> list[list[str]]:
    section = README.read_text().split("<!-- day-to-day", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    return [
        [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
        for block in blocks
    ]


def test_the_day_to_day_section(
    tmp_path: Path, confdir: Path, certs: TestCerts, fake_upstream: FakeUpstream
) -> None:
    blocks = readme_blocks()
    assert [len(b) for b in blocks] == [2, 2, 4, 3], blocks
    project = tmp_path / "project"
    project.mkdir()
    suite = project / "test_suite.py"
    suite.write_text(SUITE.replace("SUMMARY_PROMPT", "Summarise the meeting"))
    env = subprocess_env(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "REPLAY_RUN_CONFDIR": str(confdir),
            "REPLAY_RUN_SCRIPT": str(PIN_HOSTS_SCRIPT),
            "REPLAY_RUN_SET": (
                f"pin_upstream={fake_upstream.pin} ssl_verify_upstream_trusted_ca={certs.ca_cert}"
            ),
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.invalid",
            "GIT_CONFIG_GLOBAL": os.devnull,
        }
    )

    def sh(command: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            command, shell=True, cwd=project, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == expect, (command, done.stdout, done.stderr)
        return done

    sh("git init -q")
    store = project / "cassettes"

    record, replay = blocks[0]
    sh(record)
    assert len(list(store.rglob("*.zst"))) == 2
    assert "2 request" in sh(replay).stderr and "2 hit" in sh(replay).stderr
    upstream_calls = len(fake_upstream.requests)

    # A prompt changes: strict replay fails and names the request.
    suite.write_text(SUITE.replace("SUMMARY_PROMPT", "Summarise the meeting in French"))
    failed = sh(replay, expect=1)
    assert "synthetic POST https://api.openai.com/v1/chat/completions" in failed.stderr
    assert len(fake_upstream.requests) == upstream_calls  # replay never went upstream

    ls, show = blocks[1]
    listed = sh(ls).stdout
    assert listed.count("api.openai.com") == 2
    rows = json.loads("[" + ",".join(sh("replay ls --json").stdout.splitlines()) + "]")
    prefix = str(rows[0]["fingerprint"])[:8]
    shown = sh(show.replace("<FP-PREFIX>", prefix)).stdout
    assert "POST https://api.openai.com/v1/chat/completions" in shown

    for command in blocks[2]:
        sh(command)
    assert (project / ".gitattributes").read_text() == "*.zst diff=replay\n"
    assert sh("git ls-files cassettes").stdout.count(".zst") == 2

    run, dry, prune = blocks[3]
    sh(run)
    assert (project / "run.jsonl").is_file()
    would = [ln for ln in sh(dry).stdout.splitlines() if ln.startswith("would remove")]
    assert len(would) == 1 and len(list(store.rglob("*.zst"))) == 2
    sh(prune)
    [kept] = list(store.rglob("*.zst"))
    assert would[0] != f"would remove {kept}"
