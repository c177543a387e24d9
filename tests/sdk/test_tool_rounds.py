"""A full tool round through the engine (`prepare`, `plan`, `make`, as the proxy answers)
with each official SDK: the model calls an offered tool (tool choice auto, the default), the
tool's result goes back, and the model answers in text, as an agent loop needs (SPEC
"Agents and structured output")."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import ollama
import openai
import pytest
from google import genai
from google.genai import types
from jsonschema import Draft202012Validator
from support.inprocess import Harness, Harnesses, http_client_for
from support.schemas import WEATHER

from replay.models import Outcome

TIME: dict[str, Any] = {
    "type": "object",
    "properties": {"zone": {"type": "string"}},
    "required": ["zone"],
}
QUESTION = "What is the weather in Oslo?"
CHAT_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "parameters": TIME}},
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}


def valid(name: str, arguments: object) -> None:
    Draft202012Validator(SCHEMAS[name]).validate(arguments)


@pytest.fixture
def via(harness: Harnesses) -> Harness:
    return harness()


def openai_client(via: Harness, base_url: str | None = None) -> openai.OpenAI:
    http = http_client_for(openai, via)
    return openai.OpenAI(api_key="k", base_url=base_url, http_client=http, max_retries=0)


def test_openai_chat_tool_round(via: Harness) -> None:
    client = openai_client(via)
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=CHAT_TOOLS)
    assert first.choices[0].finish_reason == "tool_calls"
    (call,) = first.choices[0].message.tool_calls or []
    assert call.type == "function"
    valid(call.function.name, json.loads(call.function.arguments))
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "9 degrees, rain"},
    ]
    then = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=CHAT_TOOLS)
    assert then.choices[0].finish_reason == "stop"
    assert then.choices[0].message.content and not then.choices[0].message.tool_calls
    assert via.outcomes == [Outcome.SYNTHETIC] * 2


def test_openai_chat_streamed_tool_round_with_parallel_calls(via: Harness) -> None:
    client = openai_client(via)
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    with client.chat.completions.stream(
        model="gpt-4o-mini", messages=messages, tools=CHAT_TOOLS, parallel_tool_calls=True
    ) as stream:
        first = stream.get_final_completion()
    calls = first.choices[0].message.tool_calls or []
    assert sorted(c.function.name for c in calls) == ["get_time", "get_weather"]
    for c in calls:
        valid(c.function.name, json.loads(c.function.arguments))
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": c.id, "content": "done"} for c in calls]
    with client.chat.completions.stream(
        model="gpt-4o-mini", messages=messages, tools=CHAT_TOOLS, parallel_tool_calls=True
    ) as stream:
        then = stream.get_final_completion()
    assert then.choices[0].message.content and not then.choices[0].message.tool_calls


def test_ollama_openai_compatible_tool_round(via: Harness) -> None:
    client = openai_client(via, base_url="http://127.0.0.1:11434/v1")
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    first = client.chat.completions.create(model="llama3.2", messages=messages, tools=CHAT_TOOLS)
    (call,) = first.choices[0].message.tool_calls or []
    valid(call.function.name, json.loads(call.function.arguments))
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "9 degrees"},
    ]
    then = client.chat.completions.create(model="llama3.2", messages=messages, tools=CHAT_TOOLS)
    assert then.choices[0].message.content and not then.choices[0].message.tool_calls


@pytest.mark.parametrize("streamed", [False, True])
def test_openai_responses_tool_round(via: Harness, streamed: bool) -> None:
    client = openai_client(via)
    tools: list[Any] = [
        {"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": True},
        {"type": "web_search"},  # a built-in tool: never called by a synthetic answer
    ]

    def create(**fields: Any) -> Any:
        if not streamed:
            return client.responses.create(model="gpt-4.1-mini", tools=tools, **fields)
        with client.responses.stream(model="gpt-4.1-mini", tools=tools, **fields) as stream:
            return stream.get_final_response()

    first = create(input=QUESTION)
    (item,) = first.output
    assert item.type == "function_call" and item.name == "get_weather"
    valid(item.name, json.loads(item.arguments))
    result = {"type": "function_call_output", "call_id": item.call_id, "output": "9 degrees"}
    then = create(previous_response_id=first.id, input=[result])
    assert [o.type for o in then.output] == ["message"]
    assert then.output_text


@pytest.mark.parametrize("streamed", [False, True])
def test_anthropic_tool_round(via: Harness, streamed: bool) -> None:
    claude = anthropic.Anthropic(
        api_key="k", http_client=http_client_for(anthropic, via), max_retries=0
    )
    tools: list[Any] = [
        {"name": "get_weather", "input_schema": WEATHER},
        {"name": "get_time", "input_schema": TIME},
    ]

    def create(messages: list[Any]) -> Any:
        fields: dict[str, Any] = {"model": "claude-replay-test", "max_tokens": 512}
        if not streamed:
            return claude.messages.create(messages=messages, tools=tools, **fields)
        with claude.messages.stream(messages=messages, tools=tools, **fields) as stream:
            return stream.get_final_message()

    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    first = create(messages)
    assert first.stop_reason == "tool_use"
    (use,) = [b for b in first.content if b.type == "tool_use"]
    valid(use.name, use.input)
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "9 degrees"}],
        },
    ]
    then = create(messages)
    assert then.stop_reason == "end_turn"
    assert [b.type for b in then.content] == ["text"]


def test_gemini_tool_round(via: Harness) -> None:
    options = types.HttpOptions(client_args={"transport": via.httpx_transport()})
    config = types.GenerateContentConfig(
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER)
                ]
            )
        ],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    with genai.Client(api_key="k", http_options=options) as gemini:
        first = gemini.models.generate_content(
            model="gemini-2.5-flash", contents=QUESTION, config=config
        )
        (call,) = first.function_calls or []
        assert call.name == "get_weather"
        valid("get_weather", call.args)
        assert first.candidates and first.candidates[0].content
        history = [
            types.Content(role="user", parts=[types.Part(text=QUESTION)]),
            first.candidates[0].content,
            types.Content(
                role="user",
                parts=[types.Part.from_function_response(name="get_weather", response={"t": "9C"})],
            ),
        ]
        then = gemini.models.generate_content(
            model="gemini-2.5-flash", contents=history, config=config
        )
        assert then.function_calls is None and then.text


@pytest.mark.parametrize("streamed", [False, True])
def test_ollama_native_tool_round(via: Harness, streamed: bool) -> None:
    tools: list[Any] = [{"type": "function", "function": CHAT_TOOLS[0]["function"]}]
    with ollama.Client(host="http://127.0.0.1:11434", transport=via.httpx_transport()) as local:

        def chat(messages: list[Any]) -> Any:
            if not streamed:
                return local.chat(model="llama3.2", messages=messages, tools=tools).message
            parts = list(local.chat(model="llama3.2", messages=messages, tools=tools, stream=True))
            calls = [c for p in parts for c in (p.message.tool_calls or [])]
            content = "".join(p.message.content or "" for p in parts)
            return ollama.Message(role="assistant", content=content, tool_calls=calls or None)

        messages: list[Any] = [{"role": "user", "content": QUESTION}]
        first = chat(messages)
        (call,) = first.tool_calls or []
        # The ollama client drops keywords its Tool model lacks (minimum...): check against
        # the schema that went out.
        sent = json.loads(via.seen[-1][0].body)["tools"][0]["function"]["parameters"]
        Draft202012Validator(sent).validate(dict(call.function.arguments))
        messages += [first, {"role": "tool", "content": "9 degrees", "tool_name": "get_weather"}]
        then = chat(messages)
        assert then.content and not then.tool_calls


def test_option_forced_calls_no_tool_unless_the_request_forces_one(harness: Harnesses) -> None:
    via = harness(options={"replay_synthetic_tools": "forced"})
    client = openai_client(via)
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    plain = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=CHAT_TOOLS)
    assert plain.choices[0].finish_reason == "stop" and plain.choices[0].message.content
    forced = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=CHAT_TOOLS, tool_choice="required"
    )
    assert forced.choices[0].finish_reason == "tool_calls"


def test_tool_choice_none_answers_in_text(via: Harness) -> None:
    client = openai_client(via)
    messages: list[Any] = [{"role": "user", "content": QUESTION}]
    out = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=CHAT_TOOLS, tool_choice="none"
    )
    assert out.choices[0].finish_reason == "stop" and not out.choices[0].message.tool_calls
