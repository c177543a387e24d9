"""Which responder answers a request, and in whose shape: host and path to a `Resolved`.

Owns the one decision of a request's provider (`resolve`): the route that answers it, its
path parameters, and the provider whose shape every answer to it takes (a made-up answer, an
error, a miss, a 413): `openai`, `azure`, `anthropic`, `gemini` or `ollama`. Also owns the
order in which the providers' routes are tried. Provider-specific paths come first (a
Gemini, Ollama or Anthropic path on any host answers in that provider's shape); the
OpenAI-compatible surfaces (`/v1/...`, Azure's `/openai/deployments/{d}/...`,
`/openai/v1/...`, Gemini's `/v1beta/openai/...`, or no version prefix at all) answer in
OpenAI's shape on any host, so self-hosted servers and reverse mode work too. On
Anthropic's and Google's own hosts an OpenAI-looking path that is not under `/openai/` is
left to their own routes (or a miss); Ollama's `GET /` answers only on port 11434 or an
`ollama*` host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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


@dataclass(frozen=True, slots=True)
class Resolved:
    """A request's route (None: no responder knows the endpoint) and its provider."""

    route: Route | None
    provider: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def costly(self) -> bool:
        """The answer may take a while to make (embeddings): off the event loop."""
        return self.route is not None and self.route.costly


def resolve(request: Request) -> Resolved:
    """The route and provider of `request`, decided once for every answer it may get.

    A route's own provider wins (a Gemini path on a gateway host answers and errs in
    Gemini's shape; `/v1/messages` anywhere in Anthropic's), OpenAI's shape becoming Azure's
    on Azure hosts and deployment paths. An endpoint no route knows takes its host's
    provider (Anthropic's, Google's, Azure's), else Ollama's for `/api/...` or port 11434,
    else Anthropic's for a `.../messages` path, else OpenAI's.
    """
    found = find(request)
    if found is not None:
        route, params = found
        provider = route.provider
        if provider == "openai" and _azure(request):
            provider = "azure"
        return Resolved(route, provider, params)
    return Resolved(None, _provider_by_host(request))


def _azure(request: Request) -> bool:
    return "azure" in request.host.lower() or request.path.startswith("/openai/deployments/")


def _provider_by_host(request: Request) -> str:
    host, path = request.host.lower(), request.path
    if host == "api.anthropic.com":
        return "anthropic"
    if host.endswith("googleapis.com"):
        return "openai" if "/openai/" in path else "gemini"
    if _azure(request):
        return "azure"
    if path.startswith("/api/") or request.port == 11434:
        return "ollama"
    if path.endswith("/messages"):
        return "anthropic"
    return "openai"
