"""What a run did: the `replay_report` JSON Lines file, and the summary printed at a stop.

Owns the report line's fields and the appending (a line is written when the exchange ends
or fails, with the URL already redacted by the caller; a report that cannot be written is
logged once and otherwise ignored: it never breaks a request), and `Tally`: the counts per
outcome of a run and the requests worth a look (misses, synthetic answers, forwards, errors)
with their nearest recording, which the proxy logs as a summary when it stops cleanly.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

NOTABLE = ("miss", "synthetic", "forwarded", "error")
"""Outcomes a CI run should not have (`replay run --strict` fails on them)."""
MAX_LISTED = 200
"""Notable requests kept for the summary; past it, only counted."""


@dataclass(frozen=True, slots=True)
class ReportLine:
    method: str
    url: str
    namespace: str
    fingerprint: str
    occurrence: int
    outcome: str
    status: int | None
    duration_ms: float
    detail: str | None = None
    model: str | None = None
    nearest: dict[str, Any] | None = None
    """For a miss: the nearest recording (`fingerprint`, `occurrence`, `url`, `field`: the
    first field that differs), or None when the namespace holds none."""


class ReportWriter:
    """Appends report lines to a file (created with its parent directories)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self._failed = False
        self._lock = threading.Lock()

    def write(self, line: ReportLine) -> None:
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **asdict(line)}
        for optional in ("detail", "model", "nearest"):
            if record[optional] is None:
                del record[optional]
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            if self._failed:
                return
            try:
                if self._file is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = self.path.open("a", encoding="utf-8")
                self._file.write(text)
                self._file.flush()
            except OSError as e:
                self._failed = True
                logger.error("replay_report: cannot write %s: %s", self.path, e)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class Tally:
    """Counts per outcome and the notable requests of a run (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.notable: list[ReportLine] = []

    def count(self, outcome: str) -> None:
        """Count an exchange that is not notable (a hit, a recording)."""
        with self._lock:
            self.counts[outcome] += 1

    def add(self, line: ReportLine) -> None:
        with self._lock:
            self.counts[line.outcome] += 1
            if line.outcome in NOTABLE and len(self.notable) < MAX_LISTED:
                self.notable.append(line)

    def notable_count(self) -> int:
        """How many exchanges were misses, synthetic answers, forwards or errors."""
        with self._lock:
            return sum(self.counts[o] for o in NOTABLE)

    def summary(self) -> list[str]:
        """The lines logged at a clean stop: the counts, then one line per notable request."""
        with self._lock:
            total = sum(self.counts.values())
            if not total:
                return ["replay: no requests handled"]
            counts = ", ".join(f"{n} {o}" for o, n in sorted(self.counts.items()))
            lines = [f"replay: {total} request(s): {counts}"]
            lines += [f"replay:   {describe(line)}" for line in self.notable]
            unlisted = sum(self.counts[o] for o in NOTABLE) - len(self.notable)
            if unlisted > 0:
                lines.append(f"replay:   ... and {unlisted} more (see replay_report)")
        return lines


def describe(line: ReportLine) -> str:
    """One line for a notable request: outcome, request, key, and the nearest recording."""
    model = f" ({line.model})" if line.model else ""
    key = f"{line.namespace}/{line.fingerprint[:12]}#{line.occurrence}"
    text = f"{line.outcome} {line.method} {line.url}{model} {key}"
    if line.nearest is not None:
        near = line.nearest
        text += f"; nearest {str(near['fingerprint'])[:12]}#{near['occurrence']}"
        text += f", first difference: {near['field'] or 'none (see docs/matching.md)'}"
    elif line.outcome in ("miss", "synthetic") and "rules:" not in (line.detail or ""):
        text += "; nothing recorded in this namespace"
    if line.detail:
        text += f" [{line.detail}]"
    return text
