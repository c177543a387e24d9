"""VCR.py cassettes (YAML, or the JSON serializer's output) as exchanges.

Read with a safe loader only (ruamel.yaml's `safe` type: `!!binary` gives bytes, no Python
objects are ever built). Bodies may be a string, bytes, `{string: ...}` or
`{base64_string: ...}`; a gzip-encoded body stays encoded with its content-encoding header,
as a live recording keeps it. VCR.py keeps no timing: offsets are zero.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from replay.importers import Exchange, ImportFormatError, request_from_url
from replay.models import Headers


def read(path: Path) -> list[Exchange]:
    text = path.read_bytes()
    try:
        if text.lstrip()[:1] == b"{":
            document = json.loads(text)
        else:
            document = YAML(typ="safe", pure=True).load(io.BytesIO(text))
    except (YAMLError, ValueError) as e:
        raise ImportFormatError(f"{path}: not a VCR.py cassette: {e}") from None
    if not isinstance(document, dict) or not isinstance(document.get("interactions"), list):
        raise ImportFormatError(f"{path}: not a VCR.py cassette (no `interactions` list)")
    return [
        _exchange(item, f"{path}: interactions[{n}]")
        for n, item in enumerate(document["interactions"])
    ]


def _exchange(item: Any, where: str) -> Exchange:
    try:
        req, resp = item["request"], item["response"]
        headers = _headers(req.get("headers"))
        body = _body(req.get("body"))
        request = request_from_url(str(req["method"]), str(req["uri"]), headers, body)
        status = resp.get("status") or {}
        return Exchange(
            request=request,
            status=int(status.get("code", 200)),
            reason=str(status.get("message", "")),
            headers=_headers(resp.get("headers")),
            body=_body(resp.get("body")),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ImportFormatError(f"{where}: {type(e).__name__}: {e}") from None


def _headers(value: Any) -> Headers:
    if not value:
        return ()
    pairs: list[tuple[str, str]] = []
    for name, values in dict(value).items():
        for v in values if isinstance(values, list) else [values]:
            pairs.append((str(name), v.decode("latin-1") if isinstance(v, bytes) else str(v)))
    return tuple(pairs)


def _body(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, dict):
        if "base64_string" in value:
            try:
                return base64.b64decode(value["base64_string"])
            except binascii.Error as e:
                raise ValueError(f"base64_string: {e}") from None
        value = value.get("string")
        if value is None:
            return b""
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")
