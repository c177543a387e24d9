"""docs/languages.md: its curl command run verbatim through a real proxy, and its Node
snippet kept equal to the client that tests/e2e/test_node.py runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import docblocks
from support.proxy import ProxyFactory, subprocess_env

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "languages.md"


def block(heading: str, lang: str) -> str:
    return docblocks.block(DOC, heading, lang)


def test_the_curl_command_goes_through_the_proxy(
    proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    proxy = proxy_factory(
        "-s", "addons/replay.py", "--set", f"replay_dir={tmp_path}", upstream_port=None
    )
    command = block("## curl", "sh")
    ca = proxy_factory.confdir / "mitmproxy-ca-cert.pem"
    command = command.replace("http://127.0.0.1:8080", proxy.url)
    command = command.replace("~/.mitmproxy/mitmproxy-ca-cert.pem", str(ca))
    done = subprocess.run(
        ["bash", "-euc", command],
        env=subprocess_env({"OPENAI_API_KEY": "sk-test-curl-000000000000000000000"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # -i shows the proxy's "Connection established", then the answer (CRLF read as LF)
    head, _, body = done.stdout.rsplit("\nHTTP/", 1)[1].partition("\n\n")
    assert "x-replay: synthetic" in head
    assert '"object":"chat.completion"' in body.replace(" ", "")


def test_the_node_snippet_is_what_the_node_test_runs() -> None:
    client = (ROOT / "tests" / "node" / "clients.mjs").read_text()
    snippet = block("## Node", "js")
    for line in (
        'import { EnvHttpProxyAgent, setGlobalDispatcher } from "undici";',
        "setGlobalDispatcher(new EnvHttpProxyAgent());",
        'import OpenAI from "openai";',
    ):
        assert line in snippet and line in client
