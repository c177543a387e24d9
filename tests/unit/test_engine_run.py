"""Engine: a run's state across option changes, numbers given back, and what a run says
about itself (the miss log, the report line, the summary at a stop)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from replay.config import Settings
from replay.engine import Engine
from replay.models import Outcome, Request, ResponseHead
from replay.plan import Forward, Make, Plan
from replay.report import Tally
from replay.rules import RulesFile

HEAD = ResponseHead(200, "OK", "HTTP/1.1", (("content-type", "application/json"),))


def chat(content: str, path: str = "/v1/chat/completions") -> Request:
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]})
    headers = (("content-type", "application/json"),)
    return Request("POST", "https", "api.openai.com", 443, path, (), headers, body.encode())


def settings(tmp_path: Path, **options: str) -> Settings:
    return Settings.from_options({"replay_dir": str(tmp_path / "store"), **options})


def plan(engine: Engine, request: Request) -> Plan:
    return engine.plan(*engine.prepare(request, "default"))


def record(engine: Engine, request: Request) -> int:
    p = plan(engine, request)
    assert isinstance(p, Forward)
    recording = engine.tap(p, HEAD).recording
    assert recording is not None
    for data in (b'{"ok": true}', b""):
        recording.tap(data)
    engine.commit(p, recording, 0.1)
    return p.key.occurrence


def test_options_change_without_losing_the_run(tmp_path: Path) -> None:
    engine = Engine(settings(tmp_path, replay_mode="record"))
    assert [record(engine, chat("hi")) for _ in range(2)] == [0, 1]
    session = engine.maker.session
    engine.reconfigure(settings(tmp_path, replay_mode="record", replay_speed="0"), None)
    assert record(engine, chat("hi")) == 2  # the counters went on
    assert engine.maker.session is session  # so did the Responses state
    engine.close()
    assert len(list((tmp_path / "store").rglob("*.zst"))) == 3


def test_a_new_store_starts_its_own_run(tmp_path: Path) -> None:
    engine = Engine(settings(tmp_path, replay_mode="record"))
    record(engine, chat("hi"))
    other = Settings.from_options({"replay_dir": str(tmp_path / "other"), "replay_mode": "record"})
    engine.reconfigure(other, None)
    assert record(engine, chat("hi")) == 0
    engine.close()
    assert len(list((tmp_path / "store").rglob("*.zst"))) == 1
    assert len(list((tmp_path / "other").rglob("*.zst"))) == 1


def test_a_number_not_stored_under_is_given_back(tmp_path: Path) -> None:
    engine = Engine(settings(tmp_path, replay_mode="auto"))
    first, second = plan(engine, chat("hi")), plan(engine, chat("hi"))
    assert isinstance(first, Forward) and isinstance(second, Forward)
    assert (first.key.occurrence, second.key.occurrence) == (0, 1)
    assert engine.tap(first, replace(HEAD, status=429)).recording is None  # auto keeps 2xx
    assert plan(engine, chat("hi")).key.occurrence == 0  # the lowest free number first
    assert plan(engine, chat("hi")).key.occurrence == 2
    engine.close()


def test_a_rules_reload_that_changes_keys_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: []\n")
    clock = [0.0]
    engine = Engine(settings(tmp_path), rules=RulesFile(rules, clock=lambda: clock[0]))
    before = plan(engine, chat("on 2026-12-01")).key.fingerprint
    rules.write_text("settings:\n  normalize: [{pattern: '\\d{4}-\\d\\d-\\d\\d', replace: D}]\n")
    clock[0] = 10.0
    with caplog.at_level(logging.WARNING):
        after = plan(engine, chat("on 2026-12-01")).key.fingerprint
    assert before != after
    assert any("fingerprints change" in r.getMessage() for r in caplog.records)
    engine.close()


def test_a_miss_is_logged_and_reported_with_its_nearest_recording(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Engine(settings(tmp_path, replay_mode="record"))
    record(recorder, chat("the recorded prompt"))
    recorder.close()
    report = tmp_path / "report.jsonl"
    engine = Engine(settings(tmp_path, replay_report=str(report)))
    p = plan(engine, chat("an edited prompt"))
    assert isinstance(p, Make) and p.miss
    with caplog.at_level(logging.WARNING):
        made = engine.make(p)
    assert made.outcome is Outcome.SYNTHETIC and made.nearest is not None
    assert made.nearest.field == "body.json.messages.0.content"
    [warning] = [r.getMessage() for r in caplog.records if "miss answered" in r.getMessage()]
    assert "first difference: body.json.messages.0.content" in warning
    engine.settle(p.prepared.request, "default", p, made.outcome, 200, 0.0, None, made.nearest)
    engine.close()
    [line] = [json.loads(text) for text in report.read_text().splitlines()]
    assert line["outcome"] == "synthetic" and line["model"] == "gpt-4o-mini"
    assert line["nearest"]["field"] == "body.json.messages.0.content"
    summary = engine.tally.summary()
    assert summary[0] == "replay: 1 request(s): 1 synthetic"
    assert "first difference: body.json.messages.0.content" in summary[1]


def test_the_summary_counts_every_outcome_and_lists_the_notable() -> None:
    from replay.report import ReportLine

    tally = Tally()
    for outcome in ("hit", "hit", "miss", "recorded", "error"):
        tally.add(ReportLine("POST", "https://x/v1/chat", "ns", "f" * 64, 0, outcome, 200, 1.0))
    lines = tally.summary()
    assert lines[0] == "replay: 5 request(s): 1 error, 2 hit, 1 miss, 1 recorded"
    assert [line.split()[1] for line in lines[1:]] == ["miss", "error"]


def test_answers_and_errors_take_the_shape_of_the_one_route(tmp_path: Path) -> None:
    engine = Engine(settings(tmp_path, replay_miss="error"))
    gemini = replace(chat("x"), host="gateway.example", path="/v1beta/models/g:generateContent")
    p = plan(engine, gemini)
    assert isinstance(p, Make)
    made = engine.make(p)
    assert made.outcome is Outcome.MISS
    assert json.loads(made.playback.body)["error"]["status"] == "NOT_FOUND"  # Gemini's shape
    messages = replace(chat("x"), path="/v1/messages")  # on api.openai.com
    made = engine.make(plan(engine, messages))  # type: ignore[arg-type]
    assert json.loads(made.playback.body)["type"] == "error"  # Anthropic's shape
    engine.close()
