"""HAR 1.2 files (browsers, `mitmdump --set hardump=...`) as exchanges.

HAR keeps response content decoded (`content.text`, base64 when `encoding` says so), so the
content-encoding, content-length and transfer-encoding headers are dropped from the stored
answer. Timing: `timings.wait` is the time to first byte, `timings.receive` the body's.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from replay.importers import Exchange, ImportFormatError, request_from_url
from replay.models import Headers

_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def read(path: Path) -> list[Exchange]:
    try:
        document = json.loads(path.read_bytes())
        entries = document["log"]["entries"]
    except (ValueError, KeyError, TypeError) as e:
        raise ImportFormatError(f"{path}: not a HAR file: {e}") from None
    if not isinstance(entries, list):
        raise ImportFormatError(f"{path}: not a HAR file: log.entries is not a list")
    return [_exchange(entry, f"{path}: log.entries[{n}]") for n, entry in enumerate(entries)]


def _exchange(entry: Any, where: str) -> Exchange:
    try:
        req, resp = entry["request"], entry["response"]
        post = req.get("postData") or {}
        body = _content(post.get("text"), post.get("encoding"))
        headers = _headers(req.get("headers"), drop=frozenset({"content-length"}))
        request = request_from_url(req["method"], req["url"], headers, body)
        content = resp.get("content") or {}
        timings = entry.get("timings") or {}
        return Exchange(
            request=request,
            status=int(resp["status"]),
            reason=str(resp.get("statusText", "")),
            headers=_headers(resp.get("headers"), drop=_FRAMING),
            body=_content(content.get("text"), content.get("encoding")),
            http_version=_version(resp.get("httpVersion")),
            ttfb=_ms(timings.get("wait")),
            duration=_ms(timings.get("receive")),
            recorded_at=entry.get("startedDateTime"),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ImportFormatError(f"{where}: {type(e).__name__}: {e}") from None


def _headers(items: Any, drop: frozenset[str]) -> Headers:
    return tuple(
        (str(h["name"]), str(h["value"]))
        for h in items or []
        if str(h["name"]).lower() not in drop and not str(h["name"]).startswith(":")
    )


def _content(text: Any, encoding: Any) -> bytes:
    if not text:
        return b""
    if encoding == "base64":
        try:
            return base64.b64decode(text)
        except binascii.Error as e:
            raise ValueError(f"base64 content: {e}") from None
    return str(text).encode("utf-8")


def _version(value: Any) -> str:
    text = str(value or "HTTP/1.1")
    return text.upper() if text.upper().startswith("HTTP/") else "HTTP/1.1"


def _ms(value: Any) -> float:
    try:
        ms = float(value)
    except (TypeError, ValueError):
        return 0.0
    return ms / 1000 if ms > 0 else 0.0
