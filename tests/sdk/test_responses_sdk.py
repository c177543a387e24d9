"""The real openai SDK drives the synthetic Responses API, a stateful surface, in-process
through the engine (the proxy's own path, `support.inprocess.Harness`).

Create (text, function calls, a canned reply, `text.format` and `responses.parse`,
`max_output_tokens`), raw streams and the `responses.stream()` helper, sync and async; then
what the per-run state does: retrieve, delete, input_items, a stream replay with
`starting_after`, `previous_response_id` chains, background polling and cancel, `store:
false`, and 404s for ids never seen. Also run on openai 1.x by `make compat`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel
from support.inprocess import Harness, Harnesses, canned, http_client_for
from support.schemas import WEATHER

from replay.providers.base import prompt_tokens
from replay.providers.text import count_tokens, split_tokens

MODEL = "gpt-4.1-mini"
TOOLS: list[Any] = [
    {"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": True},
    {"type": "function", "name": "get_time", "parameters": {"type": "object"}, "strict": False},
]


def client(r: Harness, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(api_key="k", http_client=http_client_for(openai, r), **kwargs)


def aclient(r: Harness) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="k", http_client=http_client_for(openai, r, asynchronous=True)
    )


def test_create_gives_output_text_and_usage(harness: Harnesses) -> None:
    r = harness()
    resp = client(r).responses.create(model=MODEL, input="Say hello", instructions="Be kind.")
    assert resp.object == "response" and resp.status == "completed"
    assert resp.id.startswith("resp_")
    assert resp.output_text and resp.output_text == resp.output[0].content[0].text
    assert resp._request_id is not None and resp._request_id.startswith("req_")
    assert resp.usage is not None
    assert resp.usage.output_tokens == count_tokens(resp.output_text)
    assert resp.usage.input_tokens == prompt_tokens("Say hello") + prompt_tokens("Be kind.")
    assert resp.instructions == "Be kind."
    request, answer = r.seen[-1]
    assert request.path == "/v1/responses" and not answer.stream


def test_raw_stream_event_order_and_sequence_numbers(harness: Harnesses) -> None:
    r = harness()
    stream = client(r).responses.create(model=MODEL, input="Stream it", stream=True)
    events = list(stream)
    kinds = [e.type for e in events]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[4:-4] == ["response.output_text.delta"] * len(split_tokens(text))
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1].response
    assert final.output_text == text
    assert {e.response.id for e in events if hasattr(e, "response")} == {final.id}
    _, answer = r.seen[-1]
    assert answer.stream and b"[DONE]" not in answer.body
    assert answer.body.count(b"event: ") == len(events)


def test_stream_helper_final_response(harness: Harnesses) -> None:
    r = harness()
    with client(r).responses.stream(model=MODEL, input="Helper please") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text == "".join(deltas) != ""


def test_forced_function_call_has_valid_arguments(harness: Harnesses) -> None:
    c = client(harness())
    resp = c.responses.create(
        model=MODEL,
        input="Weather in Paris?",
        tools=TOOLS,
        tool_choice={"type": "function", "name": "get_weather"},
    )
    [call] = resp.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.call_id.startswith("call_") and call.id is not None and call.id.startswith("fc_")
    Draft202012Validator(WEATHER).validate(json.loads(call.arguments))
    assert resp.output_text == ""


def test_required_tool_choice_streams_arguments_through_the_helper(harness: Harnesses) -> None:
    with client(harness()).responses.stream(
        model=MODEL, input="Any tool", tools=TOOLS, tool_choice="required"
    ) as stream:
        fragments = [e.delta for e in stream if e.type == "response.function_call_arguments.delta"]
        final = stream.get_final_response()
    [call] = final.output
    assert call.type == "function_call" and call.name in {"get_weather", "get_time"}
    assert "".join(fragments) == call.arguments
    json.loads(call.arguments)


def test_canned_reply_text_and_call(harness: Harnesses) -> None:
    rules = canned("It is sunny.", {"name": "get_weather", "arguments": {"city": "Oslo"}})
    resp = client(harness(rules=rules)).responses.create(model=MODEL, input="x", tools=TOOLS)
    assert resp.output_text == "It is sunny."
    assert [o.type for o in resp.output] == ["message", "function_call"]
    assert json.loads(resp.output[1].arguments) == {"city": "Oslo"}


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]


def test_parse_with_a_pydantic_model(harness: Harnesses) -> None:
    parsed = client(harness()).responses.parse(model=MODEL, input="Who?", text_format=Person)
    assert isinstance(parsed.output_parsed, Person)
    assert Person.model_validate_json(parsed.output_text) == parsed.output_parsed


def test_text_format_json_schema(harness: Harnesses) -> None:
    fmt: Any = {"type": "json_schema", "name": "weather", "schema": WEATHER, "strict": True}
    resp = client(harness()).responses.create(model=MODEL, input="x", text={"format": fmt})
    Draft202012Validator(WEATHER).validate(json.loads(resp.output_text))


def _long_input(c: openai.OpenAI) -> str:
    """An input whose made-up answer is longer than 16 tokens (found deterministically)."""
    for i in range(100):
        text = f"question {i}"
        if c.responses.create(model=MODEL, input=text).usage.output_tokens > 16:  # type: ignore[union-attr]
            return text
    raise AssertionError("no long answer found")


def test_max_output_tokens_gives_incomplete(harness: Harnesses) -> None:
    c = client(harness())
    text = _long_input(c)
    resp = c.responses.create(model=MODEL, input=text, max_output_tokens=16)
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    assert resp.usage is not None and resp.usage.output_tokens == 16
    events = list(c.responses.create(model=MODEL, input=text, max_output_tokens=16, stream=True))
    assert events[-1].type == "response.incomplete"
    with pytest.raises(openai.BadRequestError) as e:
        c.responses.create(model=MODEL, input=text, max_output_tokens=8)
    assert e.value.param == "max_output_tokens"


def test_store_retrieve_input_items_delete(harness: Harnesses) -> None:
    c = client(harness())
    resp = c.responses.create(
        model=MODEL,
        input=[
            {"role": "user", "content": "first"},
            {"role": "user", "content": "second"},
        ],
    )
    again = c.responses.retrieve(resp.id)
    assert again.id == resp.id and again.output_text == resp.output_text
    items = c.responses.input_items.list(resp.id)
    assert [i.content[0].text for i in items.data] == ["second", "first"]  # type: ignore[union-attr]
    ascending = c.responses.input_items.list(resp.id, order="asc", limit=1)
    assert [i.id for i in ascending] == [i.id for i in reversed(items.data)]  # pages followed
    assert c.responses.delete(resp.id) is None
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(resp.id)


def test_retrieve_stream_starting_after(harness: Harnesses) -> None:
    c = client(harness())
    original = list(c.responses.create(model=MODEL, input="replay later", stream=True))
    rid = original[-1].response.id
    replayed = list(c.responses.retrieve(rid, stream=True, starting_after=2))
    assert [e.sequence_number for e in replayed] == list(range(3, len(original)))
    assert [e.type for e in replayed] == [e.type for e in original[3:]]
    assert replayed[-1].response.output_text == original[-1].response.output_text


def test_previous_response_id_chain(harness: Harnesses) -> None:
    c = client(harness())
    first = c.responses.create(model=MODEL, input="My name is Ada.")
    second = c.responses.create(
        model=MODEL, input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id and second.id != first.id
    assert first.usage is not None and second.usage is not None
    history = prompt_tokens("My name is Ada.") + first.usage.output_tokens
    assert second.usage.input_tokens == history + prompt_tokens("What is my name?")
    own = c.responses.input_items.list(second.id).data
    assert [i.content[0].text for i in own] == ["What is my name?"]  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError) as e:
        c.responses.create(model=MODEL, input="x", previous_response_id="resp_never_seen")
    assert e.value.param == "previous_response_id"
    assert e.value.code == "previous_response_not_found"


def test_background_polling_to_completed(harness: Harnesses) -> None:
    c = client(harness())
    resp = c.responses.create(model=MODEL, input="Take your time", background=True)
    assert resp.status == "queued" and resp.output_text == ""
    seen = [resp.status]
    while resp.status in ("queued", "in_progress"):
        resp = c.responses.retrieve(resp.id)
        seen.append(resp.status)
    assert seen == ["queued", "in_progress", "completed"]
    assert resp.output_text


def test_background_cancel(harness: Harnesses) -> None:
    c = client(harness())
    resp = c.responses.create(model=MODEL, input="Never mind", background=True)
    cancelled = c.responses.cancel(resp.id)
    assert cancelled.status == "cancelled"
    assert c.responses.retrieve(resp.id).status == "cancelled"
    foreground = c.responses.create(model=MODEL, input="Done already")
    with pytest.raises(openai.BadRequestError):
        c.responses.cancel(foreground.id)


def test_unknown_ids_are_not_found(harness: Harnesses) -> None:
    c = client(harness())
    calls = [
        lambda: c.responses.retrieve("resp_unknown"),
        lambda: c.responses.delete("resp_unknown"),
        lambda: c.responses.cancel("resp_unknown"),
        lambda: c.responses.input_items.list("resp_unknown"),
        lambda: c.responses.retrieve("resp_unknown", stream=True),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError) as e:
            call()
        assert e.value.type == "invalid_request_error"
        assert "resp_unknown" in e.value.message
        assert e.value.request_id is not None


def test_store_false_is_not_retrievable(harness: Harnesses) -> None:
    c = client(harness())
    resp = c.responses.create(model=MODEL, input="Ephemeral", store=False)
    assert resp.store is False and resp.output_text
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(resp.id)


def test_async_stream_and_helper(harness: Harnesses) -> None:
    async def run() -> tuple[str, str]:
        c = aclient(harness())
        stream = await c.responses.create(model=MODEL, input="Async please", stream=True)
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        async with c.responses.stream(model=MODEL, input="Async helper") as helper:
            final = await helper.get_final_response()
        return "".join(deltas), final.output_text

    raw, helped = asyncio.run(run())
    assert raw and helped


def test_azure_and_gemini_compatible_prefixes(harness: Harnesses) -> None:
    for base in ("http://res.openai.azure.com/openai/v1/", "http://g.test/v1beta/openai/"):
        r = harness()
        c = client(r, base_url=base)
        resp = c.responses.create(model=MODEL, input="hi")
        assert c.responses.retrieve(resp.id).id == resp.id
        assert r.seen[0][0].path.endswith("/responses")


def test_azure_client_with_api_version(harness: Harnesses) -> None:
    r = harness()
    c = openai.AzureOpenAI(
        api_key="k",
        api_version="2025-04-01-preview",
        azure_endpoint="https://res.openai.azure.com",
        http_client=http_client_for(openai, r),
    )
    resp = c.responses.create(model="my-deployment", input="hi")
    assert resp.output_text and c.responses.retrieve(resp.id).id == resp.id
    request, _ = r.seen[0]
    assert request.path == "/openai/responses"
    assert ("api-version", "2025-04-01-preview") in request.query


def test_deterministic_bytes_across_sessions(harness: Harnesses) -> None:
    def run() -> list[bytes]:
        r = harness()
        c = client(r)
        c.responses.create(model=MODEL, input="Same every time", tools=TOOLS)
        list(c.responses.create(model=MODEL, input="Same every time", stream=True))
        return [answer.body for _, answer in r.seen]

    first, second = run(), run()
    assert first == second
    assert first[0] != first[1]
