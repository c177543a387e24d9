"""Every example of `examples/` runs its client against a real mitmdump with its rules file.

Each example replaces a mock server that teams write by hand; its client asserts what that
mock would have given (see examples/README.md). The proxy has an empty store and no
upstream: every answer is made up or canned by the rules, offline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.proxy import ProxyFactory, client_env, subprocess_env

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/rules.yaml"))


def test_every_example_has_a_client_and_a_readme_line() -> None:
    assert len(EXAMPLES) >= 4
    index = (ROOT / "examples" / "README.md").read_text()
    for name in EXAMPLES:
        assert (ROOT / "examples" / name / "client.py").is_file(), name
        assert f"`{name}/`" in index, name


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_client_passes_through_the_proxy(
    name: str, proxy_factory: ProxyFactory, bundle: Path, tmp_path: Path
) -> None:
    example = ROOT / "examples" / name
    speed = "1" if name == "openai-stub" else "0"  # the stub's delays are part of its point
    proxy = proxy_factory(
        "-s",
        "addons/replay.py",
        "--set",
        f"replay_dir={tmp_path / 'store'}",
        "--set",
        f"replay_rules={example / 'rules.yaml'}",
        "--set",
        f"replay_speed={speed}",
        "--set",
        f"replay_report={tmp_path / 'report.jsonl'}",
        upstream_port=None,
    )
    done = subprocess.run(
        [sys.executable, str(example / "client.py")],
        env=subprocess_env(client_env(proxy, bundle)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr + proxy.output()
    assert f"{name}: ok" in done.stdout
    report = (tmp_path / "report.jsonl").read_text()
    assert '"outcome": "synthetic"' in report or '"outcome":"synthetic"' in report
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").rglob("*.zst"))
