"""Namespaces named after tests: a pytest node id made into a path safe on every file system.

Owns `namespace_for`: `tests/test_chat.py::TestX::test_summary[gpt-4o]` becomes
`tests/test_chat/TestX/test_summary[gpt-4o]` (the module's `.py` dropped, one segment per
directory, class and test; the parameter id stays with its test, whatever `/` or `::` it
holds). Each segment is made portable: characters that Windows, macOS or Linux refuse or
treat specially (`<>:"/\\|?*`, control characters, a leading `.`, a trailing `.` or space,
reserved device names such as `CON`, non-ASCII) become `_`, and long segments are cut; a
segment that had to change gets a short hash of the original so that two ids never share a
namespace. Two ids that differ only in letter case do share one on a case-insensitive file
system (macOS, Windows). Knows nothing of pytest.
"""

from __future__ import annotations

import hashlib
import re

from replay.config import check_namespace

SEGMENT_BYTES = 96
"""The longest segment made here (Windows paths stay under 260 characters for usual ids)."""
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]|[^\x00-\x7f]')
_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?", re.IGNORECASE)


def namespace_for(nodeid: str) -> str:
    """The namespace of the test `nodeid` (a valid namespace, see `config.check_namespace`)."""
    path, _, rest = nodeid.partition("::")
    segments = [s for s in path.replace("\\", "/").split("/") if s]
    if segments and segments[-1].endswith(".py"):
        segments[-1] = segments[-1][: -len(".py")]
    if rest:
        name, bracket, params = rest.partition("[")
        names = [n for n in name.split("::") if n]
        if bracket:
            last = names.pop() if names else ""
            names.append(f"{last}[{params}")
        segments += names
    return check_namespace("/".join(safe_segment(s) for s in segments) or "_")


def safe_segment(segment: str) -> str:
    """`segment` as a directory name every file system takes, unique to the original."""
    safe = _UNSAFE.sub("_", segment)
    if safe.startswith("."):
        safe = "_" + safe[1:]
    if safe.endswith((".", " ")):
        safe = safe[:-1] + "_"
    if _RESERVED.fullmatch(safe):
        safe = "_" + safe
    if not safe:
        safe = "_"
    if safe == segment and len(safe) <= SEGMENT_BYTES:
        return safe
    digest = hashlib.sha256(segment.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe[: SEGMENT_BYTES - 9].rstrip('. ')}-{digest}"
