"""The README's control endpoint commands, run verbatim with curl against a real mitmdump."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support import docblocks
from support.proxy import ProxyFactory, subprocess_env

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_control_block() -> str:
    return docblocks.block(README, "### The control endpoint", "sh")


def test_readme_commands_switch_the_namespace_and_read_the_outcomes(
    proxy_factory: ProxyFactory, tmp_path: Path
) -> None:
    proxy = proxy_factory(
        "-s", "addons/replay.py", "--set", f"replay_dir={tmp_path}", upstream_port=None
    )
    script = readme_control_block().replace("P=http://127.0.0.1:8080", f"P={proxy.url}")
    assert proxy.url in script
    # A request of the test between the switch and the read: a miss, made up.
    ask = (
        'curl -s -o /dev/null -x $P --cacert "$CA" https://api.openai.com/v1/chat/completions '
        '-H \'content-type: application/json\' -d \'{"model":"m","messages":[]}\'\n'
    )
    first, second = script.splitlines(keepends=True)[1:3]
    run = script.splitlines(keepends=True)[0] + first + ask + "echo\n" + second
    ca = proxy_factory.confdir / "mitmproxy-ca-cert.pem"
    out = subprocess.run(
        ["bash", "-euc", run],
        env=subprocess_env({"CA": str(ca)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    switched, outcomes = json.loads(out[0]), json.loads(out[1])
    assert switched["namespace"] == "tests/test_chat/test_summary"
    [line] = outcomes["outcomes"]
    assert (line["outcome"], line["namespace"]) == ("synthetic", "tests/test_chat/test_summary")
    assert line["url"] == "https://api.openai.com/v1/chat/completions"
    assert outcomes["in_flight"] == 0
    unknown = subprocess.run(
        ["curl", "-s", "-x", proxy.url, "http://replay.control/nope"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "no control endpoint /nope" in json.loads(unknown.stdout)["error"]
