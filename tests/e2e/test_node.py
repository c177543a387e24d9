"""Node 20 clients through replay: the official `openai` and `@anthropic-ai/sdk` npm packages,
recorded through HTTPS_PROXY (undici's EnvHttpProxyAgent, NODE_EXTRA_CA_CERTS) and replayed
through reverse mode (base URLs), as docs/languages.md shows.

The npm packages (pinned in tests/node/package-lock.json) are installed once into
build/node, with npm's cache in build/npm-cache. Where there is no `node` (>= 20) or `npm`,
these tests are skipped and say so.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from support.fake_upstream import FakeUpstream
from support.proxy import ProxyFactory, subprocess_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]  # npm ci the first time
ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "node"
BUILD = ROOT / "build" / "node"


def node_version() -> tuple[int, ...] | None:
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    return tuple(int(p) for p in out.stdout.strip().lstrip("v").split(".")[:2])


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """build/node with the pinned packages and the client script; skips without node."""
    version = node_version()
    if version is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not on PATH: the Node clients are not tested here")
    if version < (20,):
        pytest.skip(f"node {version} is older than 20: the Node clients are not tested here")
    lock = (SOURCE / "package-lock.json").read_bytes()
    stamp = BUILD / ".installed"
    wanted = hashlib.sha256(lock).hexdigest()
    if not stamp.is_file() or stamp.read_text() != wanted:
        BUILD.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(SOURCE / name, BUILD / name)
        subprocess.run(
            ["npm", "ci", "--cache", str(ROOT / "build" / "npm-cache"), "--no-audit", "--no-fund"],
            cwd=BUILD,
            check=True,
            capture_output=True,
            timeout=600,
        )
        stamp.write_text(wanted)
    shutil.copy(SOURCE / "clients.mjs", BUILD / "clients.mjs")
    return BUILD / "clients.mjs"


def run_node(script: Path, how: str, env: dict[str, str]) -> dict[str, dict[str, str]]:
    done = subprocess.run(
        ["node", str(script), how],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    return {a["sdk"]: a for a in answers}


def test_node_sdks_record_through_https_proxy_and_replay_through_reverse_mode(
    node_clients: Path,
    proxy_factory: ProxyFactory,
    fake_upstream: FakeUpstream,
    tmp_path: Path,
) -> None:
    store = ["--set", f"replay_dir={tmp_path}", "--set", "replay_speed=0"]
    ca = {"NODE_EXTRA_CA_CERTS": str(proxy_factory.confdir / "mitmproxy-ca-cert.pem")}
    recorder = proxy_factory(
        "-s", "addons/replay.py", *store, "--set", "replay_mode=record",
        upstream_port=fake_upstream.port,
    )  # fmt: skip
    proxy_env = {"HTTPS_PROXY": recorder.url, "NO_PROXY": "localhost,127.0.0.1,::1", **ca}
    recorded = run_node(node_clients, "proxy", proxy_env)
    assert {a["x_replay"] for a in recorded.values()} == {"recorded"}
    assert recorded["openai"]["text"] == "echo: What is a cassette? #0"
    assert recorded["anthropic"]["text"].startswith("echo: What is a cassette?")
    recorder.stop()
    asked = len(fake_upstream.requests)

    strict = [*store, "--set", "replay_miss=error"]
    openai_rev = proxy_factory(
        "--mode", "reverse:https://api.openai.com", "-s", "addons/replay.py", *strict,
        upstream_port=None,
    )  # fmt: skip
    anthropic_rev = proxy_factory(
        "--mode", "reverse:https://api.anthropic.com", "-s", "addons/replay.py", *strict,
        upstream_port=None,
    )  # fmt: skip
    reverse_env = {
        "OPENAI_BASE_URL": f"{openai_rev.url}/v1",
        "ANTHROPIC_BASE_URL": anthropic_rev.url,
    }
    replayed = run_node(node_clients, "reverse", reverse_env)
    assert {a["x_replay"] for a in replayed.values()} == {"hit"}
    assert {k: a["text"] for k, a in replayed.items()} == {
        k: a["text"] for k, a in recorded.items()
    }
    replayer = proxy_factory("-s", "addons/replay.py", *strict, upstream_port=None)
    again = run_node(node_clients, "proxy", {**proxy_env, "HTTPS_PROXY": replayer.url})
    assert {a["x_replay"] for a in again.values()} == {"hit"}
    assert len(fake_upstream.requests) == asked  # replay never reached the upstream
