"""`replay drift` must not cry wolf: two honest answers of one API never differ in shape.

The engine's own synthetic answers (the shapes the official SDKs parse, tests/sdk) stand in
for a provider answering twice: a short answer and a long one, text and a tool call, for
every route and both framings. `compare` must find nothing, in either direction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.inprocess import Harness

from replay.drift import Answer, compare
from replay.models import Request

Make = Callable[[str, bool, bool], Request]
FN = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def post(host: str, path: str, body: object, query: tuple[tuple[str, str], ...] = ()) -> Request:
    headers = (("content-type", "application/json"),)
    return Request("POST", "https", host, 443, path, query, headers, json.dumps(body).encode())


def chat(prompt: str, stream: bool, tools: bool) -> Request:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}], "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    if tools:
        body["tools"] = [{"type": "function", "function": FN}]
    return post("api.openai.com", "/v1/chat/completions", body)


def responses(prompt: str, stream: bool, tools: bool) -> Request:
    body: dict[str, object] = {"model": "gpt-4.1", "input": prompt, "stream": stream}
    if tools:
        body["tools"] = [{"type": "function", **FN}]
    return post("api.openai.com", "/v1/responses", body)


def anthropic(prompt: str, stream: bool, tools: bool) -> Request:
    body: dict[str, object] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 800,
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
    }
    if tools:
        body["tools"] = [{"name": FN["name"], "input_schema": FN["parameters"]}]
    return post("api.anthropic.com", "/v1/messages", body)


def gemini(prompt: str, stream: bool, tools: bool) -> Request:
    body: dict[str, object] = {"contents": [{"role": "user", "parts": [{"text": prompt}]}]}
    if tools:
        body["tools"] = [{"functionDeclarations": [FN]}]
    method = "streamGenerateContent" if stream else "generateContent"
    query = (("alt", "sse"),) if stream else ()
    path = f"/v1beta/models/gemini-2.5-flash:{method}"
    return post("generativelanguage.googleapis.com", path, body, query)


def ollama(prompt: str, stream: bool, tools: bool) -> Request:
    body: dict[str, object] = {
        "model": "llama3.2",
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
    }
    if tools:
        body["tools"] = [{"type": "function", "function": FN}]
    return post("localhost", "/api/chat", body)


ROUTES: dict[str, Make] = {
    "openai-chat": chat,
    "openai-responses": responses,
    "anthropic": anthropic,
    "gemini": gemini,
    "ollama": ollama,
}
SHORT = "hi"
LONG = "Tell me a long story about " + "dragons and castles, " * 40


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """Synthetic answers: a request that offers tools gets a tool call (docs/frameworks.md)."""
    made = Harness(tmp_path / "h")
    yield made
    made.close()


def answer(harness: Harness, request: Request) -> Answer:
    made = harness.answer(request)
    return Answer(made.status, tuple(made.headers), made.body)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_honest_answers_of_one_api_never_drift(harness: Harness, route: str, stream: bool) -> None:
    make = ROUTES[route]
    short = answer(harness, make(SHORT, stream, False))
    long = answer(harness, make(LONG, stream, False))
    called = answer(harness, make(SHORT, stream, True))
    assert short.body != long.body and b"get_weather" in called.body
    for a, b in ((short, long), (short, called), (long, called)):
        assert compare(a, b) == [], (route, stream)
        assert compare(b, a) == [], (route, stream)
