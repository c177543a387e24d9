"""`replay import` of recordings made by the other tools themselves (VCR.py, mitmdump's
hardump and `-w` flow files), each then replayed as a hit through a real mitmdump; the keys
those recordings hold never reach the store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import vcr
from click.testing import CliRunner
from support.certs import TestCerts
from support.fake_upstream import FakeUpstream
from support.proxy import Proxy, ProxyFactory

from replay.cli import main

pytestmark = pytest.mark.e2e

KEY = "sk-test-" + "0123456789abcdefghijklmnop"
ProxyEnv = Callable[[Proxy | None], dict[str, str]]


def body(text: str, stream: bool = False) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


def replay_proxy(factory: ProxyFactory, store: Path, *extra: str) -> Proxy:
    return factory(
        "-s",
        "addons/replay.py",
        "--set",
        f"replay_dir={store}",
        "--set",
        "replay_miss=error",
        "--set",
        "replay_speed=0",
        *extra,
        upstream_port=None,  # offline: a forward would fail to resolve
    )


def cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def assert_clean(store: Path) -> None:
    cli("verify", "--dir", str(store))
    for path in store.rglob("*.zst"):
        assert KEY.encode() not in path.read_bytes()
    assert KEY not in cli("export", "--dir", str(store))


def test_vcrpy_cassette(
    fake_upstream: FakeUpstream,
    certs: TestCerts,
    proxy_factory: ProxyFactory,
    tmp_path: Path,
) -> None:
    upstream = f"https://127.0.0.1:{fake_upstream.port}"
    cassette = tmp_path / "vcr.yaml"
    with vcr.use_cassette(str(cassette), record_mode="once"):
        recorded = requests.post(
            f"{upstream}/v1/chat/completions",
            json=body("from vcr"),
            headers={"authorization": f"Bearer {KEY}"},
            verify=str(certs.ca_cert),
            timeout=10,
        )
    assert recorded.status_code == 200 and "interactions:" in cassette.read_text()
    store = tmp_path / "store"
    cli("import", str(cassette), "--dir", str(store))
    assert_clean(store)
    fake_upstream.clear()

    proxy = replay_proxy(proxy_factory, store, "--mode", f"reverse:{upstream}")
    replayed = httpx.post(f"{proxy.url}/v1/chat/completions", json=body("from vcr"), timeout=10)
    assert replayed.headers["x-replay"] == "hit"
    assert replayed.json() == recorded.json()
    assert fake_upstream.requests == []


def test_har_and_flow_file_from_mitmdump(
    fake_upstream: FakeUpstream,
    proxy_factory: ProxyFactory,
    proxy_env: ProxyEnv,
    tmp_path: Path,
) -> None:
    har, flows = tmp_path / "traffic.har", tmp_path / "traffic.mitm"
    recorder = proxy_factory(
        "--set", f"hardump={har}", "-w", str(flows), upstream_port=fake_upstream.port
    )
    proxy_env(recorder)
    url = "https://api.openai.com/v1/chat/completions"
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(proxy=recorder.url, timeout=10) as client:
        plain = client.post(url, json=body("plain"), headers=headers)
        streamed = client.post(url, json=body("streamed", stream=True), headers=headers)
    assert plain.status_code == streamed.status_code == 200
    assert recorder.stop() == 0
    assert har.is_file() and flows.is_file()

    store = tmp_path / "store"
    cli("import", str(har), "--dir", str(store), "--namespace", "from_har")
    cli("import", str(flows), "--dir", str(store), "--namespace", "from_flows")
    assert_clean(store)
    rows = [json.loads(r) for r in cli("ls", "--json", "--dir", str(store)).splitlines()]
    assert sorted((r["namespace"], r["streamed"]) for r in rows) == [
        ("from_flows", False),
        ("from_flows", True),
        ("from_har", False),
        ("from_har", True),
    ]
    assert all(r["chunks"] > 2 for r in rows if r["streamed"])  # split into its events

    fake_upstream.clear()
    player = replay_proxy(proxy_factory, store)
    proxy_env(player)
    with httpx.Client(proxy=player.url, timeout=10) as client:
        for namespace in ("from_har", "from_flows"):
            ns = {"x-replay-cassette": namespace}
            again = client.post(url, json=body("plain"), headers=ns)
            assert again.headers["x-replay"] == "hit", again.text
            assert again.json() == plain.json()
            events = client.post(url, json=body("streamed", stream=True), headers=ns)
            assert events.headers["x-replay"] == "hit"
            assert events.text == streamed.text
    assert fake_upstream.requests == []


def test_a_file_of_no_known_format_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.yaml"
    bad.write_text("just: [a, list")
    result = CliRunner().invoke(main, ["import", str(bad), "--dir", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert result.output.startswith("replay: error: ") and "not a VCR.py cassette" in result.output
    assert len(result.output.strip().splitlines()) == 1
