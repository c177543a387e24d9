"""drift.py's comparison of shapes, and drift_run.py's choice, rebuilding and sending of
requests (httpx's MockTransport: no network)."""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.cassettes import JSON, SSE, chat, interaction, request

from replay import drift_run
from replay.drift import Answer, Kind, compare, shape_of, stream_error
from replay.drift_known import CONTENT_EVENTS, GEMINI_PART_DATA, KNOWN_VARIANTS
from replay.models import Request
from replay.redact import UNDECODABLE_BODY, redact

NDJSON = (("content-type", "application/x-ndjson"),)


def as_json(value: Any, *headers: tuple[str, str], status: int = 200) -> Answer:
    return Answer(status, (*JSON, *headers), json.dumps(value).encode())


def sse(*events: tuple[str | None, Any]) -> Answer:
    out = b""
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        text = data if isinstance(data, str) else json.dumps(data)
        out += f"{head}data: {text}\n\n".encode()
    return Answer(200, SSE, out)


def kinds(differences: list[Any]) -> set[tuple[str, str]]:
    return {(str(d.kind), d.where) for d in differences}


CHAT = {
    "id": "chatcmpl-1",
    "choices": [{"message": {"content": "hello", "refusal": None}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3},
}


def test_the_same_shape_with_other_text_and_numbers_is_no_drift() -> None:
    live = json.loads(json.dumps(CHAT))
    live["id"] = "chatcmpl-other"
    live["choices"][0]["message"]["content"] = "a whole other answer"
    live["usage"]["prompt_tokens"] = 3.5  # int and float are one JSON type
    assert compare(as_json(CHAT), as_json(live)) == []


def test_a_renamed_field_is_gone_and_new() -> None:
    live = json.loads(json.dumps(CHAT))
    live["choices"][0]["stop_reason"] = live["choices"][0].pop("finish_reason")
    differences = compare(as_json(CHAT), as_json(live))
    assert kinds(differences) == {
        ("gone", "choices[].finish_reason"),
        ("new", "choices[].stop_reason"),
    }
    assert [str(d) for d in differences] == [
        "- choices[].finish_reason: no longer sent (was string)",
        "+ choices[].stop_reason: new (string)",
    ]


def test_a_changed_type_is_drift_but_null_against_a_value_is_not() -> None:
    live = json.loads(json.dumps(CHAT))
    live["usage"]["prompt_tokens"] = "3"
    live["choices"][0]["message"]["refusal"] = "no"
    [difference] = compare(as_json(CHAT), as_json(live))
    assert (difference.kind, difference.where) == (Kind.TYPE, "usage.prompt_tokens")
    assert str(difference) == "~ usage.prompt_tokens: number → string"


def test_keys_under_a_null_or_empty_container_are_not_drift() -> None:
    recorded = {"logprobs": None, "choices": [], "tool_calls": {}}
    live = {"logprobs": {"content": [{"token": "a"}]}, "choices": [{"x": 1}], "tool_calls": {}}
    assert compare(as_json(recorded), as_json(live)) == []
    assert compare(as_json(live), as_json(recorded)) == []


def test_the_keys_of_generated_objects_are_not_compared() -> None:
    recorded = {"content": [{"type": "tool_use", "input": {"city": "Paris"}}]}
    live = {"content": [{"type": "tool_use", "input": {"town": "Paris", "units": "C"}}]}
    assert compare(as_json(recorded), as_json(live)) == []
    live["content"][0]["input"] = "Paris"  # type: ignore[index]
    assert kinds(compare(as_json(recorded), as_json(live))) == {
        ("type", "content[]@tool_use.input")
    }


def test_a_status_change_is_one_difference_with_the_providers_message() -> None:
    error = {"error": {"message": "The model `gpt-4-0314` has been deprecated", "type": "x"}}
    [difference] = compare(as_json(CHAT), as_json(error, status=404))
    assert difference.kind is Kind.STATUS
    assert str(difference) == ("~ status: 200 → 404 (The model `gpt-4-0314` has been deprecated)")


def test_content_type_and_request_id_headers() -> None:
    recorded = as_json(CHAT, ("x-request-id", "req_1"))
    live = Answer(200, (("content-type", "application/json; charset=utf-8"),), recorded.body)
    assert kinds(compare(recorded, live)) == {("header", "x-request-id")}
    streamed = sse((None, CHAT), (None, "[DONE]"))
    assert kinds(compare(as_json(CHAT), streamed)) == {("content-type", "")}


def test_stream_events_new_gone_and_reordered_but_not_counted() -> None:
    recorded = sse(
        ("message_start", {"type": "message_start", "message": {"id": "m"}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "delta": {"text": "a"}}),
        ("message_stop", {"type": "message_stop"}),
    )
    more = sse(
        ("message_start", {"type": "message_start", "message": {"id": "m"}}),
        ("ping", {"type": "ping"}),
        *[("content_block_delta", {"type": "content_block_delta", "delta": {"text": "b"}})] * 5,
        ("message_stop", {"type": "message_stop"}),
    )
    assert compare(recorded, more) == []
    changed = sse(
        ("content_block_delta", {"type": "content_block_delta", "delta": {"text": "b"}}),
        ("message_start", {"type": "message_start", "message": {"id": "m"}}),
        ("citation", {"type": "citation"}),
    )
    assert kinds(compare(recorded, changed)) == {
        ("event-gone", "message_stop"),
        ("event-new", "citation"),
        ("event-order", ""),
    }
    ignored = compare(recorded, changed, ["[message_stop]", "[citation]", "[message_start]"])
    assert ignored == []


def test_unnamed_events_are_named_by_their_object_and_done_is_an_event() -> None:
    chunk = {"object": "chat.completion.chunk", "choices": [{"delta": {"content": "a"}}]}
    recorded = sse((None, chunk), (None, "[DONE]"))
    assert shape_of(recorded).events == ["chat.completion.chunk", "[DONE]"]
    renamed = {"object": "chat.completion.chunk", "choices": [{"delta": {"text": "a"}}]}
    assert kinds(compare(recorded, sse((None, renamed)))) == {
        ("event-gone", "[DONE]"),
        ("gone", "[chat.completion.chunk].choices[].delta.content"),
        ("new", "[chat.completion.chunk].choices[].delta.text"),
    }


def test_ndjson_lines_and_globs_are_literal_but_star() -> None:
    def lines(*objs: Any) -> Answer:
        return Answer(200, NDJSON, b"".join(json.dumps(o).encode() + b"\n" for o in objs))

    recorded = lines({"message": {"content": "a"}, "done": False}, {"done": True, "eval_id": 3})
    live = lines({"message": {"content": "b"}, "done": False}, {"done": True, "evals": 3})
    assert kinds(compare(recorded, live)) == {
        ("gone", "[line].eval_id"),
        ("new", "[line].evals"),
    }
    assert kinds(compare(recorded, live, ["[line].eval_*"])) == {("new", "[line].evals")}
    assert compare(recorded, live, ["[line].eval*"]) == []
    assert len(compare(recorded, live, ["[l].evals"])) == 2  # `[l]` is no character class


def test_bodies_that_are_not_json_and_hostile_ones_do_not_break_it() -> None:
    audio = Answer(200, (("content-type", "audio/mpeg"),), b"\xff\xfb\x90binary")
    assert compare(audio, Answer(200, audio.headers, b"\xff\xfbother")) == []
    deep = Answer(200, JSON, b"[" * 100_000 + b"]" * 100_000)
    assert compare(deep, deep) == []
    wide = as_json({f"k{i}": {"v": i} for i in range(30_000)})
    assert compare(wide, wide) == []


# -- drift_run ------------------------------------------------------------------------------

KEY = "sk-proj-Recorded0123456789abcdefghijkl"


def openai_recording(**headers: str) -> Any:
    req = chat("hi")
    all_headers = (
        *req.headers,
        ("Authorization", f"Bearer {KEY}"),
        ("Accept-Encoding", "gzip"),
        ("Connection", "keep-alive"),
        ("Content-Length", str(len(req.body))),
        ("Cookie", "__cf_bm=abc"),
        ("x-replay-namespace", "x"),
        *headers.items(),
    )
    req = Request(req.method, req.scheme, req.host, req.port, req.path, (), all_headers, req.body)
    return redact(interaction(req, [b"{}"])).interaction


def test_a_redacted_key_is_filled_from_the_environment_and_hop_headers_go() -> None:
    stored = openai_recording()
    assert stored.request.header("authorization") == "<redacted>"
    live = drift_run.live_request(stored, {"OPENAI_API_KEY": "sk-live"}, {})
    headers = dict(live.headers)
    assert headers["Authorization"] == "Bearer sk-live"
    assert headers["accept-encoding"] == "identity"
    assert {"Cookie", "Connection", "Content-Length", "x-replay-namespace"}.isdisjoint(headers)
    assert live.credentials == ("OPENAI_API_KEY",)
    assert live.url == "https://api.openai.com/v1/chat/completions"
    assert live.body == stored.request.body


def test_a_missing_key_names_its_variable_and_a_header_option_supplies_any() -> None:
    stored = openai_recording(**{"helicone-auth": "Bearer sk-helicone-secret"})
    with pytest.raises(drift_run.MissingCredential, match="set OPENAI_API_KEY"):
        drift_run.live_request(stored, {}, {})
    with pytest.raises(
        drift_run.MissingCredential, match=re.escape("--header 'helicone-auth: ...'")
    ):
        drift_run.live_request(stored, {"OPENAI_API_KEY": "sk-live"}, {})
    overrides = drift_run.parse_header_options(["Helicone-Auth: Bearer h", "authorization: x"])
    live = drift_run.live_request(stored, {}, overrides)
    assert dict(live.headers)["helicone-auth"] == "Bearer h"
    assert dict(live.headers)["authorization"] == "x"
    assert "Authorization" not in dict(live.headers)
    assert live.credentials == ("--header helicone-auth", "--header authorization")
    with pytest.raises(ValueError, match="is not 'Name: value'"):
        drift_run.parse_header_options(["no colon"])


def test_a_gemini_key_in_the_query_is_filled() -> None:
    req = request({"contents": []}, "/v1beta/models/g:generateContent", "example.googleapis.com")
    req = Request(*[getattr(req, f) for f in ("method", "scheme", "host", "port", "path")],
                  (("key", "AIzaRecorded"), ("alt", "sse")), req.headers, req.body)  # fmt: skip
    stored = redact(interaction(req, [b"{}"], provider="gemini")).interaction
    with pytest.raises(drift_run.MissingCredential, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        drift_run.live_request(stored, {}, {})
    live = drift_run.live_request(stored, {"GOOGLE_API_KEY": "AIzaLive"}, {})
    assert live.url.endswith("/v1beta/models/g:generateContent?key=AIzaLive&alt=sse")
    assert live.credentials == ("GOOGLE_API_KEY",)


def test_choose_checks_each_request_once_and_samples_by_seed() -> None:
    items = []
    for n in range(6):
        req = chat(f"q{n}")
        items += [interaction(req, [b"{}"], occurrence=o) for o in (1, 0)]
    items.append(interaction(chat("cut"), [b"{"], complete=False))
    chosen, total = drift_run.choose(((i.key, i) for i in items), None, 0)
    assert total == 6 and [k.occurrence for k, _ in chosen] == [0] * 6
    a, _ = drift_run.choose(((i.key, i) for i in items), 3, 42)
    b, _ = drift_run.choose(((i.key, i) for i in items), 3, 42)
    assert [k for k, _ in a] == [k for k, _ in b] and len(a) == 3
    order = [k for k, _ in chosen]
    assert [k for k, _ in a] == sorted((k for k, _ in a), key=order.index)


def test_recorded_answers_are_decoded_and_live_ones_read_capped() -> None:
    body = json.dumps(CHAT).encode()
    stored = interaction(
        chat("z"), [gzip.compress(body)], headers=(*JSON, ("content-encoding", "gzip"))
    )
    assert drift_run.recorded_answer(stored).body == body

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer sk-live"
        return httpx.Response(200, headers=dict(JSON), content=body)

    live = drift_run.LiveRequest(
        "POST", "https://api.openai.com/x", (("authorization", "Bearer sk-live"),), b"{}", ()
    )
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        assert drift_run.send(client, live).body == body
        with pytest.raises(drift_run.LiveError, match="larger than 10 bytes"):
            drift_run.send(client, live, limit=10)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with (
        httpx.Client(transport=httpx.MockTransport(refuse)) as client,
        pytest.raises(drift_run.LiveError, match="ConnectError: connection refused"),
    ):
        drift_run.send(client, live)


def test_anthropic_pings_and_a_mid_stream_error_are_not_the_apis_shape() -> None:
    start = ("message_start", {"type": "message_start", "message": {"id": "m"}})
    stop = ("message_stop", {"type": "message_stop"})
    recorded = sse(start, ("ping", {"type": "ping"}), stop)
    assert compare(recorded, sse(start, stop)) == []
    failed = sse(start, ("error", {"type": "error", "error": {"type": "overloaded_error"}}))
    assert stream_error(recorded, failed)
    assert not stream_error(recorded, sse(start, ("citation", {}), stop))
    assert not stream_error(failed, failed)  # a recorded failure is compared as any answer


def test_a_request_that_continues_a_stored_conversation_is_not_resent() -> None:
    body = {"model": "gpt-4.1", "input": "and then?", "previous_response_id": "resp_1"}
    follow_up = interaction(request(body, "/v1/responses"), [b"{}"])
    assert "previous_response_id" in (drift_run.depends_on_state(follow_up) or "")
    first = interaction(request({**body, "previous_response_id": None}, "/v1/responses"), [b"{}"])
    assert drift_run.depends_on_state(first) is None
    assert drift_run.depends_on_state(interaction(chat("conversation"), [b"{}"])) is None


def test_a_stored_request_httpx_will_not_send_is_a_live_error() -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("sent")

    odd = drift_run.LiveRequest(
        "POST", "https://api.openai.com/x", (("x-note", "caf\u00e9 \u2603"),), b"", ()
    )
    with (
        httpx.Client(transport=httpx.MockTransport(never)) as client,
        pytest.raises(drift_run.LiveError, match="UnicodeEncodeError"),
    ):
        drift_run.send(client, odd)


# -- false drift: two honest answers to one request, shaped apart by their content -----------


def raw_sse(text: str, content_type: str = "text/event-stream; charset=utf-8") -> Answer:
    return Answer(200, (("content-type", content_type),), text.encode())


def frames(*events: tuple[str | None, Any], crlf: bool = False) -> str:
    out = ""
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out += (f"event: {name}\n" if name else "") + f"data: {text}\n\n"
    return out.replace("\n", "\r\n") if crlf else out


def both_ways(a: Answer, b: Answer) -> list[Any]:
    return compare(a, b) + compare(b, a)


OPENAI_TEXT = {
    "id": "chatcmpl-B1", "object": "chat.completion", "created": 1767225600,
    "model": "gpt-4o-mini-2024-07-18", "service_tier": "default", "system_fingerprint": "fp_1",
    "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "Paris is sunny.", "refusal": None, "annotations": []}}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}},
}  # fmt: skip


def test_openai_chat_a_tool_call_refusal_or_citation_instead_of_text_is_no_drift() -> None:
    tool = json.loads(json.dumps(OPENAI_TEXT))
    del tool["system_fingerprint"]  # Optional; some backends leave it out
    tool["choices"][0]["finish_reason"] = "tool_calls"
    tool["choices"][0]["message"].update(content=None, refusal="I can't", tool_calls=[
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}])  # fmt: skip
    tool["choices"][0]["message"]["annotations"] = [
        {"type": "url_citation", "url_citation": {"url": "https://x", "title": "t"}}
    ]
    assert both_ways(as_json(OPENAI_TEXT), as_json(tool)) == []
    retyped = json.loads(json.dumps(tool))
    retyped["choices"][0]["message"]["tool_calls"][0]["id"] = 7  # optional, still typed
    assert kinds(compare(as_json(tool), as_json(retyped))) == {
        ("type", "choices[].message.tool_calls[]@function.id")
    }


def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1767225600,
        "model": "gpt-4o-mini", "system_fingerprint": "fp_1", "obfuscation": "x1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": None, **more,
    }  # fmt: skip


def test_openai_chat_streams_with_tools_keepalives_usage_and_done_variants() -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    text = raw_sse(
        frames(
            (None, chunk({"role": "assistant", "content": "", "refusal": None})),
            *[(None, chunk({"content": t})) for t in ("Hel", "lo")],
            (None, chunk({}, "stop")),
            (None, {**chunk({}), "choices": [], "usage": usage}),
            (None, "[DONE]"),
        )
    )
    call = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": ""}}  # fmt: skip
    tools = raw_sse(
        ": keep-alive\n\n"
        + frames(
            (None, chunk({"role": "assistant", "content": None, "refusal": None})),
            (None, chunk({"tool_calls": [call]})),
            (None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})),
            (None, chunk({}, "tool_calls")),
            (None, {**chunk({}), "choices": [], "usage": usage}),
            crlf=True,
        )
        + ": OPENROUTER PROCESSING\r\n\r\ndata:[DONE]\r\n\r\n"
    )
    assert both_ways(text, tools) == []


RESPONSE = {"id": "resp_1", "object": "response", "created_at": 1, "status": "completed",
            "error": None, "model": "gpt-5", "output": [], "usage": None}  # fmt: skip
TEXT_PART = {"type": "output_text", "annotations": [], "logprobs": [], "text": "Hi"}
MESSAGE = {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
           "content": [TEXT_PART]}  # fmt: skip
REASONING = {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "s"}]}
CALL = {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1",
        "name": "get_weather", "arguments": "{}"}  # fmt: skip


def responses_stream(*items: dict[str, Any]) -> Answer:
    """A Responses stream as the API sends it: lifecycle events around each item's own."""
    out: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": {**RESPONSE, "status": "in_progress"}}),
        ("response.in_progress", {"response": {**RESPONSE, "status": "in_progress"}}),
    ]
    for index, item in enumerate(items):
        at = {"output_index": index, "item_id": item["id"]}
        out.append(("response.output_item.added", {"output_index": index, "item": item}))
        if item["type"] == "message":
            part = {"type": "output_text", "annotations": [], "text": ""}
            out += [
                ("response.content_part.added", {**at, "content_index": 0, "part": part}),
                ("response.output_text.delta", {**at, "content_index": 0, "delta": "Hi"}),
                ("response.output_text.done", {**at, "content_index": 0, "text": "Hi"}),
                ("response.content_part.done", {**at, "content_index": 0, "part": part}),
            ]
        elif item["type"] == "reasoning":
            part = {"type": "summary_text", "text": ""}
            out += [
                ("response.reasoning_summary_part.added", {**at, "summary_index": 0, "part": part}),
                ("response.reasoning_summary_text.delta", {**at, "summary_index": 0, "delta": "s"}),
                ("response.reasoning_summary_text.done", {**at, "summary_index": 0, "text": "s"}),
                ("response.reasoning_summary_part.done", {**at, "summary_index": 0, "part": part}),
            ]
        else:
            out += [
                ("response.function_call_arguments.delta", {**at, "delta": "{}"}),
                ("response.function_call_arguments.done", {**at, "arguments": "{}"}),
            ]
        out.append(("response.output_item.done", {"output_index": index, "item": item}))
    done = {**RESPONSE, "output": list(items), "usage": {"input_tokens": 3, "output_tokens": 2}}
    out.append(("response.completed", {"response": done}))
    return sse(*[(n, {"type": n, "sequence_number": i, **d}) for i, (n, d) in enumerate(out)])


def test_openai_responses_reasoning_items_and_function_calls_are_the_answers_choice() -> None:
    plain = as_json({**RESPONSE, "output": [MESSAGE]})
    assert both_ways(plain, as_json({**RESPONSE, "output": [REASONING, CALL]})) == []
    assert both_ways(plain, as_json({**RESPONSE, "output": [REASONING, MESSAGE, CALL]})) == []
    text = responses_stream(MESSAGE)
    assert both_ways(text, responses_stream(REASONING, MESSAGE)) == []
    assert both_ways(text, responses_stream(CALL)) == []
    assert both_ways(text, responses_stream(REASONING, CALL, MESSAGE)) == []
    cut = responses_stream(MESSAGE).body.replace(b"response.completed", b"response.incomplete")
    assert both_ways(text, Answer(200, SSE, cut)) == []  # ran out of tokens this time


ANTHROPIC_TEXT = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Let me check."}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 25, "cache_creation_input_tokens": 0,
              "cache_read_input_tokens": 0, "output_tokens": 15, "service_tier": "standard"},
}  # fmt: skip


def test_anthropic_thinking_tool_use_citations_and_server_tools_are_no_drift() -> None:
    live = json.loads(json.dumps(ANTHROPIC_TEXT))
    live["content"] = [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Per the doc", "citations": [{"type": "char_location"}]},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "P"}},
    ]
    live["stop_reason"] = "tool_use"
    live["usage"]["server_tool_use"] = {"web_search_requests": 1}
    assert both_ways(as_json(ANTHROPIC_TEXT), as_json(live)) == []
    only_tool = {**ANTHROPIC_TEXT, "content": [live["content"][2]]}
    assert both_ways(as_json(ANTHROPIC_TEXT), as_json(only_tool)) == []


def anthropic_stream(*blocks: tuple[dict[str, Any], list[dict[str, Any]]], pings: int) -> Answer:
    message = {k: v for k, v in ANTHROPIC_TEXT.items() if k != "content"}
    out: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": {**message, "content": []}})
    ]
    out += [("ping", {})] * pings
    for index, (block, deltas) in enumerate(blocks):
        out.append(("content_block_start", {"index": index, "content_block": block}))
        out += [("content_block_delta", {"index": index, "delta": d}) for d in deltas]
        out.append(("content_block_stop", {"index": index}))
    out.append(("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                  "usage": {"output_tokens": 15}}))  # fmt: skip
    out += [("message_stop", {}), *[("ping", {})] * pings]
    return sse(*[(n, {"type": n, **d}) for n, d in out])


def test_anthropic_streams_with_thinking_tools_and_pings_anywhere() -> None:
    text = ({"type": "text", "text": ""}, [{"type": "text_delta", "text": "Hi"}])
    thinking = (
        {"type": "thinking", "thinking": "", "signature": ""},
        [
            {"type": "thinking_delta", "thinking": "h"},
            {"type": "signature_delta", "signature": "s"},
        ],
    )
    tool = (
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
        [{"type": "input_json_delta", "partial_json": '{"city":'}],
    )
    recorded = anthropic_stream(text, pings=0)
    assert both_ways(recorded, anthropic_stream(thinking, text, tool, pings=3)) == []
    assert both_ways(recorded, anthropic_stream(tool, pings=1)) == []


GEMINI_TEXT = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]},
                    "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 5, "totalTokenCount": 13,
                      "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}],
                      "thoughtsTokenCount": 40},
    "modelVersion": "gemini-2.5-flash", "responseId": "m0pP",
}  # fmt: skip


def test_gemini_left_out_zero_counts_thoughts_and_function_calls_are_no_drift() -> None:
    live = json.loads(json.dumps(GEMINI_TEXT))
    del live["usageMetadata"]["thoughtsTokenCount"]  # proto3: a zero count is left out
    live["usageMetadata"]["cachedContentTokenCount"] = 6
    live["candidates"][0]["content"]["parts"] = [
        {"text": "thinking...", "thought": True},
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": "x",
        },
    ]
    live["candidates"][0]["safetyRatings"] = [{"category": "HARM", "probability": "NEGLIGIBLE"}]
    assert both_ways(as_json(GEMINI_TEXT), as_json(live)) == []
    streamed = raw_sse(frames((None, GEMINI_TEXT)), "text/event-stream")
    cut = json.loads(json.dumps(GEMINI_TEXT))
    cut["candidates"][0].update(content={"role": "model"}, finishReason="MAX_TOKENS")
    assert (
        both_ways(streamed, raw_sse(frames((None, live), (None, cut)), "text/event-stream")) == []
    )


def test_ollama_left_out_metrics_thinking_and_blank_lines_are_no_drift() -> None:
    def lines(*objs: Any, tail: bytes = b"\n") -> Answer:
        return Answer(200, NDJSON, b"\n".join(json.dumps(o).encode() for o in objs) + tail)

    head = {"model": "qwen3", "created_at": "t", "message": {"role": "assistant", "content": "a"},
            "done": False}  # fmt: skip
    end = {"model": "qwen3", "created_at": "t", "message": {"role": "assistant", "content": ""},
           "done": True, "done_reason": "stop", "total_duration": 9, "load_duration": 5,
           "prompt_eval_count": 3, "prompt_eval_duration": 4, "eval_count": 2,
           "eval_duration": 1}  # fmt: skip
    warm = {k: v for k, v in end.items() if "load" not in k and "prompt_eval" not in k}
    warm["message"] = {"role": "assistant", "content": "", "thinking": "hm", "tool_calls": [
        {"function": {"name": "f", "arguments": {"x": 1}}}]}  # fmt: skip
    assert both_ways(lines(head, end), lines(head, warm, tail=b"\n\n")) == []
    assert both_ways(lines(head, end), lines(head, warm, tail=b"")) == []


def test_azure_filter_findings_and_charset_spelling_are_no_drift() -> None:
    found = {"hate": {"filtered": False, "severity": "safe"}}
    more = {**found, "protected_material_code": {"filtered": False, "detected": True}}
    recorded = {**OPENAI_TEXT, "prompt_filter_results": [
        {"prompt_index": 0, "content_filter_results": found}]}  # fmt: skip
    live = {**OPENAI_TEXT, "prompt_filter_results": [
        {"prompt_index": 0, "content_filter_results": more}]}  # fmt: skip
    assert both_ways(as_json(recorded), as_json(live)) == []
    for spelling in ("application/json; charset=UTF-8", 'application/json;charset="utf8"'):
        other = Answer(200, (("content-type", spelling),), as_json(OPENAI_TEXT).body)
        assert both_ways(as_json(OPENAI_TEXT), other) == []


# -- real drift: the API changed, and it must show -------------------------------------------


def test_a_field_moved_into_an_object_or_an_array_turned_object_is_drift() -> None:
    moved = json.loads(json.dumps(OPENAI_TEXT))
    moved["choices"][0]["result"] = {"finish_reason": moved["choices"][0].pop("finish_reason")}
    assert kinds(compare(as_json(OPENAI_TEXT), as_json(moved))) == {
        ("gone", "choices[].finish_reason"),
        ("new", "choices[].result"),
    }
    flat = {**OPENAI_TEXT, "choices": OPENAI_TEXT["choices"][0]}  # type: ignore[index]
    assert ("type", "choices") in kinds(compare(as_json(OPENAI_TEXT), as_json(flat)))
    renamed = {**OPENAI_TEXT, "object": "chat.completion.v2"}
    [difference] = compare(as_json(OPENAI_TEXT), as_json(renamed))
    assert str(difference) == "~ object: chat.completion → chat.completion.v2"


def test_an_optional_field_still_drifts_by_type_and_a_rename_still_shows() -> None:
    live = json.loads(json.dumps(GEMINI_TEXT))
    live["usageMetadata"]["thoughtsTokenCount"] = "40"
    assert kinds(compare(as_json(GEMINI_TEXT), as_json(live))) == {
        ("type", "usageMetadata.thoughtsTokenCount")
    }
    live["usageMetadata"]["thinkingTokenCount"] = live["usageMetadata"].pop("thoughtsTokenCount")
    assert kinds(compare(as_json(GEMINI_TEXT), as_json(live))) == {
        ("new", "usageMetadata.thinkingTokenCount")
    }


def test_a_field_gone_from_a_variant_both_sides_have_is_drift() -> None:
    tool = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    recorded = {**ANTHROPIC_TEXT, "content": [tool]}
    live = {**ANTHROPIC_TEXT, "content": [{**tool, "name": None, "id": None}]}
    assert compare(as_json(recorded), as_json(live)) == []  # null is a value's doing
    del live["content"][0]["name"]
    assert kinds(compare(as_json(recorded), as_json(live))) == {("gone", "content[]@tool_use.name")}


def test_a_variant_no_sdk_defines_is_drift_and_a_known_one_is_not() -> None:
    text = ({"type": "text", "text": ""}, [{"type": "text_delta", "text": "Hi"}])
    renamed = ({"type": "text", "text": ""}, [{"type": "text_chunk", "text": "Hi"}])
    differences = compare(anthropic_stream(text, pings=0), anthropic_stream(renamed, pings=0))
    assert [str(d) for d in differences] == [
        "+ [content_block_delta].delta@text_chunk: new (object)"
    ]
    untyped = ({"type": "text", "text": ""}, [{"text": "Hi"}])  # the `type` was dropped
    assert kinds(compare(anthropic_stream(text, pings=0), anthropic_stream(untyped, pings=0))) == {
        ("new", "[content_block_delta].delta.text")
    }


def test_an_event_renamed_on_either_side_of_the_frame_is_drift() -> None:
    recorded = anthropic_stream(pings=0)
    by_name = Answer(200, SSE, recorded.body.replace(b"event: message_delta", b"event: msg_delta"))
    assert kinds(compare(recorded, by_name)) == {
        ("event-gone", "message_delta"),
        ("event-new", "msg_delta:message_delta"),
    }
    by_type = Answer(200, SSE, recorded.body.replace(b'"type": "message_delta"', b'"type": "md"'))
    assert kinds(compare(recorded, by_type)) == {
        ("event-gone", "message_delta"),
        ("event-new", "message_delta:md"),
    }


def test_events_that_swap_places_are_drift_but_a_new_interleaving_is_not() -> None:
    recorded = anthropic_stream(pings=0)
    order = [b'event: message_stop\ndata: {"type": "message_stop"}\n\n']
    swapped = recorded.body.replace(order[0], b"")
    swapped = swapped.replace(b"event: message_delta", order[0] + b"event: message_delta")
    [difference] = compare(recorded, Answer(200, SSE, swapped))
    assert str(difference) == (
        "~ event order: message_delta before message_stop → message_stop before message_delta"
    )


def test_a_responses_event_missing_from_a_family_that_came_is_drift() -> None:
    recorded = responses_stream(MESSAGE)
    lacking = b"".join(
        b for b in recorded.body.split(b"\n\n") if b"output_text.done" not in b and b
    ).replace(b"}event", b"}\n\nevent")
    assert kinds(compare(recorded, Answer(200, SSE, lacking + b"\n\n"))) == {
        ("event-gone", "response.output_text.done")
    }
    renamed = recorded.body.replace(b"response.output_text.delta", b"response.output_text.chunk")
    assert kinds(compare(recorded, Answer(200, SSE, renamed))) == {
        ("event-gone", "response.output_text.delta"),
        ("event-new", "response.output_text.chunk"),
    }


def test_status_charset_and_body_kind_changes_are_drift() -> None:
    created = compare(as_json(OPENAI_TEXT), as_json(OPENAI_TEXT, status=201))
    assert [str(d) for d in created] == ["~ status: 200 → 201"]
    utf8 = raw_sse(frames((None, GEMINI_TEXT)))
    latin = raw_sse(frames((None, GEMINI_TEXT)), "text/event-stream; charset=ISO-8859-1")
    assert [str(d) for d in compare(utf8, latin)] == [
        "~ content-type: text/event-stream; charset=utf-8 → text/event-stream; charset=iso-8859-1"
    ]
    html = Answer(200, JSON, b"<html>Service moved</html>")
    assert [str(d) for d in compare(as_json(OPENAI_TEXT), html)] == ["~ body: JSON → not JSON"]


def test_a_provider_failure_inside_a_stream_is_not_drift_but_an_error() -> None:
    gemini = raw_sse(frames((None, GEMINI_TEXT)))
    broken = {"error": {"code": 500, "message": "Internal", "status": "INTERNAL"}}
    assert stream_error(gemini, raw_sse(frames((None, GEMINI_TEXT), (None, broken))))
    chat = raw_sse(frames((None, chunk({"content": "a"})), (None, "[DONE]")))
    assert stream_error(chat, raw_sse(frames((None, chunk({"content": "a"})), (None, broken))))
    failed = responses_stream(MESSAGE).body.replace(b"response.completed", b"response.failed")
    assert stream_error(responses_stream(MESSAGE), Answer(200, SSE, failed))
    assert not stream_error(gemini, gemini)


def test_odd_bodies_give_differences_never_an_exception() -> None:
    recorded = anthropic_stream(pings=0)
    comments = Answer(200, SSE, b": keep-alive\n\n" * 1000)
    assert {d.kind for d in compare(recorded, comments)} == {Kind.EVENT_GONE}
    latin1 = Answer(200, SSE, b'event: message_start\ndata: {"type": "caf\xe9"}\n\n')
    assert compare(latin1, latin1) == []
    not_utf8 = Answer(200, JSON, b'{"a": "\xff\xfe"}')
    assert [str(d) for d in compare(as_json({"a": "x"}), not_utf8)] == ["~ body: JSON → not JSON"]
    empty = Answer(204, (), b"")
    assert compare(empty, empty) == []
    assert [str(d) for d in compare(empty, as_json({}, status=200))] == ["~ status: 204 → 200"]
    huge = Answer(200, NDJSON, b'{"a": 1}\n' * 100_000)
    assert compare(huge, huge) == []


def test_recordings_that_cannot_be_asked_again_are_skipped_and_encoded_bodies_sent_plain() -> None:
    busy = interaction(chat("busy"), [b'{"error": {}}'], status=529, provider="anthropic")
    assert "529 (busy or down)" in (drift_run.not_resendable(busy) or "")
    missing = interaction(chat("gone"), [b"{}"])
    missing = dataclasses.replace(
        missing, request=dataclasses.replace(missing.request, body=UNDECODABLE_BODY)
    )
    assert "body was not stored" in (drift_run.not_resendable(missing) or "")
    assert drift_run.not_resendable(interaction(chat("fine"), [b"{}"])) is None
    plain = chat("zipped")
    zipped = dataclasses.replace(
        plain,
        headers=(*plain.headers, ("Content-Encoding", "gzip")),
        body=gzip.compress(plain.body),
    )
    live = drift_run.live_request(interaction(zipped, [b"{}"]), {}, {})
    assert live.body == plain.body
    assert "content-encoding" not in {k.lower() for k, _ in live.headers}


def test_the_known_variants_and_content_events_are_the_official_sdks_own() -> None:
    """Each name drift.py treats as the content's choice is defined by an installed SDK."""
    import anthropic
    import openai
    from google.genai import types

    literals: set[str] = set()
    for package in (openai, anthropic):
        for path in Path(package.__file__).parent.joinpath("types").rglob("*.py"):
            literals.update(re.findall(r'Literal\[\s*"([^"]+)"', path.read_text()))
    part_fields = {types.Part.model_fields[f].alias or f for f in types.Part.model_fields}
    part_fields |= {"".join(w.title() if i else w for i, w in enumerate(f.split("_")))
                    for f in types.Part.model_fields}  # fmt: skip
    assert set(GEMINI_PART_DATA).issubset(part_fields)
    assert (KNOWN_VARIANTS - set(GEMINI_PART_DATA)).issubset(literals)
    assert CONTENT_EVENTS.issubset(literals)


def test_unreadable_files_are_named_in_the_summary_and_the_rest_is_checked(
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner
    from support.cassettes import write

    from replay.cli import main

    [good] = write(tmp_path, [interaction(chat("still readable"), [b"{}"])])
    broken = good.parent.parent / "ab" / ("ab" * 32 + ".0.zst")  # <ns>/<fp[:2]>/<fp>.<n>.zst
    broken.parent.mkdir()
    broken.write_bytes(b"not zstd at all")
    result = CliRunner().invoke(main, ["drift", "--dir", str(tmp_path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    assert "1 file(s) could not be read and are not checked" in result.output
    assert result.output.count('"result":"ready"') == 1
