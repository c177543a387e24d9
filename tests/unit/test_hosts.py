"""HostPolicy (replay_hosts) agrees with the routes; model naming."""

from __future__ import annotations

import pytest

from replay.hosts import HostPolicy, model_of
from replay.models import Request
from replay.providers import router


def req(host: str, path: str, port: int = 443, method: str = "POST") -> Request:
    return Request(method, "https", host, port, path, (), (), b"")


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("api.openai.com", "/anything"),
        ("api.anthropic.com", "/v1/messages"),
        ("generativelanguage.googleapis.com", "/v1/models/gemini-2.5-flash:generateContent"),
        ("myres.openai.azure.com", "/openai/deployments/gpt4/chat/completions"),
        ("vllm.internal", "/v1/chat/completions"),
        ("localhost", "/api/chat"),
        ("gateway.corp", "/v1/responses/resp_123/input_items"),
        ("gateway.corp", "/openai/v1/embeddings"),
        ("gateway.corp", "/v1beta/models/x:streamGenerateContent"),
    ],
)
def test_default_policy_handles_llm_traffic(host: str, path: str) -> None:
    assert HostPolicy().handles(host, path)


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("pypi.org", "/simple/openai/"),
        ("github.com", "/v1/users"),
        ("example.com", "/api/users"),
        ("example.com", "/"),
    ],
)
def test_default_policy_leaves_other_traffic_alone(host: str, path: str) -> None:
    assert not HostPolicy().handles(host, path)


def test_globs_replace_the_default() -> None:
    policy = HostPolicy(("*.example.com",))
    assert policy.handles("a.example.com", "/x")
    assert not policy.handles("api.openai.com", "/v1/chat/completions")
    assert HostPolicy(("*",)).handles("pypi.org", "/simple/")


SURFACES = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/gpt-4o"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/responses/resp_1"),
    ("DELETE", "/v1/responses/resp_1"),
    ("POST", "/v1/responses/resp_1/cancel"),
    ("GET", "/v1/responses/resp_1/input_items"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("POST", "/api/chat"),
    ("POST", "/api/generate"),
    ("POST", "/api/embed"),
    ("POST", "/api/embeddings"),
    ("GET", "/api/tags"),
    ("POST", "/api/show"),
    ("GET", "/api/version"),
    ("GET", "/api/ps"),
    ("POST", "/v1beta/models/gemini-2.5-flash:generateContent"),
    ("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
    ("POST", "/v1beta/models/gemini-2.5-flash:countTokens"),
    ("POST", "/v1beta/models/text-embedding-004:embedContent"),
    ("POST", "/v1beta/models/text-embedding-004:batchEmbedContents"),
    ("POST", "/v1beta/models/text-embedding-004:predict"),
    ("POST", "/openai/deployments/d/chat/completions"),
]
"""A request path for every route a responder answers."""


@pytest.mark.parametrize(("method", "path"), SURFACES)
def test_every_answered_surface_is_handled_on_any_host(method: str, path: str) -> None:
    assert router.find(req("gateway.example", path, 443, method)) is not None
    assert HostPolicy().handles("gateway.example", path)


def test_every_route_has_a_surface_above() -> None:
    for route in router.ROUTES:
        if route.path.pattern == "/":
            continue  # Ollama's GET /, answered on Ollama's own port only
        samples = [p for m, p in SURFACES if m == route.method]
        assert any(route.path.fullmatch(p) for p in samples), route.path.pattern


def test_model_of_body_then_path() -> None:
    chat = req("api.openai.com", "/v1/chat/completions")
    assert model_of(chat, b'{"model": "gpt-4o"}') == "gpt-4o"
    gem = req("generativelanguage.googleapis.com", "/v1beta/models/gemini-2.5-flash:countTokens")
    assert model_of(gem, b'{"contents": []}') == "gemini-2.5-flash"
    assert model_of(req("api.openai.com", "/v1/models"), b"") is None
    assert model_of(req("api.openai.com", "/v1/x"), b"{not json") is None
