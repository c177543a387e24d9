"""ReportWriter: JSON Lines, one object per handled request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from replay.report import ReportLine, ReportWriter


def line(outcome: str, status: int | None = 200) -> ReportLine:
    return ReportLine(
        "POST",
        "https://api.openai.com/v1/chat/completions",
        "default",
        "a" * 64,
        0,
        outcome,
        status,
        1.5,
    )


def test_lines_are_appended_as_json(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "report.jsonl"
    writer = ReportWriter(path)
    writer.write(line("hit"))
    writer.write(line("miss", 404))
    writer.close()
    records = [json.loads(x) for x in path.read_text().splitlines()]
    assert [r["outcome"] for r in records] == ["hit", "miss"]
    assert records[1]["status"] == 404 and records[0]["fingerprint"] == "a" * 64
    assert {"time", "method", "url", "namespace", "occurrence", "duration_ms"} <= set(records[0])


def test_unwritable_report_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    writer = ReportWriter(blocker / "report.jsonl")
    writer.write(line("hit"))
    writer.write(line("hit"))
    assert sum("replay_report" in r.message for r in caplog.records) == 1
