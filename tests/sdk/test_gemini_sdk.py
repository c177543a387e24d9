"""The real google-genai SDK parses the synthetic Gemini answers, streaming and not, made by
the engine as the proxy makes them (the in-process harness: httpx mock transports, no
sockets).

A stream (`:streamGenerateContent`) and a plain call (`:generateContent`) have different
paths, so different keys and different made-up texts: where a test compares the two, the
rules file gives both one canned text."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import jsonschema
import pytest
from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials
from pydantic import BaseModel
from support.inprocess import Harness, Harnesses, canned

from replay.providers.text import count_tokens

MODEL = "gemini-2.5-flash"
PROMPT = "Tell me about cassettes."
CANNED_PROMPT = "Say the canned text."
CANNED_TEXT = "A cassette holds a recorded answer, played back the same way on every run."
CANNED = f"""
rules:
  - match: {{last_user_message: {CANNED_PROMPT!r}}}
    reply: {{text: {CANNED_TEXT!r}}}
"""


def client(r: Harness, **kwargs: Any) -> genai.Client:
    options = types.HttpOptions(
        client_args={"transport": r.httpx_transport()},
        async_client_args={"transport": r.httpx_async_transport()},
    )
    kwargs.setdefault("api_key", "k")
    return genai.Client(http_options=options, **kwargs)


def lower_types(schema: Any) -> Any:
    """Gemini's uppercase OpenAPI schema as JSON Schema (`"OBJECT"` → `"object"`)."""
    if isinstance(schema, dict):
        return {
            k: v.lower() if k == "type" and isinstance(v, str) else lower_types(v)
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [lower_types(v) for v in schema]
    return schema


def test_generate_content_text_and_usage(harness: Harnesses) -> None:
    r = harness()
    c = client(r)  # keep a reference: a collected Client closes its httpx client
    response = c.models.generate_content(model=MODEL, contents=PROMPT)
    assert response.text
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_token_count
    assert usage.candidates_token_count == count_tokens(response.text)
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert response.model_version == MODEL
    assert response.response_id
    ((request, answer),) = r.seen
    assert request.path == f"/v1/models/{MODEL}:generateContent"
    assert answer.status == 200


def test_generate_content_stream_chunks_and_usage(harness: Harnesses) -> None:
    r = harness()
    c = client(r)
    chunks = list(c.models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert 2 <= len(chunks) <= 4
    assert all(ch.text for ch in chunks)
    text = "".join(ch.text or "" for ch in chunks)
    last = chunks[-1]
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert all(ch.candidates and ch.candidates[0].finish_reason is None for ch in chunks[:-1])
    assert last.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == count_tokens(text)
    ((stream_request, stream_answer),) = r.seen
    assert stream_request.path == f"/v1/models/{MODEL}:streamGenerateContent"
    assert ("alt", "sse") in stream_request.query
    assert stream_answer.stream and len(stream_answer.frames) == len(chunks)


def test_stream_joins_to_the_text_of_the_plain_call(harness: Harnesses) -> None:
    c = client(harness(rules=CANNED))
    full = c.models.generate_content(model=MODEL, contents=CANNED_PROMPT)
    chunks = list(c.models.generate_content_stream(model=MODEL, contents=CANNED_PROMPT))
    assert full.text == CANNED_TEXT
    assert 2 <= len(chunks) <= 4
    assert "".join(ch.text or "" for ch in chunks) == full.text
    last = chunks[-1]
    assert last.candidates is not None
    assert last.candidates[0].finish_reason == types.FinishReason.STOP
    assert last.usage_metadata is not None and full.usage_metadata is not None
    assert last.usage_metadata.candidates_token_count == full.usage_metadata.candidates_token_count
    assert full.usage_metadata.candidates_token_count == count_tokens(CANNED_TEXT)


def test_async_stream(harness: Harnesses) -> None:
    r = harness()

    async def run() -> list[str]:
        c = client(r)
        stream = await c.aio.models.generate_content_stream(model=MODEL, contents=PROMPT)
        return [chunk.text or "" async for chunk in stream]

    texts = asyncio.run(run())
    assert len(texts) >= 2 and all(texts)
    c = client(harness())  # the same request in a fresh run, synchronously
    sync = [ch.text for ch in c.models.generate_content_stream(model=MODEL, contents=PROMPT)]
    assert texts == sync


def test_forced_function_call_args_valid_against_the_schema(harness: Harnesses) -> None:
    parameters = {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING"},
            "days": {"type": "INTEGER", "minimum": 1, "maximum": 5},
            "units": {"type": "STRING", "enum": ["metric", "imperial"]},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
        },
        "required": ["city", "days"],
    }
    config = types.GenerateContentConfig(
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(
                        name="forecast", parameters=types.Schema.model_validate(parameters)
                    ),
                    types.FunctionDeclaration(name="unused", description="Never allowed."),
                ]
            )
        ],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(
                mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["forecast"]
            )
        ),
    )
    c = client(harness())
    response = c.models.generate_content(model=MODEL, contents="Weather in Paris?", config=config)
    assert response.function_calls is not None
    (call,) = response.function_calls
    assert call.name == "forecast"
    assert isinstance(call.args, dict)
    jsonschema.validate(call.args, lower_types(parameters))
    assert response.text is None


def test_auto_mode_calls_the_function_then_answers_in_text(harness: Harnesses) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="f")])],
    )
    c = client(harness())
    response = c.models.generate_content(model=MODEL, contents=PROMPT, config=config)
    assert response.function_calls is not None
    assert [fc.name for fc in response.function_calls] == ["f"]
    assert response.candidates is not None and response.candidates[0].content is not None
    history = [
        types.Content(role="user", parts=[types.Part(text=PROMPT)]),
        response.candidates[0].content,
        types.Content(
            role="user", parts=[types.Part.from_function_response(name="f", response={"r": 1})]
        ),
    ]
    then = c.models.generate_content(model=MODEL, contents=history, config=config)
    assert then.function_calls is None
    assert then.text


def test_canned_reply_text_and_function_call(harness: Harnesses) -> None:
    rules = canned("Looking it up.", {"name": "lookup", "arguments": {"q": "tapes"}})
    c = client(harness(rules=rules))
    response = c.models.generate_content(model=MODEL, contents=PROMPT)
    assert response.candidates is not None and response.candidates[0].content is not None
    parts = response.candidates[0].content.parts
    assert parts is not None
    assert parts[0].text == "Looking it up."
    assert response.function_calls is not None
    assert [(fc.name, fc.args) for fc in response.function_calls] == [("lookup", {"q": "tapes"})]


class Recipe(BaseModel):
    name: str
    steps: list[str]
    minutes: int | None = None


def test_json_mode_with_a_pydantic_schema_is_parsed(harness: Harnesses) -> None:
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_schema=Recipe
    )
    c = client(harness())
    response = c.models.generate_content(model=MODEL, contents="A recipe, please.", config=config)
    assert isinstance(response.parsed, Recipe)
    assert response.text is not None
    assert Recipe.model_validate_json(response.text) == response.parsed


def test_json_mode_with_a_json_schema(harness: Harnesses) -> None:
    schema = Recipe.model_json_schema()
    config = types.GenerateContentConfig(
        response_mime_type="application/json", response_json_schema=schema
    )
    c = client(harness())
    response = c.models.generate_content(model=MODEL, contents="A recipe, please.", config=config)
    assert response.text is not None
    jsonschema.validate(json.loads(response.text), schema)


def test_max_output_tokens_finishes_with_max_tokens(harness: Harnesses) -> None:
    config = types.GenerateContentConfig(max_output_tokens=4)
    c = client(harness())
    response = c.models.generate_content(model=MODEL, contents=PROMPT, config=config)
    assert response.candidates is not None
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert response.text is not None and count_tokens(response.text) == 4
    assert response.usage_metadata is not None
    assert response.usage_metadata.candidates_token_count == 4


def test_candidate_count_two(harness: Harnesses) -> None:
    config = types.GenerateContentConfig(candidate_count=2)
    c = client(harness())
    response = c.models.generate_content(model=MODEL, contents=PROMPT, config=config)
    assert response.candidates is not None and len(response.candidates) == 2
    texts = []
    for candidate in response.candidates:
        assert candidate.content is not None and candidate.content.parts
        texts.append(candidate.content.parts[0].text)
    assert texts[0] != texts[1]
    assert [c.index for c in response.candidates] == [0, 1]


def test_embed_content_one_and_several_texts(harness: Harnesses) -> None:
    r = harness()
    c = client(r)
    one = c.models.embed_content(model="gemini-embedding-001", contents="alpha")
    assert one.embeddings is not None
    (alone,) = one.embeddings
    assert alone.values is not None and len(alone.values) == 3072
    several = c.models.embed_content(model="gemini-embedding-001", contents=["beta", "alpha"])
    assert several.embeddings is not None
    beta, alpha = (e.values for e in several.embeddings)
    assert alpha == alone.values
    assert beta != alpha
    assert r.seen[0][0].path.endswith(":batchEmbedContents")


def test_embed_content_output_dimensionality(harness: Harnesses) -> None:
    c = client(harness())
    response = c.models.embed_content(
        model="gemini-embedding-001",
        contents=["a", "b"],
        config=types.EmbedContentConfig(output_dimensionality=64),
    )
    assert response.embeddings is not None
    assert [len(e.values or ()) for e in response.embeddings] == [64, 64]


def test_count_tokens_equals_the_usage_prompt_count(harness: Harnesses) -> None:
    c = client(harness())
    contents = "How many tokens is this sentence, roughly?"
    counted = c.models.count_tokens(model=MODEL, contents=contents)
    generated = c.models.generate_content(model=MODEL, contents=contents)
    assert generated.usage_metadata is not None
    assert counted.total_tokens == generated.usage_metadata.prompt_token_count
    assert counted.total_tokens is not None and counted.total_tokens > 5


def test_vertex_client_generate_stream_and_embed(harness: Harnesses) -> None:
    r = harness(rules=CANNED)
    c = client(
        r,
        api_key=None,
        vertexai=True,
        project="p",
        location="us-central1",
        credentials=Credentials(token="t"),
    )
    response = c.models.generate_content(model=MODEL, contents=PROMPT)
    assert response.text and response.usage_metadata is not None
    assert response.usage_metadata.candidates_token_count == count_tokens(response.text)
    chunks = list(c.models.generate_content_stream(model=MODEL, contents=PROMPT))
    assert len(chunks) >= 2 and all(ch.text for ch in chunks)
    canned = c.models.generate_content(model=MODEL, contents=CANNED_PROMPT)
    streamed = c.models.generate_content_stream(model=MODEL, contents=CANNED_PROMPT)
    assert "".join(ch.text or "" for ch in streamed) == canned.text == CANNED_TEXT
    one = c.models.embed_content(
        model="gemini-embedding-001",
        contents="a",
        config=types.EmbedContentConfig(output_dimensionality=8),
    )
    assert one.embeddings is not None and len(one.embeddings[0].values or ()) == 8
    legacy = c.models.embed_content(model="text-embedding-004", contents=["a", "b"])
    assert legacy.embeddings is not None
    assert [len(e.values or ()) for e in legacy.embeddings] == [768, 768]
    assert r.seen[0][0].path.startswith("/v1beta1/projects/p/locations/us-central1/publishers/")


@pytest.mark.parametrize("stream", [False, True])
def test_same_request_same_bytes(stream: bool, harness: Harnesses) -> None:
    def run() -> list[bytes]:
        r = harness()
        c = client(r)
        config = types.GenerateContentConfig(candidate_count=2, max_output_tokens=30)
        if stream:
            list(c.models.generate_content_stream(model=MODEL, contents=PROMPT, config=config))
        else:
            c.models.generate_content(model=MODEL, contents=PROMPT, config=config)
        return [b"".join(a.frames) for _, a in r.seen]

    assert run() == run()
