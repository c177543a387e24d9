"""docs/rules.md cannot rot: every YAML and JSON block loads, and a few do what the page says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from replay import rules_parse
from replay.models import Request
from replay.providers.base import Reply, ToolCall
from replay.rules import NOTHING, Fault, HttpError, Latency, RuleSet, load_rules

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"
BLOCK = re.compile(r"^```(yaml|json)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(DOC.read_text())]


def example(heading: str) -> str:
    """The first YAML block after the `### heading` of the examples."""
    text = DOC.read_text().split(f"### {heading}\n", 1)[1]
    match = BLOCK.search(text)
    assert match is not None, heading
    return match.group(2)


def load(tmp_path: Path, text: str, suffix: str = "yaml") -> RuleSet:
    path = tmp_path / f"rules.{suffix}"
    path.write_text(text)
    return load_rules(path)


def request(
    body: object, *, host: str = "api.openai.com", path: str = "/v1/chat/completions"
) -> Request:
    return Request("POST", "https", host, 443, path, (), (), json.dumps(body).encode())


def chat(text: str, model: str = "gpt-4o-mini", **kw: str) -> Request:
    return request({"model": model, "messages": [{"role": "user", "content": text}]}, **kw)


def test_the_page_has_examples() -> None:
    kinds = [kind for kind, _ in blocks()]
    assert kinds.count("yaml") >= 6 and kinds.count("json") >= 1


@pytest.mark.parametrize(("kind", "text"), blocks())
def test_every_block_loads(tmp_path: Path, kind: str, text: str) -> None:
    rs = load(tmp_path, text, kind)
    assert rs.rules or rs.settings.synthetic.ttfb != 0.03


def test_every_key_is_documented() -> None:
    page = DOC.read_text()
    for group in (
        rules_parse._TOP,
        rules_parse._RULE,
        rules_parse._MATCH,
        rules_parse._TEXT,
        rules_parse._REPLY,
        rules_parse._TOOL_CALL,
        rules_parse._ERROR,
        rules_parse._LATENCY,
        rules_parse._FAULT,
        rules_parse._SETTINGS,
        rules_parse._NORMALIZER,
    ):
        for key in group:
            assert f"`{key}`" in page or f"`{key}:`" in page, key


def test_a_first_file(tmp_path: Path) -> None:
    rs = load(tmp_path, blocks()[0][1])
    pong = rs.evaluate(
        chat("ping", "claude-sonnet-4-5", host="api.anthropic.com", path="/v1/messages"), "default"
    )
    assert pong.answer is not None and pong.answer.reply == Reply("pong")
    assert pong.latency == Latency(ttfb=0.5, chunk=0.02)  # the slow-streams rule too
    limited = [rs.evaluate(chat("hello"), "default").answer for _ in range(3)]
    assert [a.error.status if a and a.error else None for a in limited] == [429, 429, None]


def test_the_tool_round_trip(tmp_path: Path) -> None:
    rs = load(tmp_path, example("A tool-calling round trip"))
    asked = rs.evaluate(chat("What's the weather in Paris?"), "default")
    assert asked.answer is not None and asked.answer.reply == Reply(
        None, (ToolCall("get_weather", {"city": "Paris", "unit": "celsius"}),)
    )
    follow_up = {
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "w"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
        ],
    }
    answered = rs.evaluate(request(follow_up, path="/v1/messages"), "default")
    assert answered.answer is not None and answered.answer.name == "answer from the tool's result"


def test_retries_and_overload(tmp_path: Path) -> None:
    rs = load(tmp_path, example("Retries and overload"))
    first = rs.evaluate(chat("hi"), "default").answer
    assert first is not None and first.error == HttpError(
        429, "Rate limit reached for gpt-4o-mini", "rate_limit_exceeded", 0.01
    )
    opus = chat("hi", "claude-opus-4-1", host="api.anthropic.com", path="/v1/messages")
    overloaded = rs.evaluate(opus, "default").answer
    assert overloaded is not None and overloaded.error is not None
    assert (overloaded.error.status, overloaded.error.retry_after) == (529, 1.0)


def test_slow_and_broken_streams(tmp_path: Path) -> None:
    rs = load(tmp_path, example("Slow and broken streams"))
    gemini = request(
        {"contents": [{"parts": [{"text": "please [cut] here"}]}]},
        host="generativelanguage.googleapis.com",
        path="/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    )
    verdict = rs.evaluate(gemini, "default")
    assert verdict.answer is None
    assert verdict.latency == Latency(ttfb=0.2, chunk=0.05)
    assert verdict.fault == Fault(cut_after=3)
    hang = rs.evaluate(chat("hang now [cut]"), "fast-lane")
    assert hang.fault == Fault(stall_after=1, stall=2.0)  # fewer chunks than the cut: first
    assert hang.latency == Latency(ttfb=0.0, chunk=0.0)  # the later rule overrides


def test_canned_answers_per_suite(tmp_path: Path) -> None:
    rs = load(tmp_path, example("Canned answers per suite"))
    ok = rs.evaluate(chat("Say OK", "gpt-4o"), "smoke")
    assert ok.answer is not None and ok.answer.reply == Reply("OK")
    assert rs.evaluate(chat("Say OK", "gpt-4o"), "default") is NOTHING
    summary = request({"model": "gpt-4o", "input": "Summarize report.pdf"}, path="/v1/responses")
    assert rs.evaluate(summary, "default").rules == ("the summary fixture",)


def test_settings_only(tmp_path: Path) -> None:
    settings = load(tmp_path, example("Settings only")).settings
    assert (settings.synthetic.ttfb, settings.synthetic.chunk) == (0.01, 0.001)
    assert settings.redact[0].search("customer cust_123456")
    assert settings.verify_allow[0].fullmatch("sk-test-fixture-abc123")
    text = "on 2026-01-02, request id 123e4567-e89b-12d3-a456-426614174000"
    for normalizer in settings.normalize:
        text = normalizer.apply(text)
    assert text == "on <date>, request id <id>"
