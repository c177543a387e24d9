"""What a run did, read back from its `replay_report` JSON Lines file.

Owns the summary of `replay run` (and of anything else that reads a report): counts per
outcome, and the requests that a strict run refuses (a miss, a synthetic answer, a forward
or an error), each described on one line with its URL, model and, for a miss, the nearest
recording and the first differing field when the report names them. Lines that are not
JSON objects are skipped (a report cut by a crash ends with a partial line).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("hit", "recorded", "forwarded", "synthetic", "miss", "error")
STRICT_OUTCOMES = frozenset({"miss", "synthetic", "forwarded", "error"})
"""Outcomes that fail `--strict` (and `replay_strict`)."""


@dataclass
class RunSummary:
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[dict[str, Any]] = field(default_factory=list)
    """The report lines whose outcome is in STRICT_OUTCOMES, in order."""

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


def summarize(lines: list[dict[str, Any]]) -> RunSummary:
    summary = RunSummary()
    for line in lines:
        outcome = str(line.get("outcome", "?"))
        summary.counts[outcome] += 1
        if outcome in STRICT_OUTCOMES:
            summary.problems.append(line)
    return summary


def describe(line: dict[str, Any]) -> str:
    """One line for a report line: outcome, method, URL, model, status, nearest, detail."""
    parts = [str(line.get("outcome", "?")), str(line.get("method", "")), str(line.get("url", ""))]
    if line.get("model"):
        parts.append(f"model={line['model']}")
    if line.get("status") is not None:
        parts.append(f"status={line['status']}")
    fp = str(line.get("fingerprint") or "")
    if fp:
        parts.append(f"fp={fp[:12]}#{line.get('occurrence', 0)}")
    nearest = line.get("nearest")
    if isinstance(nearest, dict) and nearest.get("fingerprint"):
        near = f"nearest={str(nearest['fingerprint'])[:12]}#{nearest.get('occurrence', 0)}"
        if nearest.get("url") and nearest.get("url") != line.get("url"):
            near += f" ({nearest['url']})"
        if nearest.get("field"):
            near += f" differs at {nearest['field']}"
        parts.append(near)
    if line.get("detail"):
        parts.append(f"({line['detail']})")
    return " ".join(p for p in parts if p)
