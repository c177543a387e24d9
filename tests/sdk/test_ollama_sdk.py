"""The real ollama-python client (pydantic-validated) against the synthetic native answers,
made by the engine as the proxy makes them (in-process, no sockets).

A stream and its non-stream twin differ only in the body's `stream`: where a test compares
them, each is asked in a fresh run with `replay_ignore=stream`, so both have one key and so
one made-up answer."""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import jsonschema
import ollama
from support.inprocess import Harness, Harnesses, canned

from replay.providers.embeddings import vector

HOST = "http://127.0.0.1:11434"
MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]
WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": WEATHER_PARAMS},
}


def client(r: Harness) -> ollama.Client:
    return ollama.Client(host=HOST, transport=r.httpx_transport())


def twin(harness: Harnesses, rules: str | None = None) -> ollama.Client:
    """A client in a fresh run where the body's `stream` is not part of the key."""
    return client(harness(rules=rules, ignore="stream"))


def test_the_client_goes_through_the_given_transport(harness: Harnesses) -> None:
    r = harness()
    client(r).chat(model="llama3.2", messages=MESSAGES)
    request, _ = r.seen[0]
    assert (request.method, request.path, request.port) == ("POST", "/api/chat", 11434)
    assert json.loads(request.body)["stream"] is False


def test_chat_stream(harness: Harnesses) -> None:
    r = harness()
    parts = list(client(r).chat(model="llama3.2", messages=MESSAGES, stream=True))
    *pieces, final = parts
    assert all(isinstance(p, ollama.ChatResponse) for p in parts)
    assert pieces and not any(p.done for p in pieces)
    content_lines = [p for p in pieces if p.message.content]
    assert final.done and final.done_reason == "stop"
    assert final.eval_count == len(content_lines) == len(pieces)
    assert final.prompt_eval_count and final.total_duration and final.eval_duration
    text = "".join(p.message.content or "" for p in pieces)
    assert text.strip()
    _, answer = r.seen[0]
    assert answer.stream and len(answer.frames) == len(parts)
    assert all(f.endswith(b"\n") and f.count(b"\n") == 1 for f in answer.frames)
    assert dict(answer.headers)["content-type"] == "application/x-ndjson"


def test_chat_non_stream_matches_the_stream(harness: Harnesses) -> None:
    whole = twin(harness).chat(model="llama3.2", messages=MESSAGES)
    streamed = list(twin(harness).chat(model="llama3.2", messages=MESSAGES, stream=True))
    assert whole.done and whole.message.role == "assistant"
    assert whole.message.content == "".join(p.message.content or "" for p in streamed)
    assert whole.eval_count == streamed[-1].eval_count
    assert whole.created_at == streamed[-1].created_at


def test_generate_stream_and_non_stream(harness: Harnesses) -> None:
    parts = list(twin(harness).generate(model="llama3.2", prompt="Hi", stream=True))
    *pieces, final = parts
    assert all(isinstance(p, ollama.GenerateResponse) for p in parts)
    assert final.done and final.response == "" and final.context
    assert final.eval_count == len([p for p in pieces if p.response])
    whole = twin(harness).generate(model="llama3.2", prompt="Hi")
    assert whole.response == "".join(p.response or "" for p in pieces)
    assert list(whole.context or ()) == list(final.context)
    raw = client(harness()).generate(model="llama3.2", prompt="Hi", raw=True)
    assert raw.context is None


def test_canned_tool_calls(harness: Harnesses) -> None:
    rules = canned(None, {"name": "get_weather"})
    whole = twin(harness, rules).chat(model="llama3.2", messages=MESSAGES, tools=[WEATHER])
    (call,) = whole.message.tool_calls or ()
    assert call.function.name == "get_weather"
    jsonschema.validate(dict(call.function.arguments), WEATHER_PARAMS)
    parts = list(
        twin(harness, rules).chat(model="llama3.2", messages=MESSAGES, tools=[WEATHER], stream=True)
    )
    calls = [c for p in parts for c in p.message.tool_calls or ()]
    assert len(calls) == 1 and calls[0].function == call.function
    assert parts[-1].done and parts[-1].done_reason == "stop"


def test_format_schema_gives_valid_json(harness: Harnesses) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "capital": {"type": "string"},
            "languages": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        },
        "required": ["name", "capital", "languages"],
    }
    whole = client(harness()).chat(model="llama3.2", messages=MESSAGES, format=schema)
    jsonschema.validate(json.loads(whole.message.content or ""), schema)
    parts = client(harness()).generate(model="llama3.2", prompt="x", format=schema, stream=True)
    jsonschema.validate(json.loads("".join(p.response or "" for p in parts)), schema)
    as_json = client(harness()).chat(model="llama3.2", messages=MESSAGES, format="json")
    assert isinstance(json.loads(as_json.message.content or ""), dict)


def test_think(harness: Harnesses) -> None:
    whole = twin(harness).chat(model="qwen3:8b", messages=MESSAGES, think=True)
    assert whole.message.thinking and whole.message.content
    parts = list(twin(harness).chat(model="qwen3:8b", messages=MESSAGES, think=True, stream=True))
    assert "".join(p.message.thinking or "" for p in parts) == whole.message.thinking
    generated = client(harness()).generate(model="qwen3:8b", prompt="x", think=True)
    assert generated.thinking


def test_num_predict_gives_length(harness: Harnesses) -> None:
    parts = list(
        client(harness()).chat(
            model="llama3.2", messages=MESSAGES, options={"num_predict": 4}, stream=True
        )
    )
    assert parts[-1].done_reason == "length" and parts[-1].eval_count == 4
    assert len(parts) == 5
    whole = client(harness()).generate(model="llama3.2", prompt="x", options={"num_predict": 2})
    assert whole.done_reason == "length" and whole.eval_count == 2


def test_load_request(harness: Harnesses) -> None:
    loaded = client(harness()).chat(model="llama3.2", messages=[])
    assert loaded.done and loaded.done_reason == "load" and loaded.message.content == ""
    gen = list(client(harness()).generate(model="llama3.2", stream=True))
    assert len(gen) == 1 and gen[0].done_reason == "load"


def test_embed(harness: Harnesses) -> None:
    r = harness()
    c = client(r)
    single = c.embed(model="nomic-embed-text", input="the sky")
    batch = c.embed(model="nomic-embed-text", input=["sea", "the sky"])
    assert len(single.embeddings) == 1 and len(single.embeddings[0]) == 768
    assert list(batch.embeddings[1]) == list(single.embeddings[0])
    assert list(batch.embeddings[0]) == vector("nomic-embed-text", "sea", 768)
    assert math.isclose(math.hypot(*batch.embeddings[0]), 1.0, rel_tol=1e-5)
    small = c.embed(model="nomic-embed-text", input="the sky", dimensions=128)
    assert len(small.embeddings[0]) == 128
    assert batch.prompt_eval_count == 3


def test_legacy_embeddings(harness: Harnesses) -> None:
    got = client(harness()).embeddings(model="nomic-embed-text", prompt="hello")
    assert list(got.embedding) == vector("nomic-embed-text", "hello", 768)


def test_list_show_ps(harness: Harnesses) -> None:
    c = client(harness())
    listed = c.list()
    assert [m.model for m in listed.models][:2] == ["llama3.2:latest", "qwen3:8b"]
    assert all(m.size and m.digest and m.details and m.modified_at for m in listed.models)
    shown = c.show("llama3.2")
    assert shown.modelinfo and shown.capabilities == ["completion", "tools"]
    assert shown.details and shown.details.family == "llama" and shown.modified_at
    assert c.show("nomic-embed-text").capabilities == ["embedding"]
    running = c.ps()
    assert running.models and all(m.expires_at and m.size_vram for m in running.models)


def test_async_client_stream(harness: Harnesses) -> None:
    async def run() -> list[ollama.ChatResponse]:
        c = ollama.AsyncClient(host=HOST, transport=harness().httpx_async_transport())
        stream = await c.chat(model="llama3.2", messages=MESSAGES, stream=True)
        return [part async for part in stream]

    parts = asyncio.run(run())
    sync = list(client(harness()).chat(model="llama3.2", messages=MESSAGES, stream=True))
    assert parts == sync and parts[-1].done


def test_root_through_httpx(harness: Harnesses) -> None:
    with httpx.Client(transport=harness().httpx_transport(), base_url=HOST) as http:
        got = http.get("/")
        head = http.head("/")
        version = http.get("/api/version")
    assert got.status_code == 200 and got.text == "Ollama is running"
    assert head.status_code == 200 and head.content == b""
    assert version.json() == {"version": "0.12.6"}


def test_same_request_same_bytes(harness: Harnesses) -> None:
    def run() -> list[bytes]:
        r = harness()
        c = client(r)
        list(c.chat(model="llama3.2", messages=MESSAGES, stream=True, think=True))
        c.generate(model="llama3.2", prompt="x")
        c.embed(model="nomic-embed-text", input=["a"])
        for _ in range(2):  # occurrences 0 and 1: different answers
            list(c.chat(model="llama3.2", messages=MESSAGES, stream=True))
        return [answer.body for _, answer in r.seen]

    first, again = run(), run()
    assert first == again
    assert first[3] != first[4]
