"""The control endpoint's protocol (replay.control) over a real Engine, without a proxy."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from replay.config import OPTION_SPECS, Settings
from replay.control import OutcomeWindow, handle
from replay.engine import Engine
from replay.models import Outcome, Request
from replay.report import ReportLine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(Settings.from_options({"replay_dir": str(tmp_path), "replay_miss": "error"}))
    yield eng
    eng.close()


class Options:
    """What the glue does with option changes: the whole option set, re-validated."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.values: dict[str, Any] = {s.name: s.default for s in OPTION_SPECS}
        self.values.update(replay_dir=engine.settings.dir, replay_miss="error")

    def __call__(self, changes: dict[str, Any]) -> None:
        settings = Settings.from_options({**self.values, **changes})  # ConfigError: nothing set
        self.values.update(changes)
        self.engine.reconfigure(settings, None)


def call(engine: Engine, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    raw = b"" if body is None else json.dumps(body).encode()
    answer = handle(engine, method, path, raw, Options(engine))
    return answer.status, json.loads(answer.encode())


def chat(text: str) -> Request:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]})
    return Request(
        "POST", "https", "api.openai.com", 443, "/v1/chat/completions", (), (), body.encode()
    )


def occurrence(engine: Engine, text: str = "hi") -> int:
    ns = engine.namespace(None)
    return engine.plan(*engine.prepare(chat(text), ns)).key.occurrence


def settle(engine: Engine, text: str, started: float | None = None) -> None:
    ns = engine.namespace(None)
    plan = engine.plan(*engine.prepare(chat(text), ns))
    begun = time.monotonic() if started is None else started
    engine.settle(chat(text), ns, plan, Outcome.MISS, 404, begun)


def test_switch_sets_the_namespace_and_restarts_its_counters(engine: Engine) -> None:
    assert [occurrence(engine) for _ in range(2)] == [0, 1]
    status, body = call(engine, "POST", "/switch", {"namespace": "tests/test_a/test_one[x]"})
    assert status == 200 and body["namespace"] == "tests/test_a/test_one[x]"
    assert engine.namespace(None) == "tests/test_a/test_one[x]"
    assert [occurrence(engine) for _ in range(2)] == [0, 1]
    status, body = call(engine, "POST", "/switch?namespace=tests/test_a/test_one[x]")
    assert (status, body["reset"]) == (200, 1)
    assert occurrence(engine) == 0
    call(engine, "POST", "/switch?namespace=tests/test_a/test_one[x]&reset=false")
    assert occurrence(engine) == 1
    status, body = call(engine, "POST", "/switch")  # back to the option's namespace
    assert body["namespace"] == "default" and occurrence(engine) == 0


def test_reset_one_namespace_or_all(engine: Engine) -> None:
    occurrence(engine)
    call(engine, "POST", "/switch", {"namespace": "b"})
    occurrence(engine)
    occurrence(engine, "other")
    assert call(engine, "POST", "/reset", {"namespace": "default"}) == (
        200,
        {"namespace": "default", "reset": 1},
    )
    assert occurrence(engine) == 1  # namespace b kept its count
    assert call(engine, "POST", "/reset")[1]["reset"] == 2
    assert occurrence(engine) == 0


def test_switch_sets_mode_miss_and_speed(engine: Engine) -> None:
    status, body = call(engine, "POST", "/switch", {"namespace": "n", "mode": "record", "speed": 0})
    assert status == 200 and (body["mode"], body["speed"]) == ("record", 0.0)
    assert engine.settings.mode == "record" and engine.settings.cassette == "n"
    status, body = call(engine, "POST", "/switch", {"mode": "sideways"})
    assert status == 400 and "replay_mode: 'sideways'" in body["error"]
    assert engine.settings.mode == "record"  # a bad switch changes nothing


def test_outcomes_are_those_since_the_last_switch(engine: Engine) -> None:
    before = time.monotonic()
    settle(engine, "before the switch")
    call(engine, "POST", "/switch", {"namespace": "t"})
    settle(engine, "in flight at the switch", started=before)
    settle(engine, "mine")
    status, body = call(engine, "GET", "/outcomes")
    assert status == 200 and body["dropped"] == 0
    [line] = body["outcomes"]
    assert line["outcome"] == "miss" and line["namespace"] == "t" and line["status"] == 404
    assert line["url"] == "https://api.openai.com/v1/chat/completions"
    assert len(line["fingerprint"]) == 64 and set(line) >= {"nearest", "occurrence", "detail"}


def test_window_keeps_the_newest_lines_and_counts_the_dropped() -> None:
    window = OutcomeWindow(limit=2)
    line = ReportLine("GET", "u", "n", "f", 0, "hit", 200, 1.0)
    for _ in range(3):
        window.add(line, time.monotonic())
    assert len(window.lines()) == 2 and window.dropped == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("GET", "/nowhere", None, 404, "no control endpoint /nowhere"),
        ("GET", "/switch", None, 405, "/switch takes POST"),
        ("POST", "/outcomes", None, 405, "/outcomes takes GET"),
        ("POST", "/switch", {"namespace": "../up"}, 400, "invalid namespace '../up'"),
        ("POST", "/switch", {"namespace": 3}, 400, "namespace: 3 is not a string"),
        ("POST", "/switch", {"reset": "maybe"}, 400, "reset: 'maybe' is not true or false"),
        ("POST", "/switch", {"dir": "/tmp"}, 400, "unknown parameter(s): dir"),
        ("POST", "/reset", {"namespace": "a", "x": 1}, 400, "unknown parameter(s): x"),
        ("POST", "/switch", [1], 400, "the body must be a JSON object"),
    ],
)
def test_bad_control_requests_are_answered_with_the_reason(
    engine: Engine, method: str, path: str, body: Any, status: int, error: str
) -> None:
    got_status, got = call(engine, method, path, body)
    assert got_status == status and error in got["error"]


def test_a_body_that_is_not_json_is_a_400(engine: Engine) -> None:
    answer = handle(engine, "POST", "/switch", b"{nope", Options(engine))
    assert answer.status == 400 and "not JSON" in answer.body["error"]


def test_state(engine: Engine) -> None:
    status, body = call(engine, "GET", "/")
    assert status == 200
    assert body == {
        "namespace": "default",
        "mode": "replay",
        "miss": "error",
        "dir": engine.settings.dir,
        "speed": 1.0,
        "rules": None,
    }
