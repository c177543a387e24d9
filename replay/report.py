"""The `replay_report` JSON Lines file: one line per handled request.

Owns the line's fields and the appending. A line is written when the exchange ends (or
fails), with the URL already redacted by the caller. A report that cannot be written is
logged once and otherwise ignored: it never breaks a request.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)


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


class ReportWriter:
    """Appends report lines to a file (created with its parent directories)."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._file: IO[str] | None = None
        self._failed = False
        self._lock = threading.Lock()

    def write(self, line: ReportLine) -> None:
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **asdict(line)}
        if record["detail"] is None:
            del record["detail"]
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            if self._failed:
                return
            try:
                if self._file is None:
                    self._path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = self._path.open("a", encoding="utf-8")
                self._file.write(text)
                self._file.flush()
            except OSError as e:
                self._failed = True
                logger.error("replay_report: cannot write %s: %s", self._path, e)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
