"""The pytest plugin driven with pytester: real pytest subprocesses, each starting its own
mitmdump with the addon, the official openai and anthropic SDKs going through it by
HTTPS_PROXY, and the fake upstream behind it (pinned with tests/support/pin_hosts.py, passed
through the plugin's --replay-script and --replay-set)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.certs import TestCerts
from support.fake_upstream import FakeUpstream
from support.proxy import PIN_HOSTS_SCRIPT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]  # several pytest runs each
pytest_plugins = ["pytester"]

SUITE = '''
import hashlib, json, os
from pathlib import Path

import anthropic
import openai
import pytest


def keep(request, answers):
    """Write this test's answers to results/<run>/ (one file per test: xdist-safe)."""
    out = Path(request.config.rootpath) / "results" / os.environ["RUN"]
    out.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    (out / f"{name}.json").write_text(json.dumps([request.node.nodeid, answers]))


def ask_openai(text):
    client = openai.OpenAI(api_key="sk-test-not-a-real-key-000000000000", max_retries=0)
    r = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    return r.choices[0].message.content


def ask_anthropic(text):
    client = anthropic.Anthropic(api_key="sk-ant-test-not-a-real-key-0000000", max_retries=0)
    r = client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": text}],
    )
    return r.content[0].text


def test_openai_twice(request, replay):
    keep(request, [ask_openai(PROMPT), ask_openai(PROMPT)])
    assert [o.outcome for o in replay.outcomes] == [OUTCOME, OUTCOME]


def test_openai_once(request):
    keep(request, [ask_openai(PROMPT)])


@pytest.mark.parametrize("word", ["alpha", "be/ta"])
def test_anthropic(request, word):
    keep(request, [ask_anthropic(word), ask_anthropic(PROMPT)])


@pytest.mark.replay(cassette="shared/named")
def test_named_cassette(request, replay):
    assert replay.namespace == "shared/named"
    keep(request, [ask_openai(PROMPT)])
'''

CONFTEST = """
import os

def pytest_collection_modifyitems(items):
    if os.environ.get("REVERSE"):
        items.reverse()
"""


@pytest.fixture
def suite(
    pytester: pytest.Pytester,
    fake_upstream: FakeUpstream,
    certs: TestCerts,
    confdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Suite:
    pytester.makeini("[pytest]\nreplay = true\n")
    pytester.makeconftest(CONFTEST)
    return Suite(pytester, fake_upstream, certs, confdir, monkeypatch)


class Suite:
    """The inner suite, and how to run it."""

    def __init__(
        self,
        pytester: pytest.Pytester,
        upstream: FakeUpstream,
        certs: TestCerts,
        confdir: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.pytester, self.upstream, self.monkeypatch = pytester, upstream, monkeypatch
        self.root = pytester.path
        self.base = [
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            f"--replay-script={PIN_HOSTS_SCRIPT}",
            f"--replay-set=pin_upstream={upstream.pin}",
            f"--replay-set=ssl_verify_upstream_trusted_ca={certs.ca_cert}",
            f"--replay-set=confdir={confdir}",
        ]
        self.write("what is a cassette?", "recorded")

    def write(self, prompt: str, outcome: str) -> None:
        header = f"PROMPT = {prompt!r}\nOUTCOME = {outcome!r}\n"
        self.pytester.makepyfile(test_suite=header + SUITE)

    def run(self, run: str, *args: str, reverse: bool = False) -> pytest.RunResult:
        self.monkeypatch.setenv("RUN", run)
        if reverse:
            self.monkeypatch.setenv("REVERSE", "1")
        else:
            self.monkeypatch.delenv("REVERSE", raising=False)
        return self.pytester.runpytest_subprocess(*self.base, *args, timeout=180)

    def results(self, run: str) -> dict[str, list[str]]:
        found = {}
        for path in (self.root / "results" / run).glob("*.json"):
            nodeid, answers = json.loads(path.read_text())
            found[nodeid] = answers
        return found

    def files(self) -> dict[str, float]:
        """Every cassette file (relative path) and its modification time."""
        root = self.root / "cassettes"
        return {p.relative_to(root).as_posix(): p.stat().st_mtime for p in root.rglob("*.zst")}


def namespaces(files: dict[str, float]) -> set[str]:
    return {path.rsplit("/", 2)[0] for path in files}


def test_record_then_replay_alone_in_reverse_and_under_xdist(suite: Suite) -> None:
    recorded = suite.run("record", "--replay-mode=record")
    recorded.assert_outcomes(passed=5)
    assert namespaces(suite.files()) == {
        "test_suite/test_openai_twice",
        "test_suite/test_openai_once",
        "test_suite/test_anthropic[alpha]",
        "test_suite/test_anthropic[be_ta]-" + namespace_hash("be/ta"),
        "shared/named",
    }
    asked = len(suite.upstream.requests)
    assert asked == 8
    answers = suite.results("record")
    # The fake answers the nth identical request with "#n", counted over the whole run: the
    # same question asked by several tests got different answers, each test keeps its own.
    openai_answers = sorted(a for t, ans in answers.items() if "anthropic" not in t for a in ans)
    assert openai_answers == [f"echo: what is a cassette? #{n}" for n in range(4)]

    suite.write("what is a cassette?", "hit")
    strict = ("--replay-miss=error", "--replay-strict")
    suite.run("forward", *strict).assert_outcomes(passed=5)
    suite.run("reverse", *strict, reverse=True).assert_outcomes(passed=5)
    xdist = suite.run("xdist", *strict, "-p", "xdist", "-n", "2")
    xdist.assert_outcomes(passed=5)
    one = suite.run("alone", *strict, "test_suite.py::test_anthropic[be/ta]")
    one.assert_outcomes(passed=1)
    assert len(suite.upstream.requests) == asked  # replay never went upstream
    for run in ("forward", "reverse", "xdist"):
        assert suite.results(run) == answers, run
    [(nodeid, alone)] = suite.results("alone").items()
    assert answers[nodeid] == alone


def namespace_hash(segment: str) -> str:
    import hashlib

    return hashlib.sha256(f"test_anthropic[{segment}]".encode()).hexdigest()[:8]


def test_strict_fails_a_test_that_missed_naming_its_nearest_recording(suite: Suite) -> None:
    suite.run("record", "--replay-mode=record").assert_outcomes(passed=5)
    suite.write("what is a cassette, really?", "synthetic")
    result = suite.run("edited", "--replay-strict", "-k", "openai_once or named")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "replay strict: 1 request(s) of this test were not replayed from its cassette" in out
    assert "(namespace 'test_suite/test_openai_once')" in out
    assert "(namespace 'shared/named')" in out
    assert "synthetic POST https://api.openai.com/v1/chat/completions (gpt-4o-mini)" in out
    assert "first difference: body.json.messages.0.content" in out
    assert "Record them with --replay-mode=record" in out
    # Without --replay-strict the same tests pass on synthetic answers.
    suite.run("lenient", "-k", "openai_once or named").assert_outcomes(passed=2)


def test_recording_one_test_again_replaces_only_its_own_cassette(suite: Suite) -> None:
    suite.run("record", "--replay-mode=record").assert_outcomes(passed=5)
    before = suite.files()
    suite.write("a new question", "recorded")
    again = suite.run("again", "--replay-mode=record", "test_suite.py::test_openai_twice")
    again.assert_outcomes(passed=1)
    after = suite.files()
    mine = "test_suite/test_openai_twice/"
    assert {p: t for p, t in after.items() if not p.startswith(mine)} == {
        p: t for p, t in before.items() if not p.startswith(mine)
    }
    old = {p for p in before if p.startswith(mine)}
    new = {p for p in after if p.startswith(mine)}
    assert len(old) == len(new) == 2 and not old & new  # the stale recordings are gone
    suite.write("a new question", "hit")
    strict = ("--replay-miss=error", "--replay-strict", "test_suite.py::test_openai_twice")
    suite.run("replayed", *strict).assert_outcomes(passed=1)
