"""Code blocks of the project's Markdown docs, for tests that run what the docs show."""

from __future__ import annotations

import re
from pathlib import Path


def block(doc: Path, heading: str, lang: str) -> str:
    """The first ```lang block after `heading` in `doc`, before the next `## ` heading."""
    section = doc.read_text().split(heading, 1)[1].split("\n## ", 1)[0]
    match = re.search(rf"^```{lang}\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match, f"{doc.name}: no {lang} block under {heading!r}"
    return match.group(1)
