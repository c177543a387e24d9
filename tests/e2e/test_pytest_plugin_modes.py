"""How the pytest plugin is switched on, attached, and how it fails: pytester runs, with
real mitmdump processes where a proxy is involved."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.certs import TestCerts
from support.fake_upstream import FakeUpstream
from support.proxy import ProxyFactory

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]  # a pytest run each
pytest_plugins = ["pytester"]

CHAT = """
import os
import httpx
import pytest


def chat(text):
    return httpx.post(
        "https://api.openai.com/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
        headers={"authorization": "Bearer sk-test-0000000000000000000000"},
        timeout=30,
    )
"""


def test_inactive_unless_asked_for(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os

        def test_plain():
            assert "HTTPS_PROXY" not in os.environ

        def test_wants_the_fixture(replay):
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*the replay fixture needs the replay plugin: run pytest with --replay*"]
    )


def test_a_marker_with_unknown_arguments_is_an_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.replay(casette="typo")
        def test_typo():
            pass

        @pytest.mark.replay(cassette="../up")
        def test_bad_name():
            pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    out = result.stdout.str()
    assert "@pytest.mark.replay takes cassette=, mode=, rules=, miss= (got ['casette'])" in out
    assert "@pytest.mark.replay cassette: invalid namespace '../up': segment '..'" in out
    assert "During handling" not in out


def test_only_marked_tests_go_through_the_proxy(
    pytester: pytest.Pytester, confdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MITM_CA", str(confdir / "mitmproxy-ca-cert.pem"))
    pytester.makepyfile(
        CHAT
        + """
def test_before():
    assert "HTTPS_PROXY" not in os.environ

@pytest.mark.replay(miss="error")
def test_marked(replay):
    assert os.environ["HTTPS_PROXY"] == replay.proxy_url
    assert os.environ["NO_PROXY"] == "localhost,127.0.0.1,::1"
    bundle = open(os.environ["SSL_CERT_FILE"]).read()
    assert bundle.count("BEGIN CERTIFICATE") > 10  # the system roots
    assert open(os.environ["MITM_CA"]).read().strip() in bundle  # and mitmproxy's CA
    answer = chat("nobody recorded this")
    assert answer.status_code == 404 and answer.headers["x-replay"] == "miss"
    [seen] = replay.outcomes
    assert seen.outcome == "miss" and seen.namespace.endswith("_proxy/test_marked")

def test_after():
    assert "HTTPS_PROXY" not in os.environ
"""
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--replay-set=confdir={confdir}", timeout=120
    )
    result.assert_outcomes(passed=3)


def test_a_proxy_that_cannot_start_fails_each_test_with_its_reason(
    pytester: pytest.Pytester, confdir: Path
) -> None:
    pytester.makepyfile("def test_one():\n    pass\n\ndef test_two():\n    pass\n")
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--replay",
        f"--replay-set=confdir={confdir}",
        "--replay-set=replay_speed=-1",
        timeout=120,
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*replay: the proxy did not start:*replay_speed*"])


def test_an_attached_proxy_is_driven_through_its_control_endpoint(
    pytester: pytest.Pytester,
    proxy_factory: ProxyFactory,
    fake_upstream: FakeUpstream,
    certs: TestCerts,
    confdir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "store"
    proxy = proxy_factory(
        "-s",
        "addons/replay.py",
        "--set",
        f"replay_dir={store}",
        "--set",
        "replay_mode=record",
        upstream_port=fake_upstream.port,
    )
    pytester.makepyfile(
        CHAT
        + """
@pytest.mark.parametrize("n", [1, 2])
def test_ask(replay, n):
    assert chat("same question").headers["x-replay"] == "recorded"
    assert replay.proxy_url.startswith("http://127.0.0.1:")

@pytest.mark.replay(mode="passthrough")
def test_marked_passthrough():
    assert chat("same question").headers["x-replay"] == "forwarded"

def test_then_the_proxy_records_again():
    assert chat("same question").headers["x-replay"] == "recorded"
"""
    )
    monkeypatch.setenv("REPLAY_PROXY", proxy.url)
    ca = confdir / "mitmproxy-ca-cert.pem"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--replay", f"--replay-ca={ca}", timeout=120
    )
    result.assert_outcomes(passed=4)
    proxy.stop()
    recorded = sorted(p.relative_to(store).parts[:2] for p in store.rglob("*.0.zst"))
    prefix = "test_an_attached_proxy_is_driven_through_its_control_endpoint"
    assert recorded == [
        (prefix, "test_ask[1]"),
        (prefix, "test_ask[2]"),
        (prefix, "test_then_the_proxy_records_again"),
    ]
    assert not list(store.rglob("*.1.zst"))  # each test counted from 0
