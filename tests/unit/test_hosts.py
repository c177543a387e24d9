"""HostPolicy (replay_hosts), provider and model naming."""

from __future__ import annotations

import pytest

from replay.hosts import HostPolicy, model_of, provider_of
from replay.models import Request


def req(host: str, path: str, port: int = 443) -> Request:
    return Request("POST", "https", host, port, path, (), (), b"")


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


@pytest.mark.parametrize(
    ("host", "path", "port", "provider"),
    [
        ("api.openai.com", "/v1/chat/completions", 443, "openai"),
        ("api.anthropic.com", "/v1/messages", 443, "anthropic"),
        ("generativelanguage.googleapis.com", "/v1/models/g:generateContent", 443, "gemini"),
        ("r.openai.azure.com", "/openai/deployments/d/chat/completions", 443, "azure"),
        ("127.0.0.1", "/api/chat", 11434, "ollama"),
        ("vllm", "/v1/chat/completions", 8000, "openai-compatible"),
    ],
)
def test_provider_of(host: str, path: str, port: int, provider: str) -> None:
    assert provider_of(req(host, path, port)) == provider


def test_model_of_body_then_path() -> None:
    chat = req("api.openai.com", "/v1/chat/completions")
    assert model_of(chat, b'{"model": "gpt-4o"}') == "gpt-4o"
    gem = req("generativelanguage.googleapis.com", "/v1beta/models/gemini-2.5-flash:countTokens")
    assert model_of(gem, b'{"contents": []}') == "gemini-2.5-flash"
    assert model_of(req("api.openai.com", "/v1/models"), b"") is None
    assert model_of(req("api.openai.com", "/v1/x"), b"{not json") is None
