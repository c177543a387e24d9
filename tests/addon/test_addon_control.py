"""The control endpoint through the addon's hooks (taddons + tflow, no sockets)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from addon.test_addon import chat_flow, request
from mitmproxy import http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons, tflow

from replay.mitm.addon import ReplayAddon


@pytest.fixture
def addon(tmp_path: Path) -> Iterator[tuple[ReplayAddon, taddons.context]]:
    a = ReplayAddon()
    with taddons.context(Proxyserver(), a) as tctx:
        tctx.options.update(replay_dir=str(tmp_path), replay_miss="error")
        a.configure(set(tctx.options.keys()))
        yield a, tctx
        a.done()


def control(
    a: ReplayAddon, method: str, path: str, body: object = None, peer: str = "127.0.0.1"
) -> http.HTTPFlow:
    f = tflow.tflow()
    f.client_conn.peername = (peer, 50000)
    f.request.scheme, f.request.host, f.request.port = "http", "replay.control", 80
    f.request.method, f.request.path = method, path
    f.request.headers.clear()
    f.request.content = b"" if body is None else json.dumps(body).encode()
    request(a, f)
    assert f.response is not None
    return f


def test_switch_changes_replay_cassette_for_the_following_requests(
    addon: tuple[ReplayAddon, taddons.context], tmp_path: Path
) -> None:
    a, tctx = addon
    f = control(a, "POST", "/switch", {"namespace": "tests/test_x/test_y[1]", "mode": "record"})
    assert f.response is not None and f.response.status_code == 200
    assert f.response.headers["content-type"] == "application/json"
    assert tctx.options.replay_cassette == "tests/test_x/test_y[1]"
    assert tctx.options.replay_mode == "record"
    control(a, "POST", "/switch", {"namespace": "tests/test_x/test_y[1]", "mode": "replay"})
    miss = chat_flow()
    request(a, miss)
    assert miss.response is not None and miss.response.headers["x-replay"] == "miss"
    a.response(miss)
    outcomes = control(a, "GET", "/outcomes")
    assert outcomes.response is not None
    [line] = outcomes.response.json()["outcomes"]
    assert line["namespace"] == "tests/test_x/test_y[1]" and line["outcome"] == "miss"
    assert line["fingerprint"] == miss.response.headers["x-replay-fingerprint"]
    assert outcomes.response.json()["in_flight"] == 0


def test_a_nested_namespace_header_is_recorded_in_nested_directories(
    addon: tuple[ReplayAddon, taddons.context], tmp_path: Path
) -> None:
    a, tctx = addon
    tctx.configure(a, replay_mode="record")
    f = chat_flow(x_replay_cassette="suite/case[a]")
    request(a, f)
    f.response = tflow.tresp(content=b"{}")
    a.responseheaders(f)
    assert callable(f.response.stream)
    f.response.stream(b"{}")
    f.response.stream(b"")
    a.response(f)
    assert a.engine is not None
    a.engine.flush()
    fp = f.response.headers["x-replay-fingerprint"]
    assert (tmp_path / "suite" / "case[a]" / fp[:2] / f"{fp}.0.zst").is_file()


@pytest.mark.parametrize("peer", ["192.168.0.7", "10.0.0.1", "::ffff:10.0.0.1"])
def test_other_clients_are_refused(addon: tuple[ReplayAddon, taddons.context], peer: str) -> None:
    a, tctx = addon
    f = control(a, "POST", "/switch", {"namespace": "x"}, peer=peer)
    assert f.response is not None and f.response.status_code == 403
    assert tctx.options.replay_cassette is None


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.0.1", "::1", "::ffff:127.0.0.1"])
def test_loopback_clients_are_served(addon: tuple[ReplayAddon, taddons.context], peer: str) -> None:
    a, _ = addon
    f = control(a, "GET", "/", peer=peer)
    assert f.response is not None and f.response.status_code == 200
    assert f.response.json()["namespace"] == "default"


def test_a_bad_switch_is_a_400_and_changes_nothing(
    addon: tuple[ReplayAddon, taddons.context],
) -> None:
    a, tctx = addon
    f = control(a, "POST", "/switch", {"namespace": "ok", "speed": "-2"})
    assert f.response is not None and f.response.status_code == 400
    assert "replay_speed" in f.response.json()["error"]
    assert tctx.options.replay_cassette is None and tctx.options.replay_speed == "1.0"
