"""The real openai SDK parses the synthetic OpenAI-shaped answers, streamed and not.

Chat completions (text, `n`, usage, `max_tokens`, tools, `.parse()`, the `.stream()` helper),
legacy completions, embeddings, models, and the Azure, Gemini-compatible and Ollama `/v1`
surfaces, all in-process through the engine, as the proxy answers them (`Harness`, no
sockets); also run on openai 1.x by `make compat`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import struct
from typing import Any, Literal

import openai
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel
from support.inprocess import Harness, Harnesses, canned, http_client_for
from support.schemas import WEATHER

from replay.models import Outcome, Request
from replay.providers.base import Answer, prompt_tokens
from replay.providers.embeddings import vector
from replay.providers.text import count_tokens

USER: list[Any] = [{"role": "user", "content": "What is the weather like in Paris today?"}]
MODEL = "gpt-4o-mini"

TIME: dict[str, Any] = {
    "type": "object",
    "properties": {"tz": {"type": "string"}, "utc": {"type": "boolean"}},
    "required": ["tz"],
}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "parameters": TIME}},
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}


def client(r: Harness, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(api_key="k", http_client=http_client_for(openai, r), **kwargs)


def last(r: Harness) -> tuple[Request, Answer]:
    return r.seen[-1]


def validate(arguments: str, name: str) -> dict[str, Any]:
    value = json.loads(arguments)
    Draft202012Validator(SCHEMAS[name]).validate(value)
    assert isinstance(value, dict)
    return value


def sse_payloads(answer: Answer) -> list[Any]:
    """The JSON payloads of an SSE answer, checking its framing on the way."""
    assert answer.stream
    assert answer.body.endswith(b"data: [DONE]\n\n")
    assert b"event:" not in answer.body
    frames = [f for f in answer.frames if f != b"data: [DONE]\n\n"]
    assert all(f.startswith(b"data: ") and f.endswith(b"\n\n") for f in frames)
    return [json.loads(f[len(b"data: ") :]) for f in frames]


# -- chat completions ---------------------------------------------------------------------


def test_chat_non_stream(harness: Harnesses) -> None:
    r = harness()
    out = client(r).chat.completions.create(model=MODEL, messages=USER)
    choice = out.choices[0]
    assert out.object == "chat.completion"
    assert re.fullmatch(r"chatcmpl-[A-Za-z0-9]{29}", out.id)
    assert re.fullmatch(r"fp_[0-9a-f]{10}", out.system_fingerprint or "")
    assert re.fullmatch(r"req_[0-9a-f]{32}", out._request_id or "")
    assert out.model == MODEL
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content and choice.message.content.endswith(".")
    assert choice.message.tool_calls is None
    assert out.usage is not None
    assert out.usage.completion_tokens == count_tokens(choice.message.content)
    assert out.usage.prompt_tokens == prompt_tokens(USER)
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    assert last(r)[1].headers[0] == ("content-type", "application/json")
    assert r.outcomes == [Outcome.SYNTHETIC]  # made up by the engine, as the proxy does


def test_chat_stream_sends_one_token_per_chunk(harness: Harnesses) -> None:
    r = harness()
    chunks = list(client(r).chat.completions.create(model=MODEL, messages=USER, stream=True))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    pieces = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert pieces and all(isinstance(p, str) and count_tokens(p) == 1 for p in pieces)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None
    assert len({c.id for c in chunks}) == 1
    payloads = sse_payloads(last(r)[1])
    assert payloads[-1]["choices"][0]["delta"] == {}
    assert all("usage" not in p for p in payloads)
    assert len(last(r)[1].frames) == len(chunks) + 1  # frame by frame, then [DONE]


def test_stream_helper_final_completion_matches_the_events(harness: Harnesses) -> None:
    r = harness()
    with client(r).chat.completions.stream(model=MODEL, messages=USER) as stream:
        text = "".join(e.delta for e in stream if e.type == "content.delta")
        final = stream.get_final_completion()
    assert text and final.choices[0].message.content == text
    assert final.choices[0].finish_reason == "stop"


class Step(BaseModel):
    explanation: str
    output: int


class Answer_(BaseModel):
    steps: list[Step]
    final: str
    mood: Literal["calm", "curious"]
    score: float | None


def test_parse_with_a_pydantic_model(harness: Harnesses) -> None:
    r = harness()
    out = client(r).chat.completions.parse(
        model=MODEL,
        messages=USER,
        response_format=Answer_,
    )
    message = out.choices[0].message
    assert isinstance(message.parsed, Answer_)
    assert message.parsed == Answer_.model_validate_json(message.content or "")
    assert out.choices[0].finish_reason == "stop"
    sent = json.loads(last(r)[0].body)
    assert sent["response_format"]["type"] == "json_schema"


def test_forced_tool_arguments_are_valid_against_the_schema(harness: Harnesses) -> None:
    r = harness()
    out = client(r).chat.completions.create(
        model=MODEL,
        messages=USER,
        tools=TOOLS,
        tool_choice="required",
    )
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert re.fullmatch(r"call_[A-Za-z0-9]{24}", call.id)
    validate(call.function.arguments, call.function.name)


def test_named_tool_streamed_through_the_helper(harness: Harnesses) -> None:
    r = harness()
    with client(r).chat.completions.stream(
        model=MODEL,
        messages=USER,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    ) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_time"]
    assert done[0].arguments == calls[0].function.arguments
    validate(calls[0].function.arguments, "get_time")
    assert final.choices[0].finish_reason == "tool_calls"
    arg_chunks = [
        p["choices"][0]["delta"]["tool_calls"][0]
        for p in sse_payloads(last(r)[1])
        if "tool_calls" in p["choices"][0]["delta"]
    ]
    assert arg_chunks[0]["function"] == {"name": "get_time", "arguments": ""}
    assert "".join(c["function"]["arguments"] for c in arg_chunks) == calls[0].function.arguments


class Weather(BaseModel):
    city: str
    days: int


def test_parse_with_a_strict_pydantic_tool(harness: Harnesses) -> None:
    r = harness()
    out = client(r).chat.completions.parse(
        model=MODEL,
        messages=USER,
        tools=[openai.pydantic_function_tool(Weather)],
        tool_choice="required",
    )
    call = (out.choices[0].message.tool_calls or [])[0]
    assert isinstance(call.function.parsed_arguments, Weather)


CANNED = canned(
    "Let me check.",
    {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "days": 2}},
    {"name": "get_time"},
)


def test_parallel_canned_tool_calls(harness: Harnesses) -> None:
    r = harness(rules=CANNED)
    out = client(r).chat.completions.create(model=MODEL, messages=USER, tools=TOOLS)
    message = out.choices[0].message
    assert message.content == "Let me check."
    calls = message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {
        "city": "Paris",
        "unit": "celsius",
        "days": 2,
    }
    validate(calls[1].function.arguments, "get_time")
    assert len({c.id for c in calls}) == 2
    assert out.choices[0].finish_reason == "tool_calls"


def test_parallel_canned_tool_calls_streamed(harness: Harnesses) -> None:
    r = harness(rules=CANNED)
    with client(r).chat.completions.stream(model=MODEL, messages=USER, tools=TOOLS) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check."
    calls = message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments)["city"] == "Paris"
    validate(calls[1].function.arguments, "get_time")
    indices = [
        p["choices"][0]["delta"]["tool_calls"][0]["index"]
        for p in sse_payloads(last(r)[1])
        if "tool_calls" in p["choices"][0]["delta"]
    ]
    assert indices == sorted(indices) and set(indices) == {0, 1}


def test_n_choices_each_have_their_own_text(harness: Harnesses) -> None:
    r = harness()
    out = client(r).chat.completions.create(model=MODEL, messages=USER, n=3)
    texts = [c.message.content for c in out.choices]
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert len(set(texts)) == 3
    assert out.usage is not None
    assert out.usage.completion_tokens == sum(count_tokens(t or "") for t in texts)


def test_n_choices_stream_interleaved_and_through_the_helper(harness: Harnesses) -> None:
    r = harness()
    kwargs: Any = {"model": MODEL, "messages": USER, "n": 2}
    raw = list(client(r).chat.completions.create(stream=True, **kwargs))
    assert [c.choices[0].index for c in raw[:4]] == [0, 1, 0, 1]
    texts = [
        "".join(c.choices[0].delta.content or "" for c in raw if c.choices[0].index == i)
        for i in (0, 1)
    ]
    assert texts[0] != texts[1]
    assert [c.choices[0].finish_reason for c in raw if c.choices[0].finish_reason] == ["stop"] * 2
    # The helper's request in a fresh run (the same key and occurrence): the same answer.
    with client(harness()).chat.completions.stream(**kwargs) as stream:
        final = stream.get_final_completion()
    assert [c.message.content for c in final.choices] == texts


def test_include_usage_counts_what_was_streamed(harness: Harnesses) -> None:
    r = harness()
    chunks = list(
        client(r).chat.completions.create(
            model=MODEL,
            messages=USER,
            n=2,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *body, tail = chunks
    assert all(c.usage is None for c in body)
    assert tail.choices == [] and tail.usage is not None
    content_chunks = [c for c in body if c.choices[0].delta.content]
    assert tail.usage.completion_tokens == len(content_chunks)
    assert tail.usage.prompt_tokens == prompt_tokens(USER)
    payloads = sse_payloads(last(r)[1])
    assert all("usage" in p for p in payloads)


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_cuts_the_text(field: str, harness: Harnesses) -> None:
    r = harness()
    kwargs: Any = {"model": MODEL, "messages": USER, field: 3}
    out = client(r).chat.completions.create(**kwargs)
    assert out.choices[0].finish_reason == "length"
    assert count_tokens(out.choices[0].message.content or "") == 3
    assert out.usage is not None and out.usage.completion_tokens == 3
    chunks = list(client(r).chat.completions.create(stream=True, **kwargs))
    assert sum(1 for c in chunks if c.choices[0].delta.content) == 3
    assert chunks[-1].choices[0].finish_reason == "length"


def test_length_finish_makes_parse_raise_as_the_real_api_would(harness: Harnesses) -> None:
    r = harness()
    with pytest.raises(openai.LengthFinishReasonError):
        client(r).chat.completions.parse(
            model=MODEL,
            messages=USER,
            response_format=Answer_,
            max_completion_tokens=2,
        )


def test_async_client_stream(harness: Harnesses) -> None:
    r = harness()

    async def main() -> tuple[str, str | None]:
        c = openai.AsyncOpenAI(
            api_key="k", http_client=http_client_for(openai, r, asynchronous=True)
        )
        stream = await c.chat.completions.create(model=MODEL, messages=USER, stream=True)
        text, finish = "", None
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        await c.close()
        return text, finish

    text, finish = asyncio.run(main())
    assert text.endswith(".") and finish == "stop"


# -- legacy completions -------------------------------------------------------------------


def test_legacy_completions_one_choice_per_prompt_and_n(harness: Harnesses) -> None:
    r = harness()
    out = client(r).completions.create(
        model="gpt-3.5-turbo-instruct", prompt=["Say hi", "Say bye"], n=2, max_tokens=50
    )
    assert out.object == "text_completion"
    assert re.fullmatch(r"cmpl-[A-Za-z0-9]{29}", out.id)
    assert [c.index for c in out.choices] == [0, 1, 2, 3]
    assert len({c.text for c in out.choices}) == 4
    assert all(c.finish_reason == "stop" for c in out.choices)
    assert out.usage is not None
    assert out.usage.prompt_tokens == 4
    assert out.usage.completion_tokens == sum(count_tokens(c.text) for c in out.choices)


def test_legacy_completions_stream_with_usage(harness: Harnesses) -> None:
    r = harness()
    chunks = list(
        client(r).completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Say hi",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *body, tail = chunks
    assert all(c.object == "text_completion" for c in chunks)
    pieces = [c.choices[0].text for c in body if c.choices[0].text]
    assert body[-1].choices[0].finish_reason == "length"  # the endpoint's max_tokens is 16
    assert tail.choices == [] and tail.usage is not None
    assert tail.usage.completion_tokens == len(pieces) == 16
    sse_payloads(last(r)[1])


# -- embeddings ---------------------------------------------------------------------------


def test_embeddings_default_base64(harness: Harnesses) -> None:
    r = harness()
    out = client(r).embeddings.create(model="text-embedding-3-small", input="hello world")
    sent = json.loads(last(r)[0].body)
    assert sent["encoding_format"] == "base64"
    raw = json.loads(last(r)[1].body)
    assert isinstance(raw["data"][0]["embedding"], str)
    values = out.data[0].embedding
    assert len(values) == 1536
    assert values == vector("text-embedding-3-small", "hello world", 1536)
    assert out.usage.prompt_tokens == count_tokens("hello world")


def test_embeddings_float_with_dimensions(harness: Harnesses) -> None:
    r = harness()
    out = client(r).embeddings.create(
        model="text-embedding-3-large", input=["a", "b"], encoding_format="float", dimensions=8
    )
    assert [d.index for d in out.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in out.data)
    assert math.isclose(math.fsum(v * v for v in out.data[0].embedding), 1.0, rel_tol=1e-5)
    raw = json.loads(last(r)[1].body)
    assert isinstance(raw["data"][0]["embedding"], list)
    default = client(r).embeddings.create(model="text-embedding-3-large", input="a")
    assert len(default.data[0].embedding) == 3072


def test_same_text_same_vector_across_batches(harness: Harnesses) -> None:
    r = harness()
    c = client(r)
    batch = c.embeddings.create(model="text-embedding-3-small", input=["one", "two", "three"])
    alone = c.embeddings.create(model="text-embedding-3-small", input="two")
    floats = c.embeddings.create(
        model="text-embedding-3-small", input=["zero", "two"], encoding_format="float"
    )
    assert batch.data[1].embedding == alone.data[0].embedding == floats.data[1].embedding
    assert batch.data[0].embedding != batch.data[1].embedding
    raw = json.loads(r.seen[1][1].body)["data"][0]["embedding"]
    decoded = list(struct.unpack("<1536f", base64.b64decode(raw)))
    assert decoded == alone.data[0].embedding


# -- models -------------------------------------------------------------------------------


def test_models_list_and_retrieve(harness: Harnesses) -> None:
    r = harness()
    c = client(r)
    ids = [m.id for m in c.models.list()]
    assert {"gpt-4o-mini", "gpt-4.1-mini", "text-embedding-3-small"} <= set(ids)
    model = c.models.retrieve("ft:gpt-4o-mini:acme:custom:abc123")
    assert model.id == "ft:gpt-4o-mini:acme:custom:abc123"
    assert model.object == "model"


# -- other surfaces -----------------------------------------------------------------------


@pytest.mark.parametrize("deployment", [None, "my-deployment"])
def test_azure_classic(deployment: str | None, harness: Harnesses) -> None:
    r = harness()
    c = openai.AzureOpenAI(
        api_key="k",
        azure_endpoint="https://example.openai.azure.com",
        api_version="2024-10-21",
        azure_deployment=deployment,
        http_client=http_client_for(openai, r),
    )
    out = c.chat.completions.create(model=MODEL, messages=USER, stream=False)
    request = last(r)[0]
    assert request.path == f"/openai/deployments/{deployment or MODEL}/chat/completions"
    assert ("api-version", "2024-10-21") in request.query
    assert out.choices[0].message.content
    assert out.model == MODEL
    emb = c.embeddings.create(model="text-embedding-3-small", input="x")
    assert (
        last(r)[0].path
        == f"/openai/deployments/{deployment or 'text-embedding-3-small'}/embeddings"
    )
    assert len(emb.data[0].embedding) == 1536
    with c.chat.completions.stream(model=MODEL, messages=USER) as stream:
        assert stream.get_final_completion().choices[0].message.content


def test_azure_v1_and_non_deployment_paths(harness: Harnesses) -> None:
    r = harness()
    c = client(r, base_url="https://x.openai.azure.com/openai/v1/")
    out = c.chat.completions.create(model="my-deployment", messages=USER)
    assert last(r)[0].path == "/openai/v1/chat/completions"
    assert out.model == "my-deployment"
    assert c.models.list().data
    assert last(r)[0].path == "/openai/v1/models"
    azure = openai.AzureOpenAI(
        api_key="k",
        azure_endpoint="https://x.openai.azure.com",
        api_version="2024-10-21",
        http_client=http_client_for(openai, r),
    )
    assert azure.models.retrieve("gpt-4o").id == "gpt-4o"
    assert last(r)[0].path == "/openai/models/gpt-4o"


def test_gemini_openai_compatible_surface(harness: Harnesses) -> None:
    r = harness()
    c = client(r, base_url="https://generativelanguage.googleapis.com/v1beta/openai/")
    out = c.chat.completions.create(model="gemini-2.5-flash", messages=USER)
    assert last(r)[0].path == "/v1beta/openai/chat/completions"
    assert out.model == "gemini-2.5-flash" and out.choices[0].message.content
    emb = c.embeddings.create(model="gemini-embedding-001", input="hello")
    assert len(emb.data[0].embedding) == 3072
    assert [m.id for m in c.models.list()]


def test_ollama_v1_surface(harness: Harnesses) -> None:
    r = harness()
    c = openai.OpenAI(
        api_key="ollama",
        base_url="http://127.0.0.1:11434/v1",
        http_client=http_client_for(openai, r),
    )
    chunks = list(c.chat.completions.create(model="llama3.2", messages=USER, stream=True))
    assert last(r)[0].path == "/v1/chat/completions"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks).endswith(".")
    emb = c.embeddings.create(model="nomic-embed-text", input="hello")
    assert len(emb.data[0].embedding) == 768
    assert c.models.retrieve("llama3.2:latest").id == "llama3.2:latest"


# -- determinism --------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_same_request_same_bytes_and_next_occurrence_differs(
    stream: bool, harness: Harnesses
) -> None:
    def run(r: Harness) -> Answer:
        kwargs: Any = {"model": MODEL, "messages": USER, "n": 2, "stream": stream}
        result = client(r).chat.completions.create(**kwargs)
        if stream:
            list(result)
        return last(r)[1]

    first, second = harness(), harness()
    a, b = run(first), run(second)
    assert a.frames == b.frames and a.headers == b.headers
    again = run(first)  # the same request a second time: occurrence 1
    assert first.seen[1][0] == first.seen[0][0]
    assert again.body != a.body
    assert dict(again.headers)["x-request-id"] != dict(a.headers)["x-request-id"]
