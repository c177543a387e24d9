"""A request made ready once: decoded, parsed, routed, and placed in its namespace.

Refuses what it will not process as sent: a body larger than `replay_max_body` once decoded
(BodyTooLarge: a 413; decoding stops at the cap), JSON nested deeper than any parser should
recurse (JsonTooDeep: a 400).

Owns `Prepared`: the request as the client sent it, the same request with its body
content-decoded (the form that is fingerprinted, matched by rules, answered by responders
and stored), its JSON body parsed once (lazily, for rules, responders, the model name and
the report), and its `Resolved` route and provider (router.resolve, decided once, when
first needed: every answer, error and miss takes that provider's shape). The fingerprint
parses the body on its own, canonically (exact numbers): that is the only other parse.
"""

from __future__ import annotations

import json
from typing import Any

from replay.canonical import DEFAULT_MAX_BODY, check_json_depth, decoded_request
from replay.errors import BodyTooLarge
from replay.hosts import model_of
from replay.models import Request
from replay.providers.router import Resolved, resolve

_UNPARSED: Any = object()


class Prepared:
    """One request, decoded and routed; its JSON parsed on first use."""

    __slots__ = ("_body", "_resolved", "decoded", "namespace", "request")

    def __init__(self, request: Request, namespace: str, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.request = request
        """As the client sent it (body still content-encoded)."""
        self.namespace = namespace
        if len(request.body) > max_body:
            raise BodyTooLarge(max_body)
        self.decoded = decoded_request(request, max_body)
        """Body content-decoded (when it can be), `content-encoding` dropped."""
        if self.decoded.body[:1] in (b"{", b"[") or b"json" in _content_type(request):
            check_json_depth(self.decoded.body)
        self._resolved: Resolved | None = None
        self._body: Any = _UNPARSED

    @property
    def resolved(self) -> Resolved:
        """The route and provider (`router.resolve`), decided on first use: a hit needs
        neither."""
        if self._resolved is None:
            self._resolved = resolve(self.decoded)
        return self._resolved

    @property
    def body(self) -> Any:
        """The JSON body (any JSON value), or None when it is empty or not JSON. Parsed
        once; treat it as read-only."""
        if self._body is _UNPARSED:
            self._body = _parse(self.decoded.body)
        return self._body

    @property
    def model(self) -> str | None:
        """The body's `model`, else the path's (a Gemini model, an Azure deployment)."""
        body = self.body
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            return str(body["model"])
        return model_of(self.request, b"")  # b"": the path's only, no second parse

    @property
    def head(self) -> bool:
        """An answer to HEAD carries no body."""
        return self.request.method.upper() == "HEAD"

    @property
    def provider(self) -> str:
        return self.resolved.provider


def _content_type(request: Request) -> bytes:
    return (request.header("content-type") or "").lower().encode("latin-1", "replace")


def _parse(data: bytes) -> Any:
    stripped = data.lstrip()
    if stripped[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None
