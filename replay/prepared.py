"""A request made ready once: decoded, parsed, routed, and placed in its namespace.

Owns `Prepared`: the request as the client sent it, the same request with its body
content-decoded (the form that is fingerprinted, matched by rules, answered by responders
and stored), its JSON body parsed once (lazily, for rules, responders, the model name and
the report), and its `Resolved` route and provider (router.resolve, decided once: every
answer, error and miss takes that provider's shape). The fingerprint parses the body on its
own, canonically (exact numbers): that is the only other parse.
"""

from __future__ import annotations

import json
from typing import Any

from replay.canonical import decoded_request
from replay.hosts import model_of
from replay.models import Request
from replay.providers.router import Resolved, resolve

_UNPARSED: Any = object()


class Prepared:
    """One request, decoded and routed; its JSON parsed on first use."""

    __slots__ = ("_body", "decoded", "namespace", "request", "resolved")

    def __init__(self, request: Request, namespace: str) -> None:
        self.request = request
        """As the client sent it (body still content-encoded)."""
        self.namespace = namespace
        self.decoded = decoded_request(request)
        """Body content-decoded (when it can be), `content-encoding` dropped."""
        self.resolved: Resolved = resolve(self.decoded)
        self._body: Any = _UNPARSED

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


def _parse(data: bytes) -> Any:
    stripped = data.lstrip()
    if stripped[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None
