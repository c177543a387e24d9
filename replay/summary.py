"""What a run did, read back from its `replay_report` JSON Lines file.

Owns reading a report (from a byte offset, so a report file shared by several runs gives one
run's lines; lines that are not JSON objects, such as a last line cut by a crash, are
skipped) and the summary `replay run` prints: counts per outcome, and the notable requests
(`report.NOTABLE`: a miss, a synthetic answer, a forward or an error, which `--strict`
refuses), each described by `report.describe` exactly as the proxy's own stop summary does.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay.report import NOTABLE, ReportLine

OUTCOMES = ("hit", "recorded", "forwarded", "synthetic", "miss", "error")
_NEAREST_KEYS = ("fingerprint", "occurrence", "field")


@dataclass
class RunSummary:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[ReportLine] = field(default_factory=list)
    """The notable lines, in order."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def counts_line(self) -> str:
        """`3 requests: 2 hit, 1 miss` (outcomes in their documented order)."""
        known = [o for o in OUTCOMES if self.counts[o]]
        other = sorted(o for o in self.counts if o not in OUTCOMES)
        parts = ", ".join(f"{self.counts[o]} {o}" for o in known + other)
        noun = "request" if self.total == 1 else "requests"
        return f"{self.total} {noun}" + (f": {parts}" if parts else "")


def read_lines(path: Path, offset: int = 0) -> list[dict[str, Any]]:
    """The report's lines from byte `offset` on (a missing file has none)."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return []
    lines = []
    for raw in data.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


def report_line(obj: dict[str, Any]) -> ReportLine:
    """A decoded report line as the writer's `ReportLine` (missing or odd values defaulted)."""
    nearest = obj.get("nearest")
    if not isinstance(nearest, dict) or not all(k in nearest for k in _NEAREST_KEYS):
        nearest = None
    status, occurrence = obj.get("status"), obj.get("occurrence")
    return ReportLine(
        method=str(obj.get("method", "")),
        url=str(obj.get("url", "")),
        namespace=str(obj.get("namespace", "")),
        fingerprint=str(obj.get("fingerprint") or ""),
        occurrence=occurrence if isinstance(occurrence, int) else 0,
        outcome=str(obj.get("outcome", "?")),
        status=status if isinstance(status, int) else None,
        duration_ms=float(obj.get("duration_ms") or 0),
        detail=str(obj["detail"]) if obj.get("detail") else None,
        model=str(obj["model"]) if obj.get("model") else None,
        nearest=nearest,
    )


def summarize(lines: list[dict[str, Any]]) -> RunSummary:
    summary = RunSummary()
    for obj in lines:
        line = report_line(obj)
        summary.counts[line.outcome] += 1
        if line.outcome in NOTABLE:
            summary.problems.append(line)
    return summary
