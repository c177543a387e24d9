"""Which responder answers a request: host and path to a `Route`.

Owns the order in which the providers' routes are tried and the request → `Call` step
(decoded body, path parameters). Provider-specific hosts come first (a Gemini, Ollama or
Anthropic path on any host answers in that provider's shape); the OpenAI-compatible
surfaces (`/v1/...`, Azure's `/openai/deployments/{d}/...`, `/openai/v1/...`, Gemini's
`/v1beta/openai/...`, or no version prefix at all) answer in OpenAI's shape on any host, so
self-hosted servers and reverse mode work too. On Anthropic's and Google's own hosts an
OpenAI-looking path that is not under `/openai/` is left to their own routes (or a miss);
Ollama's `GET /` answers only on port 11434 or an `ollama*` host.
"""

from __future__ import annotations

from collections.abc import Mapping

from replay.models import Request
from replay.providers import (
    anthropic_api,
    gemini_api,
    ollama_api,
    openai_api,
    openai_responses,
)
from replay.providers.base import Route

ROUTES: tuple[Route, ...] = (
    *gemini_api.ROUTES,
    *ollama_api.ROUTES,
    *anthropic_api.ROUTES,
    *openai_responses.ROUTES,
    *openai_api.ROUTES,
)


_FOREIGN_HOSTS = ("api.anthropic.com", "googleapis.com")
"""Hosts whose own API is not OpenAI's: an OpenAI-looking path there (Anthropic's
`/v1/models`, Gemini's `/v1/models/{m}`) is not answered in OpenAI's shape, except under
Gemini's OpenAI-compatible `/openai/` surface."""


def _answers_here(route: Route, request: Request) -> bool:
    host = request.host.lower()
    if route.provider == "openai" and "/openai/" not in request.path:
        return not host.endswith(_FOREIGN_HOSTS)
    if route.provider == "ollama" and request.path == "/":
        return request.port == 11434 or host.startswith("ollama")
    return True


def find(request: Request) -> tuple[Route, Mapping[str, str]] | None:
    """The first route whose method and path match, with the path's named groups."""
    method = request.method.upper()
    for route in ROUTES:
        if route.method != method and not (route.method == "GET" and method == "HEAD"):
            continue
        if not _answers_here(route, request):
            continue
        m = route.path.fullmatch(request.path)
        if m is not None:
            return route, {k: v for k, v in m.groupdict().items() if v is not None}
    return None
