"""ReplayAddon hooks driven with mitmproxy's test harness (taddons + tflow), no sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from pathlib import Path

import pytest
from mitmproxy import exceptions, http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons, tflow

from replay.codec import decode
from replay.mitm.addon import ReplayAddon
from replay.models import Chunk


@pytest.fixture
def addon(tmp_path: Path) -> Iterator[tuple[ReplayAddon, taddons.context]]:
    a = ReplayAddon()
    with taddons.context(Proxyserver(), a) as tctx:
        tctx.options.update(replay_dir=str(tmp_path))
        a.configure(set(tctx.options.keys()))  # a script's first configure sees every key
        yield a, tctx
        a.done()


def request(addon: ReplayAddon, flow: http.HTTPFlow) -> None:
    """Run the request hook as mitmproxy does: await what it returns, if anything."""
    pending = addon.request(flow)
    if pending is not None:

        async def wait() -> None:
            await pending

        asyncio.run(wait())


def forward(a: ReplayAddon, pieces: list[bytes] | None, status: int = 200) -> http.HTTPFlow:
    """A chat request through the hooks as mitmproxy runs them for a forwarded answer:
    `pieces` go through the stream tap, then the end of message (None: a body-less answer,
    for which mitmproxy never calls the tap)."""
    f = chat_flow()
    request(a, f)
    assert f.response is None  # forwarded
    f.response = tflow.tresp(status_code=status, content=b"")
    a.responseheaders(f)
    if pieces is not None:
        stream = f.response.stream
        for piece in [*pieces, b""]:
            if callable(stream):  # recorded; else (True) forwarded as it comes
                stream(piece)
    a.response(f)
    assert a.engine is not None
    a.engine.flush()
    return f


def chat_flow(
    body: bytes = b'{"model":"m","messages":[]}',
    host: str = "api.openai.com",
    path: str = "/v1/chat/completions",
    **headers: str,
) -> http.HTTPFlow:
    f = tflow.tflow()
    f.request.scheme, f.request.host, f.request.port = "https", host, 443
    f.request.method, f.request.path = "POST", path
    f.request.headers.clear()
    f.request.headers["content-type"] = "application/json"
    for k, v in headers.items():
        f.request.headers[k.replace("_", "-")] = v
    f.request.raw_content = body
    return f


def test_connection_strategy_becomes_lazy_unless_set(tmp_path: Path) -> None:
    a = ReplayAddon()
    with taddons.context(Proxyserver(), a) as tctx:
        tctx.options.update(replay_dir=str(tmp_path))
        a.configure(set(tctx.options.keys()))
        assert tctx.options.connection_strategy == "lazy"
        a.done()


def test_an_explicit_connection_strategy_is_respected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `--set connection_strategy=eager` sets the default value: only argv tells it apart.
    monkeypatch.setattr("sys.argv", ["mitmdump", "--set", "connection_strategy=eager"])
    b = ReplayAddon()
    with taddons.context(Proxyserver(), b) as tctx:
        tctx.options.update(replay_dir=str(tmp_path), confdir=str(tmp_path))
        b.configure(set(tctx.options.keys()))
        assert tctx.options.connection_strategy == "eager"
        b.done()


def test_invalid_option_raises_options_error(addon: tuple[ReplayAddon, taddons.context]) -> None:
    a, tctx = addon
    with pytest.raises(exceptions.OptionsError, match="replay_speed"):
        tctx.configure(a, replay_speed="-3")
    with pytest.raises(exceptions.OptionsError, match="replay_cassette"):
        tctx.configure(a, replay_cassette="../up")


def test_miss_answers_404_in_openai_shape(addon: tuple[ReplayAddon, taddons.context]) -> None:
    a, tctx = addon
    tctx.configure(a, replay_miss="error")
    f = chat_flow(x_replay_cassette="suite")
    request(a, f)
    assert f.response is not None and f.response.status_code == 404
    assert f.response.headers["x-replay"] == "miss"
    fp = f.response.headers["x-replay-fingerprint"]
    assert len(fp) == 64 and fp in f.response.text
    assert "suite" in f.response.text and "x-replay-cassette" not in f.request.headers
    assert f.response.json()["error"]["code"] == "replay_no_cassette"


def test_anthropic_miss_uses_anthropic_error_shape(
    addon: tuple[ReplayAddon, taddons.context],
) -> None:
    a, tctx = addon
    tctx.configure(a, replay_miss="error")
    f = chat_flow(host="api.anthropic.com", path="/v1/messages")
    request(a, f)
    assert f.response is not None
    assert f.response.json()["type"] == "error"
    assert f.response.json()["error"]["type"] == "not_found_error"


def test_bad_namespace_header_is_refused_with_400(
    addon: tuple[ReplayAddon, taddons.context],
) -> None:
    a, _ = addon
    f = chat_flow(x_replay_cassette="a/../../b")
    request(a, f)
    assert f.response is not None and f.response.status_code == 400
    assert f.response.headers["x-replay"] == "error"


@pytest.mark.parametrize(
    ("host", "path"), [("pypi.org", "/simple/x/"), ("example.com", "/api/users")]
)
def test_other_traffic_is_not_touched(
    addon: tuple[ReplayAddon, taddons.context], host: str, path: str
) -> None:
    a, _ = addon
    f = chat_flow(host=host, path=path)
    request(a, f)
    assert f.response is None and not a.flows


def test_websocket_upgrades_pass_through_unless_replay_mode_would_contact_upstream(
    addon: tuple[ReplayAddon, taddons.context],
) -> None:
    a, tctx = addon
    refused = chat_flow(path="/v1/realtime", upgrade="websocket")
    request(a, refused)
    assert refused.response is not None and refused.response.status_code == 501
    for mode, miss in (
        ("passthrough", "synthetic"),
        ("record", "synthetic"),
        ("replay", "forward"),
    ):
        tctx.configure(a, replay_mode=mode, replay_miss=miss)
        f = chat_flow(path="/v1/realtime", upgrade="websocket")
        request(a, f)
        assert f.response is None and f.id not in a.flows, (mode, miss)


def test_record_mode_taps_the_stream_and_marks_headers(
    addon: tuple[ReplayAddon, taddons.context], tmp_path: Path
) -> None:
    a, tctx = addon
    tctx.configure(a, replay_mode="record")
    f = forward(a, [b'{"ok":', b"true}"])
    assert f.response is not None and f.response.headers["x-replay"] == "recorded"
    [path] = list(tmp_path.rglob("*.zst"))
    assert path.name == f"{f.response.headers['x-replay-fingerprint']}.0.zst"


def recording_a_stream(a: ReplayAddon, tctx: taddons.context) -> http.HTTPFlow:
    """A chat request in record mode whose SSE answer (no content-length) is being tapped."""
    tctx.configure(a, replay_mode="record")
    f = chat_flow()
    request(a, f)
    f.response = tflow.tresp(content=b"")
    f.response.headers["content-type"] = "text/event-stream"
    del f.response.headers["content-length"]
    a.responseheaders(f)
    return f


def test_an_aborted_stream_is_stored_incomplete_and_replays_as_a_miss(
    addon: tuple[ReplayAddon, taddons.context], tmp_path: Path
) -> None:
    a, tctx = addon
    f = recording_a_stream(a, tctx)
    assert f.response is not None and callable(f.response.stream)
    f.response.stream(b"data: partial\n\n")  # no [DONE]: the answer did not end
    f.error = tflow.terr()
    a.error(f)
    assert a.engine is not None
    a.engine.flush()
    [path] = tmp_path.rglob("*.zst")
    assert not decode(path.read_bytes()).complete
    tctx.configure(a, replay_mode="replay", replay_miss="error")
    again = chat_flow()
    request(a, again)
    assert again.response is not None and again.response.headers["x-replay"] == "miss"


def test_a_client_that_leaves_after_the_last_event_loses_nothing(
    addon: tuple[ReplayAddon, taddons.context], tmp_path: Path
) -> None:
    a, tctx = addon
    f = recording_a_stream(a, tctx)
    assert f.response is not None and callable(f.response.stream)
    f.response.stream(b'data: {"choices":[]}\n\n')
    f.response.stream(b"data: [DONE]\n\n")
    f.error = tflow.terr()  # the SDK hung up before the final chunk terminator
    a.error(f)
    assert a.engine is not None
    a.engine.flush()
    [path] = tmp_path.rglob("*.zst")
    assert decode(path.read_bytes()).complete


def test_an_answer_not_stored_gives_its_occurrence_back(
    addon: tuple[ReplayAddon, taddons.context], tmp_path: Path
) -> None:
    a, tctx = addon
    tctx.configure(a, replay_mode="auto")
    forward(a, [b'{"error": "busy"}'], status=503)  # auto keeps 2xx only
    ok = forward(a, [b'{"ok": true}'])
    assert ok.response is not None and ok.response.headers["x-replay"] == "recorded"
    [path] = tmp_path.rglob("*.zst")
    assert path.name.endswith(".0.zst")  # not .1: the 503 consumed no number


def test_changing_an_option_keeps_the_run(
    addon: tuple[ReplayAddon, taddons.context], tmp_path: Path
) -> None:
    a, tctx = addon
    tctx.configure(a, replay_mode="record")
    forward(a, [b'{"n": 0}'])
    forward(a, [b'{"n": 1}'])
    tctx.configure(a, replay_speed="2")  # before the third: counters and files stay
    forward(a, [b'{"n": 2}'])
    a.done()
    names = sorted(p.name.split(".")[1] for p in tmp_path.rglob("*.zst"))
    assert names == ["0", "1", "2"]


def test_inline_responses_are_independent_copies() -> None:
    from replay.mitm.adapt import InlineResponses
    from replay.player import Framing, Playback

    playback = Playback(
        200,
        "OK",
        (("content-type", "application/json"),),
        0.0,
        (Chunk(0.0, b'{"a":1}'),),
        Framing.LENGTH,
    )
    make = InlineResponses()
    fp = "f" * 64
    first, second = make(playback, "HTTP/1.1", fp), make(playback, "HTTP/1.1", fp)
    assert first is not second and first.data is not second.data
    assert second.headers["x-replay"] == "hit" and second.headers["x-replay-fingerprint"] == fp
    first.headers["x-other"] = "1"
    assert (
        "x-other" not in second.headers and "x-other" not in make(playback, "HTTP/1.1", fp).headers
    )
    assert second.raw_content == b'{"a":1}' and second.status_code == 200
    assert make(playback, "HTTP/2.0", fp).http_version == "HTTP/2.0"


def test_an_answer_without_a_body_is_recorded(
    addon: tuple[ReplayAddon, taddons.context], tmp_path: Path
) -> None:
    a, tctx = addon
    tctx.configure(a, replay_mode="record")
    forward(a, None, status=204)  # mitmproxy never streamed a body: the tap was not called
    assert len(list(tmp_path.rglob("*.zst"))) == 1


def test_a_serve_that_fails_answers_502_instead_of_going_upstream(
    addon: tuple[ReplayAddon, taddons.context], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, tctx = addon
    tctx.configure(a, replay_mode="record")
    forward(a, [b'{"ok": true}'])
    tctx.configure(a, replay_mode="replay")

    def broken(*args: object) -> None:
        raise UnicodeEncodeError("utf-8", "x", 0, 1, "a header that cannot be sent")

    monkeypatch.setattr(a, "responses", broken)
    replayed = chat_flow()
    request(a, replayed)
    # mitmproxy would log a hook's exception and send the flow upstream, credentials and all
    assert replayed.response is not None and replayed.response.status_code == 502
    assert replayed.response.headers["x-replay"] == "error"


def test_a_failure_to_build_the_error_still_answers_502(
    addon: tuple[ReplayAddon, taddons.context], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = addon

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the planning")

    monkeypatch.setattr(a, "_request", broken)
    monkeypatch.setattr("replay.mitm.addon.error_playback", broken)  # and in the error path
    flow = chat_flow()
    request(a, flow)
    assert flow.response is not None and flow.response.status_code == 502
    assert flow.response.headers["x-replay"] == "error"


def test_the_addon_rebuilds_after_done(addon: tuple[ReplayAddon, taddons.context]) -> None:
    a, tctx = addon
    a.done()
    assert a.engine is None
    a.configure(set(tctx.options.keys()))
    assert a.engine is not None and a.pacer is not None


HI = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'


def test_a_miss_gets_a_synthetic_answer_marked_as_such(
    addon: tuple[ReplayAddon, taddons.context],
) -> None:
    a, tctx = addon
    tctx.configure(a, replay_speed="0")
    f = chat_flow(HI)
    request(a, f)
    assert f.response is not None and f.response.status_code == 200
    assert f.response.headers["x-replay"] == "synthetic"
    assert len(f.response.headers["x-replay-fingerprint"]) == 64
    assert f.response.json()["choices"][0]["message"]["content"]
    assert f.response.headers["content-length"] == str(len(f.response.raw_content or b""))


def test_an_invalid_rules_file_is_refused_naming_the_option(
    addon: tuple[ReplayAddon, taddons.context], tmp_path: Path
) -> None:
    a, tctx = addon
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - match: {hots: x}\n    reply: {text: y}\n")
    with pytest.raises(exceptions.OptionsError, match=r"replay_rules: .*hots"):
        tctx.configure(a, replay_rules=str(rules))
    assert a.engine is not None and a.engine.rules is None  # the previous engine stays


def test_a_fault_withholds_an_upstream_answer_and_kills_the_flow(
    addon: tuple[ReplayAddon, taddons.context], tmp_path: Path
) -> None:
    a, tctx = addon
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - match: {host: api.openai.com}\n    fault: {cut_after: 1}\n")
    tctx.configure(a, replay_mode="passthrough", replay_rules=str(rules))
    f = chat_flow(HI)
    request(a, f)
    assert f.response is None
    f.response = tflow.tresp(content=b"")
    assert a.responseheaders(f) is None
    stream = f.response.stream
    assert callable(stream)
    assert [stream(b"one"), stream(b"two"), stream(b"three"), stream(b"")] == [b"one", [], [], b""]
    pending = a.response(f)
    assert pending is not None
    asyncio.run(_wait(pending))
    assert f.error is not None and "killed" in f.error.msg.lower()


async def _wait(pending: Awaitable[None]) -> None:
    await pending


def test_head_answers_carry_no_body_but_the_length_it_would_have(
    addon: tuple[ReplayAddon, taddons.context], tmp_path: Path
) -> None:
    a, tctx = addon
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - match: {path: /limited}\n    error: {status: 429}\n")
    tctx.configure(a, replay_speed="0", replay_rules=str(rules))
    for path, status in (("/limited", 429), ("/v1/unknown-endpoint", 404)):
        get = chat_flow(HI, path=path)
        get.request.method = "GET"
        request(a, get)
        head = chat_flow(HI, path=path)
        head.request.method = "HEAD"
        request(a, head)
        assert get.response is not None and head.response is not None
        assert head.response.status_code == get.response.status_code == status
        assert head.response.raw_content == b"" and get.response.raw_content
        assert head.response.headers["content-length"] == str(len(get.response.raw_content))


def test_a_latency_rule_never_holds_an_answer_being_recorded(
    addon: tuple[ReplayAddon, taddons.context], tmp_path: Path
) -> None:
    a, tctx = addon
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - match: {host: api.openai.com}\n    latency: {ttfb_ms: 500}\n")
    for mode, held in (("record", False), ("passthrough", True)):
        tctx.configure(a, replay_mode=mode, replay_rules=str(rules))
        f = chat_flow(HI)
        request(a, f)
        f.response = tflow.tresp(content=b"")
        pending = a.responseheaders(f)
        assert (pending is not None) is held, mode
        if pending is not None:
            asyncio.run(_wait(pending))
        a.response(f)


def test_error_answers_to_head_carry_no_body(addon: tuple[ReplayAddon, taddons.context]) -> None:
    a, _ = addon
    f = chat_flow(HI, x_replay_cassette="../bad")
    f.request.method = "HEAD"
    request(a, f)
    assert f.response is not None and f.response.status_code == 400
    assert f.response.raw_content == b"" and f.response.headers["x-replay"] == "error"
