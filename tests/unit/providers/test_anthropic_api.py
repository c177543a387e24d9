"""Anthropic Messages responders, called directly: routes, checks, blocks, usage, frames."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from replay.models import Request
from replay.providers import anthropic_api
from replay.providers.base import (
    TOOLS_AUTO,
    TOOLS_FORCED,
    Answer,
    BadCall,
    Call,
    Reply,
    ToolCall,
)
from replay.providers.text import count_tokens, split_tokens

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city", "days"],
    },
}
USER = [{"role": "user", "content": "What is the weather in Paris?"}]


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": USER} | fields


def call_for(
    payload: object,
    path: str = "/v1/messages",
    *,
    reply: Reply | None = None,
    fingerprint: str = "a" * 64,
    occurrence: int = 0,
    tools: str = TOOLS_AUTO,
) -> Call:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = Request(
        "POST",
        "https",
        "api.anthropic.com",
        443,
        path,
        (),
        (("content-type", "application/json"),),
        raw,
    )
    return Call(request, fingerprint, occurrence, reply, synthetic_tools=tools)


def respond(call: Call) -> Answer:
    for route in anthropic_api.ROUTES:
        if route.method == call.request.method and route.path.fullmatch(call.request.path):
            return route.respond(call)
    raise AssertionError(f"no route for {call.request.path}")


def message(payload: object, **kwargs: Any) -> dict[str, Any]:
    answer = respond(call_for(payload, **kwargs))
    assert answer.status == 200 and not answer.stream
    result: dict[str, Any] = json.loads(answer.body)
    return result


def events(answer: Answer) -> list[dict[str, Any]]:
    """Each frame parsed; asserts the `event:` line names the JSON `type`."""
    out = []
    for frame in answer.frames:
        m = re.fullmatch(rb"event: ([a-z_]+)\ndata: (\{.*\})\n\n", frame, re.DOTALL)
        assert m is not None, frame
        data = json.loads(m.group(2))
        assert data["type"] == m.group(1).decode()
        out.append(data)
    return out


# Routes


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/messages", "respond_messages"),
        ("/anthropic/gateway/v1/messages", "respond_messages"),
        ("/v1/messages/count_tokens", "respond_count_tokens"),
        ("/prefix/v1/messages/count_tokens", "respond_count_tokens"),
    ],
)
def test_routes_match_with_or_without_a_prefix(path: str, name: str) -> None:
    matched = [r for r in anthropic_api.ROUTES if r.path.fullmatch(path)]
    assert [r.respond.__name__ for r in matched] == [name]
    assert all(r.method == "POST" and r.provider == "anthropic" for r in matched)


@pytest.mark.parametrize(
    "path", ["/v1/messages/batches", "/v1/chat/completions", "/v1/messagesx", "/v2/messages"]
)
def test_routes_leave_other_paths_alone(path: str) -> None:
    assert not any(r.path.fullmatch(path) for r in anthropic_api.ROUTES)


# Request checks


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"model": "m", "messages": USER}, "max_tokens"),
        (body(max_tokens=0), "max_tokens"),
        (body(max_tokens=True), "max_tokens"),
        (body(max_tokens="100"), "max_tokens"),
        ({"max_tokens": 5, "messages": USER}, "model"),
        (body(messages=[]), "messages"),
        ({"model": "m", "max_tokens": 5}, "messages"),
        (body(tools={"name": "x"}), "tools"),
        (body(tools=[{"description": "no name"}]), "tools"),
        (body(tool_choice={"type": "sometimes"}), "tool_choice"),
        (body(tool_choice="any", tools=[WEATHER_TOOL]), "tool_choice"),
        (body(tool_choice={"type": "any"}), "tools"),
        (body(tool_choice={"type": "tool"}, tools=[WEATHER_TOOL]), "name"),
        (body(tool_choice={"type": "tool", "name": "nope"}, tools=[WEATHER_TOOL]), "nope"),
        (body(thinking={"type": "enabled"}), "budget_tokens"),
        (body(stop_sequences="STOP"), "stop_sequences"),
        ([1, 2], "JSON object"),
    ],
)
def test_requests_the_real_api_rejects_are_bad_calls(payload: object, words: str) -> None:
    with pytest.raises(BadCall, match=words):
        respond(call_for(payload))


def test_count_tokens_needs_no_max_tokens_but_needs_messages() -> None:
    answer = respond(call_for({"model": "m", "messages": USER}, "/v1/messages/count_tokens"))
    assert json.loads(answer.body) == {
        "input_tokens": count_tokens("user What is the weather in Paris?")
    }
    with pytest.raises(BadCall, match="messages"):
        respond(call_for({"model": "m"}, "/v1/messages/count_tokens"))


# Non-streamed messages


def test_text_message_shape_ids_and_usage() -> None:
    answer = respond(call_for(body()))
    got = json.loads(answer.body)
    assert answer.headers[0] == ("content-type", "application/json")
    assert re.fullmatch(r"req_011C[1-9A-HJ-NP-Za-km-z]{20}", dict(answer.headers)["request-id"])
    assert re.fullmatch(r"msg_01[1-9A-HJ-NP-Za-km-z]{22}", got["id"])
    assert (got["type"], got["role"], got["model"]) == ("message", "assistant", "claude-sonnet-4-5")
    [block] = got["content"]
    assert block["type"] == "text" and block["text"]
    assert (got["stop_reason"], got["stop_sequence"]) == ("end_turn", None)
    assert got["usage"]["output_tokens"] == count_tokens(block["text"])
    assert got["usage"]["input_tokens"] == count_tokens("user What is the weather in Paris?")


def test_system_and_tools_count_as_input_tokens_the_same_in_count_tokens() -> None:
    plain = message(body())["usage"]["input_tokens"]
    as_string = body(system="You are terse.", tools=[WEATHER_TOOL])
    as_blocks = body(system=[{"type": "text", "text": "You are terse."}], tools=[WEATHER_TOOL])
    for payload in (as_string, as_blocks):
        used = message(payload)["usage"]["input_tokens"]
        assert used > plain
        counted = respond(call_for(payload, "/v1/messages/count_tokens"))
        assert json.loads(counted.body) == {"input_tokens": used}


def test_text_cut_at_max_tokens() -> None:
    got = message(body(max_tokens=3))
    assert got["stop_reason"] == "max_tokens"
    assert got["usage"]["output_tokens"] == 3
    full = message(body())["content"][0]["text"]
    assert got["content"][0]["text"] == "".join(split_tokens(full)[:3])


def test_stop_sequence_cuts_before_the_earliest_one() -> None:
    full = message(body())["content"][0]["text"]
    words = full.split()
    second, fourth = words[1], words[3]
    got = message(body(stop_sequences=[" " + fourth, " " + second]))
    assert got["content"][0]["text"] == full[: full.index(" " + second)]
    assert (got["stop_reason"], got["stop_sequence"]) == ("stop_sequence", " " + second)
    assert got["usage"]["output_tokens"] == count_tokens(got["content"][0]["text"])
    missing = message(body(stop_sequences=["never in the vocabulary: xyzzy"]))
    assert missing["content"][0]["text"] == full and missing["stop_reason"] == "end_turn"


@pytest.mark.parametrize("choice", [None, {"type": "auto"}])
def test_auto_tool_choice_calls_a_tool_until_a_tool_result_follows(
    choice: dict[str, str] | None,
) -> None:
    payload = body(tools=[WEATHER_TOOL]) | ({"tool_choice": choice} if choice else {})
    got = message(payload)
    assert [b["type"] for b in got["content"]] == ["tool_use"]
    assert got["stop_reason"] == "tool_use"
    use = got["content"][0]
    then = payload | {
        "messages": [
            *payload["messages"],
            {"role": "assistant", "content": [use]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "9C"}],
            },
        ]
    }
    after = message(then)
    assert [b["type"] for b in after["content"]] == ["text"]
    assert after["stop_reason"] == "end_turn"


@pytest.mark.parametrize(
    ("choice", "tools"),
    [({"type": "none"}, TOOLS_AUTO), (None, TOOLS_FORCED), ({"type": "auto"}, TOOLS_FORCED)],
)
def test_tool_choice_none_or_option_forced_gives_text(
    choice: dict[str, str] | None, tools: str
) -> None:
    payload = body(tools=[WEATHER_TOOL]) | ({"tool_choice": choice} if choice else {})
    got = message(payload, tools=tools)
    assert [b["type"] for b in got["content"]] == ["text"]
    assert got["stop_reason"] == "end_turn"


@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}])
def test_forced_tool_gives_one_tool_use(choice: dict[str, str]) -> None:
    other = {"name": "noop", "input_schema": {"type": "object"}}
    server = {"type": "web_search_20250305", "name": "web_search"}
    tools = [WEATHER_TOOL] if choice["type"] == "any" else [other, WEATHER_TOOL, server]
    got = message(body(tools=tools, tool_choice=choice))
    [block] = got["content"]
    assert block["type"] == "tool_use" and block["name"] == "get_weather"
    assert re.fullmatch(r"toolu_01[1-9A-HJ-NP-Za-km-z]{22}", block["id"])
    assert isinstance(block["input"]["city"], str) and block["input"]["days"] >= 1
    assert got["stop_reason"] == "tool_use"
    compact = json.dumps(block["input"], separators=(",", ":"))
    assert got["usage"]["output_tokens"] == count_tokens(compact)


def test_canned_reply_text_then_tools_keeps_given_ids() -> None:
    reply = Reply(
        "Checking both.",
        (
            ToolCall("get_weather", {"city": "Oslo", "days": 2}, "toolu_01given"),
            ToolCall("get_weather"),
        ),
    )
    got = message(body(tools=[WEATHER_TOOL], stop_sequences=["both"], max_tokens=2), reply=reply)
    text, first, second = got["content"]
    assert text == {"type": "text", "text": "Checking both."}
    assert first == {
        "type": "tool_use",
        "id": "toolu_01given",
        "name": "get_weather",
        "input": {"city": "Oslo", "days": 2},
    }
    assert second["id"].startswith("toolu_01") and second["id"] != first["id"]
    assert set(second["input"]) >= {"city", "days"}
    assert (got["stop_reason"], got["stop_sequence"]) == ("tool_use", None)


def test_thinking_block_first_and_output_within_max_tokens() -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    got = message(body(thinking=thinking, max_tokens=2000))
    first, second = got["content"]
    assert first["type"] == "thinking" and first["thinking"] and len(first["signature"]) == 128
    assert second["type"] == "text"
    assert got["usage"]["output_tokens"] == count_tokens(first["thinking"]) + count_tokens(
        second["text"]
    )
    tight = message(body(thinking=thinking, max_tokens=count_tokens(first["thinking"]) + 2))
    assert tight["content"][0]["thinking"] == first["thinking"]
    assert tight["content"][1]["text"] == "".join(split_tokens(second["text"])[:2])
    assert tight["stop_reason"] == "max_tokens"
    assert tight["usage"]["output_tokens"] == count_tokens(first["thinking"]) + 2


def test_thinking_budget_bounds_the_thinking_and_display_omitted_hides_it() -> None:
    small = message(body(thinking={"type": "enabled", "budget_tokens": 3}))["content"][0]
    assert count_tokens(small["thinking"]) == 3
    hidden = message(body(thinking={"type": "adaptive", "display": "omitted"}))
    assert hidden["content"][0]["thinking"] == "" and hidden["content"][0]["signature"]
    off = message(body(thinking={"type": "disabled"}))
    assert [b["type"] for b in off["content"]] == ["text"]


# Streams


def stream_of(payload: dict[str, Any], **kwargs: Any) -> tuple[Answer, list[dict[str, Any]]]:
    answer = respond(call_for(payload | {"stream": True}, **kwargs))
    assert answer.stream and answer.status == 200
    assert dict(answer.headers)["content-type"].startswith("text/event-stream")
    return answer, events(answer)


def test_text_stream_event_order_and_deltas() -> None:
    answer, evs = stream_of(body())
    full = message(body())
    types = [e["type"] for e in evs]
    n = len(split_tokens(full["content"][0]["text"]))
    assert types == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * n,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = evs[0]["message"]
    assert start["id"] == full["id"] and start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == full["usage"]["input_tokens"]
    assert start["usage"]["output_tokens"] == 1
    assert evs[1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    deltas = [e["delta"] for e in evs if e["type"] == "content_block_delta"]
    assert all(d["type"] == "text_delta" for d in deltas)
    assert "".join(d["text"] for d in deltas) == full["content"][0]["text"]
    assert evs[-2]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert evs[-2]["usage"]["output_tokens"] == full["usage"]["output_tokens"] == n
    assert b"[DONE]" not in answer.body


def test_stream_with_thinking_text_and_tools_in_index_order() -> None:
    reply = Reply("Let me check.", (ToolCall("get_weather"), ToolCall("get_weather")))
    payload = body(tools=[WEATHER_TOOL], thinking={"type": "enabled", "budget_tokens": 2048})
    _, evs = stream_of(payload, reply=reply)
    full = message(payload, reply=reply)
    starts = [e for e in evs if e["type"] == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1, 2, 3]
    assert starts[0]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert [s["content_block"]["type"] for s in starts] == [
        "thinking",
        "text",
        "tool_use",
        "tool_use",
    ]
    assert [e["type"] for e in evs].index("ping") == 2
    by_index: dict[int, list[dict[str, Any]]] = {}
    for e in evs:
        if e["type"] == "content_block_delta":
            by_index.setdefault(e["index"], []).append(e["delta"])
    thinking = by_index[0]
    assert [d["type"] for d in thinking[:-1]] == ["thinking_delta"] * (len(thinking) - 1)
    assert thinking[-1] == {"type": "signature_delta", "signature": full["content"][0]["signature"]}
    assert "".join(d["thinking"] for d in thinking[:-1]) == full["content"][0]["thinking"]
    for i in (2, 3):
        parts = [d["partial_json"] for d in by_index[i]]
        assert parts[0] == "" and len(parts) > 2
        assert json.loads("".join(parts)) == full["content"][i]["input"]
        assert starts[i]["content_block"] == {
            "type": "tool_use",
            "id": full["content"][i]["id"],
            "name": "get_weather",
            "input": {},
        }
    # a block's deltas come between its start and stop, blocks one after the other
    opened = [(e["type"], e.get("index")) for e in evs if e["type"].startswith("content_block")]
    for i in range(4):
        first, last = (
            opened.index(("content_block_start", i)),
            opened.index(("content_block_stop", i)),
        )
        assert all(idx == i for _, idx in opened[first : last + 1])
    assert evs[-2]["delta"]["stop_reason"] == "tool_use"
    assert evs[-2]["usage"]["output_tokens"] == full["usage"]["output_tokens"]


def test_stop_sequence_and_max_tokens_in_the_stream_delta() -> None:
    full = message(body())["content"][0]["text"]
    stop = " " + full.split()[2]
    _, evs = stream_of(body(stop_sequences=[stop]))
    assert evs[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": stop}
    _, evs = stream_of(body(max_tokens=4))
    assert evs[-2]["delta"]["stop_reason"] == "max_tokens"
    assert evs[-2]["usage"]["output_tokens"] == 4
    assert sum(e["type"] == "content_block_delta" for e in evs) == 4


def test_empty_canned_reply_streams_no_blocks_but_still_ends() -> None:
    _, evs = stream_of(body(), reply=Reply())
    assert [e["type"] for e in evs] == ["message_start", "ping", "message_delta", "message_stop"]
    assert evs[0]["message"]["usage"]["output_tokens"] == 0


# Determinism


@pytest.mark.parametrize("stream", [False, True])
def test_same_fingerprint_and_occurrence_give_identical_bytes(stream: bool) -> None:
    payload = body(tools=[WEATHER_TOOL], thinking={"type": "enabled", "budget_tokens": 1024})
    payload["stream"] = stream
    one, two = respond(call_for(payload)), respond(call_for(payload))
    assert (one.headers, one.frames, one.stream) == (two.headers, two.frames, two.stream)
    forced = payload | {"tool_choice": {"type": "any"}}
    assert respond(call_for(forced)).frames == respond(call_for(forced)).frames


def test_occurrence_and_fingerprint_change_the_answer() -> None:
    base = message(body())
    for kwargs in ({"occurrence": 1}, {"fingerprint": "b" * 64}):
        other = message(body(), **kwargs)
        assert other["id"] != base["id"]
        assert other["content"][0]["text"] != base["content"][0]["text"]
