"""Synthetic Anthropic answers, made by the engine as the proxy makes them, parsed by the real
anthropic SDK in-process (2.x over httpx2; 0.x over httpx in `make compat`):
`messages.create`, raw streams, the `messages.stream()` helper (sync and async), tools,
thinking, canned replies, count_tokens and `_request_id`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from jsonschema import Draft202012Validator
from support.inprocess import Harness, Harnesses, canned, http_client_for

from replay.providers.text import count_tokens

MODEL = "claude-replay-test"  # not a real model: the SDK warns about deprecated ones
USER: list[Any] = [{"role": "user", "content": "What is the weather in Paris and Tokyo?"}]
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
TIME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"zone": {"type": "string"}},
    "required": ["zone"],
}
TOOLS: list[Any] = [
    {"name": "get_time", "description": "Local time", "input_schema": TIME_SCHEMA},
    {"name": "get_weather", "description": "Weather forecast", "input_schema": WEATHER_SCHEMA},
]
ANY: Any = {"type": "any"}
SCHEMAS = {"get_time": TIME_SCHEMA, "get_weather": WEATHER_SCHEMA}


def valid(name: str, value: object) -> None:
    Draft202012Validator(SCHEMAS[name]).validate(value)


def make_client(r: Harness) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="k", http_client=http_client_for(anthropic, r))


def twins(harness: Harnesses, rules: str | None = None) -> tuple[anthropic.Anthropic, ...]:
    """Two clients, each in a fresh run where a stream and its non-stream twin share a key
    (replay_ignore=stream): the same request gets the same answer, streamed or not."""
    return tuple(make_client(harness(rules=rules, ignore="stream")) for _ in range(2))


@pytest.fixture
def r(harness: Harnesses) -> Harness:
    return harness()


@pytest.fixture
def client(r: Harness) -> Iterator[anthropic.Anthropic]:
    with make_client(r) as c:
        yield c


def test_create_text(client: anthropic.Anthropic, r: Harness) -> None:
    message = client.messages.create(model=MODEL, max_tokens=512, messages=USER)
    assert message.type == "message" and message.role == "assistant" and message.model == MODEL
    assert message.id.startswith("msg_01")
    [block] = message.content
    assert block.type == "text" and block.text
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.output_tokens == count_tokens(block.text)
    assert message.usage.input_tokens > 0
    request, answer = r.seen[-1]
    assert request.path == "/v1/messages"
    assert json.loads(answer.body)["content"][0]["text"] == block.text


def test_request_id_comes_from_the_header(client: anthropic.Anthropic, r: Harness) -> None:
    message = client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    header = dict(r.seen[-1][1].headers)["request-id"]
    assert header.startswith("req_011C")
    assert message._request_id == header
    with client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        assert stream.request_id == dict(r.seen[-1][1].headers)["request-id"]


def test_raw_stream_event_order(client: anthropic.Anthropic) -> None:
    raw = client.messages.create(model=MODEL, max_tokens=512, messages=USER, stream=True)
    events = list(raw)
    types = [e.type for e in events if e.type != "ping"]
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert types == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * len(deltas),
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert len(deltas) > 5
    text = "".join(e.delta.text for e in deltas if e.delta.type == "text_delta")
    final = events[-2]
    assert final.type == "message_delta"
    assert final.delta.stop_reason == "end_turn"
    assert final.usage.output_tokens == count_tokens(text) == len(deltas)


def test_stream_helper_text_and_final_message(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model=MODEL, max_tokens=512, messages=USER) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    plain = client.messages.create(model=MODEL, max_tokens=512, messages=USER)
    [block] = final.content
    assert block.type == "text" and block.text == "".join(pieces)
    assert len(pieces) == final.usage.output_tokens == count_tokens(block.text)
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == plain.usage.input_tokens


@pytest.mark.parametrize(
    ("choice", "names"),
    [
        ({"type": "any"}, {"get_time", "get_weather"}),
        ({"type": "tool", "name": "get_weather"}, {"get_weather"}),
    ],
)
def test_forced_tool(client: anthropic.Anthropic, choice: Any, names: set[str]) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=512, messages=USER, tools=TOOLS, tool_choice=choice
    )
    [block] = message.content
    assert block.type == "tool_use" and block.name in names
    assert block.id.startswith("toolu_01")
    valid(block.name, block.input)
    assert message.stop_reason == "tool_use"


def test_tool_streamed_through_the_helper(harness: Harnesses) -> None:
    client, twin = twins(harness)
    choice: Any = {"type": "tool", "name": "get_weather"}
    with client.messages.stream(
        model=MODEL, max_tokens=512, messages=USER, tools=TOOLS, tool_choice=choice
    ) as stream:
        partials = [e.partial_json for e in stream if e.type == "input_json"]
        final = stream.get_final_message()
    [block] = final.content
    assert block.type == "tool_use" and block.name == "get_weather"
    valid("get_weather", block.input)
    assert json.loads("".join(partials)) == block.input
    assert final.stop_reason == "tool_use"
    plain = twin.messages.create(
        model=MODEL, max_tokens=512, messages=USER, tools=TOOLS, tool_choice=choice
    )
    assert plain.content[0].type == "tool_use"
    assert plain.content[0].input == block.input and plain.content[0].id == block.id


def test_canned_reply_text_and_two_tool_uses(harness: Harnesses) -> None:
    weather = {"city": "Paris", "unit": "celsius", "days": 1}
    rules = canned(
        "Let me check both.", {"name": "get_weather", "arguments": weather}, {"name": "get_time"}
    )
    client, twin = twins(harness, rules)
    with client, twin:
        message = client.messages.create(model=MODEL, max_tokens=512, messages=USER, tools=TOOLS)
        with twin.messages.stream(
            model=MODEL, max_tokens=512, messages=USER, tools=TOOLS
        ) as stream:
            streamed = stream.get_final_message()
    for got in (message, streamed):
        text, weather, time = got.content
        assert text.type == "text" and text.text == "Let me check both."
        assert weather.type == "tool_use" and weather.name == "get_weather"
        assert weather.input == {"city": "Paris", "unit": "celsius", "days": 1}
        assert time.type == "tool_use" and time.name == "get_time"
        valid("get_time", time.input)
        assert weather.id.startswith("toolu_01") and time.id.startswith("toolu_01")
        assert weather.id != time.id
        assert got.stop_reason == "tool_use"
    assert streamed.usage.output_tokens == message.usage.output_tokens


def test_thinking_through_the_helper(harness: Harnesses) -> None:
    client, twin = twins(harness)
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    with client.messages.stream(
        model=MODEL, max_tokens=2048, messages=USER, thinking=thinking
    ) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    first, second = final.content
    assert first.type == "thinking" and first.thinking and first.signature
    assert second.type == "text" and second.text
    assert "thinking" in kinds and "signature" in kinds and "text" in kinds
    assert kinds.index("signature") < kinds.index("text")
    plain = twin.messages.create(model=MODEL, max_tokens=2048, messages=USER, thinking=thinking)
    assert plain.content[0].type == "thinking"
    assert plain.content[0].signature == first.signature
    assert plain.usage.output_tokens == final.usage.output_tokens


def test_max_tokens_cut(harness: Harnesses) -> None:
    client, twin = twins(harness)
    message = client.messages.create(model=MODEL, max_tokens=5, messages=USER)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    with twin.messages.stream(model=MODEL, max_tokens=5, messages=USER) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.content[0].type == "text" and message.content[0].type == "text"
    assert final.content[0].text == message.content[0].text


def test_count_tokens_equals_usage_input_tokens(client: anthropic.Anthropic) -> None:
    system = "You answer in one sentence."
    counted = client.messages.count_tokens(model=MODEL, messages=USER, system=system, tools=TOOLS)
    message = client.messages.create(
        model=MODEL, max_tokens=512, messages=USER, system=system, tools=TOOLS
    )
    bare = client.messages.count_tokens(model=MODEL, messages=USER)
    assert counted.input_tokens == message.usage.input_tokens
    assert bare.input_tokens < counted.input_tokens


def test_async_stream_helper(harness: Harnesses) -> None:
    r = harness()

    async def run() -> tuple[list[str], anthropic.types.Message]:
        async with (
            anthropic.AsyncAnthropic(
                api_key="k", http_client=http_client_for(anthropic, r, asynchronous=True)
            ) as client,
            client.messages.stream(model=MODEL, max_tokens=512, messages=USER) as stream,
        ):
            pieces = [p async for p in stream.text_stream]
            return pieces, await stream.get_final_message()

    pieces, final = asyncio.run(run())
    assert final.content[0].type == "text"
    assert "".join(pieces) == final.content[0].text
    assert final.usage.output_tokens == len(pieces)


def test_same_fingerprint_and_occurrence_give_identical_bytes(harness: Harnesses) -> None:
    def run() -> list[tuple[Any, ...]]:
        r = harness()
        with make_client(r) as client:
            for _ in range(2):
                client.messages.create(model=MODEL, max_tokens=512, messages=USER, tools=TOOLS)
            for _ in range(2):
                with client.messages.stream(
                    model=MODEL, max_tokens=512, messages=USER, tools=TOOLS, tool_choice=ANY
                ) as stream:
                    stream.get_final_message()
        return [(a.status, a.headers, a.frames, a.stream) for _, a in r.seen]

    first, second = run(), run()
    assert len(first) == 4 and first == second
    # within one run a repeated request is the next occurrence, so it gets another answer
    assert first[0] != first[1] and first[2] != first[3]
