"""The summary `replay run` prints from its report: counts, and each request a strict run
refuses, with the optional `model` and `nearest` keys when the report has them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replay.report import describe
from replay.summary import read_lines, summarize


def test_counts_and_problems_from_an_offset(tmp_path: Path) -> None:
    report = tmp_path / "r.jsonl"
    old = {"outcome": "miss", "url": "https://old"}
    report.write_text(json.dumps(old) + "\n")
    offset = report.stat().st_size
    lines = [
        {"outcome": "hit", "method": "POST", "url": "https://a"},
        {"outcome": "hit", "method": "POST", "url": "https://a"},
        {"outcome": "synthetic", "method": "POST", "url": "https://b", "model": "gpt-4o"},
        {"outcome": "recorded", "method": "POST", "url": "https://c"},
    ]
    with report.open("a") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
        f.write('{"outcome": "hi')  # cut by a crash
    summary = summarize(read_lines(report, offset))
    assert summary.counts_line() == "4 requests: 2 hit, 1 recorded, 1 synthetic"
    assert [p.url for p in summary.problems] == ["https://b"]
    assert summarize([]).counts_line() == "0 requests"
    assert read_lines(tmp_path / "missing.jsonl") == []


def test_a_miss_is_described_as_the_proxy_describes_it() -> None:
    line = {
        "outcome": "miss",
        "method": "POST",
        "url": "https://api.openai.com/v1/chat/completions",
        "namespace": "default",
        "fingerprint": "ab" * 32,
        "occurrence": 0,
        "status": 404,
        "model": "gpt-4o-mini",
        "nearest": {
            "fingerprint": "cd" * 32,
            "occurrence": 2,
            "url": "https://api.openai.com/v1/chat/completions",
            "field": "body.json.messages.0.content",
        },
    }
    [problem] = summarize([line]).problems
    assert describe(problem) == (
        "miss POST https://api.openai.com/v1/chat/completions (gpt-4o-mini) "
        "default/abababababab#0; nearest cdcdcdcdcdcd#2, "
        "first difference: body.json.messages.0.content"
    )
    odd = summarize([{"outcome": "error", "occurrence": "x", "nearest": {"fingerprint": 1}}])
    assert odd.problems[0].occurrence == 0 and odd.problems[0].nearest is None


def test_the_run_summary_fits_a_screen(capsys: pytest.CaptureFixture[str]) -> None:
    from replay.cli.run import SUMMARY_LINES, _summarize

    lines = [{"outcome": "synthetic", "method": "POST", "url": f"https://h/{n}"} for n in range(50)]
    code = _summarize(lines, 0, strict=True)
    text = capsys.readouterr().err
    assert code == 1
    listed = [ln for ln in text.splitlines() if ln.startswith("  synthetic")]
    assert len(listed) == SUMMARY_LINES
    assert "... and 30 more" in text and "--strict: 50 request(s)" in text
