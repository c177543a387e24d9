"""The tool policy of `base.choose_reply`: when a made-up answer calls an offered tool."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from replay.models import Request
from replay.providers.base import (
    ANY_TOOL,
    NO_TOOL,
    TOOLS_AUTO,
    TOOLS_FORCED,
    BadCall,
    Call,
    Reply,
    ToolCall,
    ToolSpec,
    choose_reply,
)

WEATHER = ToolSpec(
    "get_weather",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "maximum": 7}},
        "required": ["city"],
    },
)
TIME = ToolSpec("get_time", {"type": "object", "properties": {"zone": {"type": "string"}}})
FINAL = ToolSpec("final_result", {"type": "object", "properties": {"answer": {"type": "string"}}})
USER = {"role": "user", "content": "What is the weather in Oslo?"}


def assistant_calling(name: str) -> dict[str, Any]:
    function = {"name": name, "arguments": "{}"}
    return {
        "role": "assistant",
        "tool_calls": [{"id": "c1", "type": "function", "function": function}],
    }


TOOL_RESULT = {"role": "tool", "tool_call_id": "c1", "content": "9C"}


def call(messages: list[Any], tools: str = TOOLS_AUTO, fingerprint: str = "f" * 64) -> Call:
    body = json.dumps({"model": "m", "messages": messages}).encode()
    request = Request("POST", "https", "api.openai.com", 443, "/v1/chat/completions", (), (), body)
    return Call(request, fingerprint, 0, synthetic_tools=tools)


def names(reply: Reply) -> list[str]:
    return [c.name for c in reply.tool_calls]


def test_auto_calls_one_offered_tool_with_valid_arguments() -> None:
    reply, cut = choose_reply(call([USER]), [WEATHER], None)
    assert not cut and reply.text is None
    (tool_call,) = reply.tool_calls
    assert tool_call.name == "get_weather" and tool_call.id
    Draft202012Validator(WEATHER.schema).validate(tool_call.arguments)


def test_auto_answers_in_text_once_a_tool_result_follows() -> None:
    reply, _ = choose_reply(
        call([USER, assistant_calling("get_weather"), TOOL_RESULT]), [WEATHER], None
    )
    assert reply.text and not reply.tool_calls


def test_auto_calls_again_after_a_new_user_message() -> None:
    history = [
        USER,
        assistant_calling("get_weather"),
        TOOL_RESULT,
        {"role": "assistant", "content": "9C."},
    ]
    reply, _ = choose_reply(
        call([*history, {"role": "user", "content": "And Bergen?"}]), [WEATHER], None
    )
    assert names(reply) == ["get_weather"]


def test_the_seed_chooses_the_tool_and_every_tool_gets_chosen() -> None:
    chosen = {
        names(choose_reply(call([USER], fingerprint=f"{i:064x}"), [WEATHER, TIME, FINAL], None)[0])[
            0
        ]
        for i in range(40)
    }
    assert chosen == {"get_weather", "get_time", "final_result"}
    again = choose_reply(call([USER]), [WEATHER, TIME, FINAL], None)[0]
    assert again == choose_reply(call([USER]), [WEATHER, TIME, FINAL], None)[0]


def test_parallel_calls_two_distinct_tools_and_one_when_only_one_is_offered() -> None:
    for i in range(20):
        reply, _ = choose_reply(
            call([USER], fingerprint=f"{i:064x}"), [WEATHER, TIME, FINAL], None, parallel=True
        )
        assert len(set(names(reply))) == 2
        assert len({c.id for c in reply.tool_calls}) == 2
    assert len(choose_reply(call([USER]), [WEATHER], None, parallel=True)[0].tool_calls) == 1


@pytest.mark.parametrize("history", [[USER], [USER, assistant_calling("get_weather"), TOOL_RESULT]])
def test_no_tool_gives_text(history: list[Any]) -> None:
    reply, _ = choose_reply(call(history), [WEATHER, TIME], NO_TOOL)
    assert reply.text and not reply.tool_calls


def test_option_forced_calls_only_when_the_request_forces() -> None:
    reply, _ = choose_reply(call([USER], TOOLS_FORCED), [WEATHER], None)
    assert reply.text and not reply.tool_calls
    assert names(choose_reply(call([USER], TOOLS_FORCED), [WEATHER], ANY_TOOL)[0]) == [
        "get_weather"
    ]
    assert names(choose_reply(call([USER], TOOLS_FORCED), [WEATHER, TIME], "get_time")[0]) == [
        "get_time"
    ]


def test_a_forced_call_after_a_tool_result_prefers_a_tool_not_called_yet() -> None:
    # An agent whose output is a tool (pydantic-ai's final_result) forces a tool each turn:
    # after its function tool ran, the next forced call moves on to the output tool.
    for i in range(20):
        history = [USER, assistant_calling("get_weather"), TOOL_RESULT]
        reply, _ = choose_reply(call(history, fingerprint=f"{i:064x}"), [WEATHER, FINAL], ANY_TOOL)
        assert names(reply) == ["final_result"]


def test_a_forced_tool_that_is_not_offered_is_a_bad_call() -> None:
    with pytest.raises(BadCall, match="not among the tools"):
        choose_reply(call([USER]), [WEATHER], "nope")


def test_no_tools_offered_gives_text_and_a_canned_reply_wins() -> None:
    assert choose_reply(call([USER]), [], None)[0].text
    canned = Reply("canned", (ToolCall("get_weather"),))
    reply, _ = choose_reply(replace(call([USER]), reply=canned), [WEATHER], NO_TOOL)
    assert reply.text == "canned" and names(reply) == ["get_weather"]
