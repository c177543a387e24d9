"""The synthetic Responses API, called directly: routes, the Response object and its event
stream (PROTOCOLS.md §2.4), the reply a request asks for, and what the per-run state does
with store, previous_response_id, background, cancel, delete and input_items."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from replay.models import Request
from replay.providers import openai_responses
from replay.providers.base import (
    Answer,
    BadCall,
    Call,
    Reply,
    Route,
    Session,
    ToolCall,
    made_up_text,
    prompt_tokens,
)
from replay.providers.responses_state import ResponsesState, Stored
from replay.providers.text import count_tokens, split_tokens

WEATHER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
TOOLS: list[Any] = [{"type": "function", "name": "get_weather", "parameters": WEATHER}]


def request(method: str, path: str, body: object = None, query: Any = ()) -> Request:
    data = b"" if body is None else json.dumps(body).encode()
    return Request(method, "https", "api.openai.com", 443, path, tuple(query), (), data)


def route_for(req: Request) -> tuple[Route, dict[str, str]] | None:
    method = req.method.upper()
    for route in openai_responses.ROUTES:
        if route.method != method and not (route.method == "GET" and method == "HEAD"):
            continue
        m = route.path.fullmatch(req.path)
        if m is not None:
            return route, {k: v for k, v in m.groupdict().items() if v is not None}
    return None


class Api:
    """Calls the responders as the engine would, with one session and fingerprints that
    follow the request (so two different requests never share ids)."""

    def __init__(self, reply: Reply | None = None, tools: str = "auto") -> None:
        self.session = Session()
        self.reply = reply
        self.tools = tools
        self.count: dict[Request, int] = {}

    def call(self, req: Request, fingerprint: str | None = None) -> Answer:
        found = route_for(req)
        assert found is not None, f"no route for {req.method} {req.path}"
        route, params = found
        occurrence = self.count.get(req, 0)
        self.count[req] = occurrence + 1
        fp = fingerprint or f"{req.method} {req.path} {req.query} {req.body!r}"
        call = Call(
            req, fp, occurrence, self.reply, self.session, params, synthetic_tools=self.tools
        )
        return route.respond(call)

    def create(self, **body: Any) -> Answer:
        return self.call(request("POST", "/v1/responses", {"model": "gpt-4.1-mini", **body}))

    def get(self, path: str, query: Any = ()) -> Answer:
        return self.call(request("GET", path, query=query))

    @property
    def state(self) -> ResponsesState:
        return self.session.slot("responses", ResponsesState)


def body(answer: Answer) -> Any:
    return json.loads(answer.body)


def events(answer: Answer) -> list[dict[str, Any]]:
    """Parse an SSE answer, checking each frame's `event:` line equals its JSON `type`."""
    out = []
    for frame in answer.frames:
        text = frame.decode()
        assert text.endswith("\n\n")
        head, data = text[:-2].split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert head == f"event: {event['type']}"
        out.append(event)
    return out


def error_of(answer: Answer, status: int) -> dict[str, Any]:
    assert answer.status == status
    assert answer.headers[0] == ("content-type", "application/json")
    payload = body(answer)
    assert set(payload) == {"error"}
    assert set(payload["error"]) == {"message", "type", "param", "code"}
    assert payload["error"]["type"] == "invalid_request_error"
    return dict(payload["error"])


# --- routes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/v1", "", "/openai", "/openai/v1", "/v1beta/openai"])
def test_every_endpoint_answers_under_every_prefix(prefix: str) -> None:
    expected = {
        ("POST", "/responses"): openai_responses.create,
        ("GET", "/responses/resp_1"): openai_responses.retrieve,
        ("HEAD", "/responses/resp_1"): openai_responses.retrieve,
        ("DELETE", "/responses/resp_1"): openai_responses.delete,
        ("POST", "/responses/resp_1/cancel"): openai_responses.cancel,
        ("GET", "/responses/resp_1/input_items"): openai_responses.input_items,
    }
    for (method, path), respond in expected.items():
        found = route_for(request(method, prefix + path))
        assert found is not None, (method, prefix + path)
        route, params = found
        assert route.respond is respond
        assert route.provider == "openai"
        if "resp_1" in path:
            assert params == {"response_id": "resp_1"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/responses/resp_1"),
        ("GET", "/v1/responses"),
        ("GET", "/v1/responses/resp_1/cancel"),
        ("POST", "/v1/responses/resp_1/input_items"),
        ("GET", "/v1/responses/resp_1/other"),
        ("POST", "/v2/responses"),
        ("POST", "/v1/chat/completions"),
    ],
)
def test_other_paths_are_not_ours(method: str, path: str) -> None:
    assert route_for(request(method, path)) is None


# --- a response ------------------------------------------------------------------------------


def test_non_stream_text_response_has_the_full_object() -> None:
    api = Api()
    answer = api.create(input="Hello there")
    assert answer.status == 200 and not answer.stream
    assert answer.headers[0] == ("content-type", "application/json")
    request_id = dict(answer.headers)["x-request-id"]
    assert re.fullmatch(r"req_[0-9a-f]{32}", request_id)
    r = body(answer)
    assert re.fullmatch(r"resp_[0-9a-f]{48}", r["id"])
    assert r["object"] == "response" and r["status"] == "completed"
    assert r["model"] == "gpt-4.1-mini"
    assert r["completed_at"] == r["created_at"]
    assert r["store"] is True and r["background"] is False
    assert r["tool_choice"] == "auto" and r["tools"] == []
    assert r["text"] == {"format": {"type": "text"}, "verbosity": "medium"}
    [item] = r["output"]
    assert re.fullmatch(r"msg_[0-9a-f]{48}", item["id"])
    assert item["type"] == "message" and item["role"] == "assistant"
    [part] = item["content"]
    assert part["type"] == "output_text" and part["annotations"] == []
    assert part["text"]
    usage = r["usage"]
    assert usage["input_tokens"] == prompt_tokens("Hello there")
    assert usage["output_tokens"] == count_tokens(part["text"])
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_text_stream_event_sequence() -> None:
    answer = Api().create(input="Hello there", stream=True)
    assert answer.stream and answer.status == 200
    assert answer.headers[0][1].startswith("text/event-stream")
    assert b"[DONE]" not in answer.body
    evs = events(answer)
    assert [e["sequence_number"] for e in evs] == list(range(len(evs)))
    kinds = [e["type"] for e in evs]
    final = evs[-1]["response"]
    text = final["output"][0]["content"][0]["text"]
    pieces = split_tokens(text)
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * len(pieces),
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["delta"] for e in evs if e["type"].endswith(".delta")] == pieces
    assert len(pieces) == final["usage"]["output_tokens"]
    lifecycle = [e["response"] for e in evs if "response" in e]
    assert {r["id"] for r in lifecycle} == {final["id"]}
    assert [r["status"] for r in lifecycle] == ["in_progress", "in_progress", "completed"]
    assert lifecycle[0]["output"] == [] and lifecycle[0]["usage"] is None
    added = evs[2]["item"]
    assert added["status"] == "in_progress" and added["content"] == []
    assert evs[3]["part"]["text"] == ""
    assert evs[-2]["item"] == final["output"][0]
    assert final["status"] == "completed"


def test_stream_and_non_stream_give_the_same_response() -> None:
    """For the same fingerprint and occurrence, the streamed final response is the object a
    non-streamed call gets."""
    b = {"model": "gpt-4.1-mini", "input": "same", "tools": TOOLS}
    plain = body(Api().call(request("POST", "/v1/responses", b), fingerprint="fp"))
    streamed = Api().call(request("POST", "/v1/responses", {**b, "stream": True}), "fp")
    assert events(streamed)[-1]["response"] == plain


def test_forced_function_call_gets_valid_arguments_streamed_in_fragments() -> None:
    answer = Api().create(input="weather?", tools=TOOLS, tool_choice="required", stream=True)
    evs = events(answer)
    kinds = [e["type"] for e in evs]
    fragments = [e["delta"] for e in evs if e["type"] == "response.function_call_arguments.delta"]
    assert kinds[2] == "response.output_item.added"
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    [item] = evs[-1]["response"]["output"]
    assert item["type"] == "function_call" and item["name"] == "get_weather"
    assert re.fullmatch(r"fc_[0-9a-f]{48}", item["id"])
    assert item["call_id"].startswith("call_")
    assert "".join(fragments) == item["arguments"]
    assert evs[2]["item"]["arguments"] == ""
    Draft202012Validator(WEATHER).validate(json.loads(item["arguments"]))
    assert evs[-1]["response"]["usage"]["output_tokens"] == count_tokens(item["arguments"])


def test_tool_choice_naming_a_function_calls_it() -> None:
    tools = [*TOOLS, {"type": "function", "name": "noop", "parameters": {"type": "object"}}]
    r = body(Api().create(input="x", tools=tools, tool_choice={"type": "function", "name": "noop"}))
    assert [i["name"] for i in r["output"]] == ["noop"]
    assert r["tools"][1]["strict"] is True and r["tools"][1]["description"] is None


def test_tool_choice_auto_calls_a_function_until_its_output_follows() -> None:
    for choice in ("auto", None):
        api = Api()
        r = body(api.create(input="x", tools=TOOLS, tool_choice=choice))
        (item,) = r["output"]
        assert item["type"] == "function_call" and item["name"] == "get_weather"
        output = {"type": "function_call_output", "call_id": item["call_id"], "output": "9C"}
        then = body(api.create(previous_response_id=r["id"], input=[output], tools=TOOLS))
        assert [i["type"] for i in then["output"]] == ["message"]


def test_tool_choice_none_or_option_forced_gives_text() -> None:
    for choice, tools in (("none", "auto"), ("auto", "forced"), (None, "forced")):
        r = body(Api(tools=tools).create(input="x", tools=TOOLS, tool_choice=choice))
        assert [i["type"] for i in r["output"]] == ["message"]


def test_tool_choice_naming_an_unknown_function_is_a_400() -> None:
    answer = Api().create(input="x", tools=TOOLS, tool_choice={"type": "function", "name": "zz"})
    assert error_of(answer, 400)["param"] == "tool_choice"


def test_canned_reply_gives_text_then_calls() -> None:
    reply = Reply("Sunny.", (ToolCall("get_weather", {"city": "Oslo", "days": 2}),))
    evs = events(Api(reply).create(input="x", tools=TOOLS, stream=True))
    output = evs[-1]["response"]["output"]
    assert [i["type"] for i in output] == ["message", "function_call"]
    assert output[0]["content"][0]["text"] == "Sunny."
    assert json.loads(output[1]["arguments"]) == {"city": "Oslo", "days": 2}
    added = [e["output_index"] for e in evs if e["type"] == "response.output_item.added"]
    assert added == [0, 1]


def test_canned_call_without_arguments_gets_them_from_the_schema() -> None:
    r = body(Api(Reply(None, (ToolCall("get_weather"),))).create(input="x", tools=TOOLS))
    [item] = r["output"]
    Draft202012Validator(WEATHER).validate(json.loads(item["arguments"]))


def test_json_schema_format_makes_a_valid_instance() -> None:
    fmt = {"type": "json_schema", "name": "w", "schema": WEATHER, "strict": True}
    r = body(Api().create(input="x", text={"format": fmt}))
    text = r["output"][0]["content"][0]["text"]
    Draft202012Validator(WEATHER).validate(json.loads(text))
    assert r["text"]["format"] == fmt


def test_json_object_format_is_a_json_object() -> None:
    r = body(Api().create(input="x", text={"format": {"type": "json_object"}}))
    value = json.loads(r["output"][0]["content"][0]["text"])
    assert isinstance(value, dict) and isinstance(value["answer"], str)


def test_json_schema_without_schema_is_a_400() -> None:
    answer = Api().create(input="x", text={"format": {"type": "json_schema", "name": "w"}})
    assert error_of(answer, 400)["param"] == "text.format.schema"


def test_instructions_are_echoed_and_counted() -> None:
    r = body(Api().create(input="hi", instructions="Be terse, please."))
    assert r["instructions"] == "Be terse, please."
    assert r["usage"]["input_tokens"] == prompt_tokens("Be terse, please.") + prompt_tokens("hi")


def _long_text_body() -> dict[str, Any]:
    """An input whose made-up answer is longer than 16 tokens (found deterministically)."""
    for i in range(100):
        body = {"model": "gpt-4.1-mini", "input": f"q{i}", "max_output_tokens": 16}
        req = request("POST", "/v1/responses", body)
        fp = f"{req.method} {req.path} {req.query} {req.body!r}"
        if count_tokens(made_up_text(Call(req, fp, 0))[0]) > 16:
            return body
    raise AssertionError("no long made-up text found")


def test_max_output_tokens_cuts_the_text_and_makes_it_incomplete() -> None:
    b = _long_text_body()
    api = Api()
    r = body(api.call(request("POST", "/v1/responses", b)))
    assert r["status"] == "incomplete"
    assert r["incomplete_details"] == {"reason": "max_output_tokens"}
    assert r["completed_at"] is None
    assert r["output"][0]["status"] == "incomplete"
    assert r["usage"]["output_tokens"] == 16
    assert count_tokens(r["output"][0]["content"][0]["text"]) == 16
    evs = events(Api().call(request("POST", "/v1/responses", {**b, "stream": True})))
    assert evs[-1]["type"] == "response.incomplete"
    assert evs[-1]["response"]["status"] == "incomplete"
    deltas = [e for e in evs if e["type"] == "response.output_text.delta"]
    assert len(deltas) == 16


@pytest.mark.parametrize("value", [0, 15, -1])
def test_max_output_tokens_below_16_is_a_400(value: int) -> None:
    error = error_of(Api().create(input="x", max_output_tokens=value), 400)
    assert error["param"] == "max_output_tokens"
    assert error["code"] == "integer_below_min_value"


def test_missing_model_and_bad_types_are_400s() -> None:
    api = Api()
    no_model = api.call(request("POST", "/v1/responses", {"input": "x"}))
    assert error_of(no_model, 400)["param"] == "model"
    assert error_of(api.create(input="x", stream="yes"), 400)["param"] == "stream"
    assert error_of(api.create(input=5), 400)["param"] == "input"
    assert error_of(api.create(input="x", tools={"a": 1}), 400)["param"] == "tools"


def test_a_body_that_is_not_an_object_is_a_bad_call() -> None:
    with pytest.raises(BadCall):
        Api().call(request("POST", "/v1/responses", [1, 2]))


def test_determinism_byte_identical_for_the_same_call() -> None:
    for stream in (False, True):
        a = Api().create(input="again", tools=TOOLS, stream=stream)
        b = Api().create(input="again", tools=TOOLS, stream=stream)
        assert a == b and a.frames == b.frames


def test_occurrence_changes_the_ids() -> None:
    api = Api()
    first = body(api.create(input="again"))
    second = body(api.create(input="again"))
    assert first["id"] != second["id"]
    assert len(api.state) == 2


# --- stored state -----------------------------------------------------------------------------


def test_retrieve_delete_and_then_404() -> None:
    api = Api()
    created = body(api.create(input="keep me"))
    rid = created["id"]
    assert body(api.get(f"/v1/responses/{rid}")) == created
    deleted = api.call(request("DELETE", f"/v1/responses/{rid}"))
    assert body(deleted) == {"id": rid, "object": "response.deleted", "deleted": True}
    error = error_of(api.get(f"/v1/responses/{rid}"), 404)
    assert rid in error["message"] and error["param"] is None
    error_of(api.call(request("DELETE", f"/v1/responses/{rid}")), 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/responses/resp_unknown"),
        ("DELETE", "/v1/responses/resp_unknown"),
        ("POST", "/v1/responses/resp_unknown/cancel"),
        ("GET", "/v1/responses/resp_unknown/input_items"),
    ],
)
def test_unknown_ids_are_404s_in_openai_shape(method: str, path: str) -> None:
    answer = Api().call(request(method, path))
    error = error_of(answer, 404)
    assert "resp_unknown" in error["message"]
    assert re.fullmatch(r"req_[0-9a-f]{32}", dict(answer.headers)["x-request-id"])


def test_unknown_id_stream_retrieve_is_a_404_not_a_stream() -> None:
    answer = Api().get("/v1/responses/resp_x", query=[("stream", "true")])
    assert not answer.stream
    error_of(answer, 404)


def test_store_false_keeps_nothing() -> None:
    api = Api()
    r = body(api.create(input="forget me", store=False))
    assert r["store"] is False
    assert len(api.state) == 0
    error_of(api.get(f"/v1/responses/{r['id']}"), 404)
    follow = api.create(input="next", previous_response_id=r["id"])
    assert error_of(follow, 400)["code"] == "previous_response_not_found"


def test_unknown_previous_response_id_is_a_400_naming_the_param() -> None:
    error = error_of(Api().create(input="x", previous_response_id="resp_nope"), 400)
    assert error["param"] == "previous_response_id"
    assert error["code"] == "previous_response_not_found"
    assert "resp_nope" in error["message"]


def test_previous_response_history_counts_in_usage() -> None:
    api = Api()
    first = body(api.create(input="First question here", instructions="Only for the first."))
    second = body(api.create(input="Second one", previous_response_id=first["id"]))
    history = prompt_tokens("First question here") + first["usage"]["output_tokens"]
    assert second["previous_response_id"] == first["id"]
    assert second["usage"]["input_tokens"] == history + prompt_tokens("Second one")
    third = body(api.create(input="Third", previous_response_id=second["id"]))
    history += prompt_tokens("Second one") + second["usage"]["output_tokens"]
    assert third["usage"]["input_tokens"] == history + prompt_tokens("Third")
    items = body(api.get(f"/v1/responses/{third['id']}/input_items"))["data"]
    assert [i["content"][0]["text"] for i in items] == ["Third"]


def test_input_items_normalised_with_ids() -> None:
    api = Api()
    given = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"type": "function_call_output", "call_id": "call_1", "output": "22C"},
        {"id": "msg_given", "role": "user", "content": [{"type": "input_text", "text": "c"}]},
    ]
    rid = body(api.create(input=given))["id"]
    page = body(api.get(f"/v1/responses/{rid}/input_items", query=[("order", "asc")]))
    data = page["data"]
    assert [i["type"] for i in data] == ["message", "message", "function_call_output", "message"]
    assert data[0]["content"] == [{"type": "input_text", "text": "a"}]
    assert data[1]["content"] == [{"type": "output_text", "text": "b", "annotations": []}]
    assert data[2]["id"].startswith("fco_") and data[2]["status"] == "completed"
    assert data[3]["id"] == "msg_given"
    assert all(i["status"] == "completed" for i in data)
    assert len({i["id"] for i in data}) == 4
    assert page["first_id"] == data[0]["id"] and page["last_id"] == data[-1]["id"]
    assert page["has_more"] is False and page["object"] == "list"


def test_input_items_desc_by_default_and_paged() -> None:
    api = Api()
    rid = body(api.create(input=[{"role": "user", "content": str(i)} for i in range(5)]))["id"]
    path = f"/v1/responses/{rid}/input_items"
    texts = [i["content"][0]["text"] for i in body(api.get(path))["data"]]
    assert texts == ["4", "3", "2", "1", "0"]
    first = body(api.get(path, query=[("order", "asc"), ("limit", "2")]))
    assert [i["content"][0]["text"] for i in first["data"]] == ["0", "1"]
    assert first["has_more"] is True
    rest = body(api.get(path, query=[("order", "asc"), ("after", first["last_id"])]))
    assert [i["content"][0]["text"] for i in rest["data"]] == ["2", "3", "4"]
    assert rest["has_more"] is False
    assert error_of(api.get(path, query=[("limit", "0")]), 400)["param"] == "limit"
    assert error_of(api.get(path, query=[("order", "up")]), 400)["param"] == "order"


def test_retrieve_stream_replays_events_after_n() -> None:
    api = Api()
    created = api.create(input="replay me", stream=True)
    original = events(created)
    rid = original[0]["response"]["id"]
    path = f"/v1/responses/{rid}"
    everything = api.get(path, query=[("stream", "true")])
    assert everything.stream and events(everything) == original
    later = events(api.get(path, query=[("stream", "true"), ("starting_after", "3")]))
    assert later == original[4:]
    bad = api.get(path, query=[("stream", "true"), ("starting_after", "x")])
    assert error_of(bad, 400)["param"] == "starting_after"


def test_non_streamed_response_can_be_replayed_as_a_stream() -> None:
    api = Api()
    r = body(api.create(input="no stream"))
    evs = events(api.get(f"/v1/responses/{r['id']}", query=[("stream", "true")]))
    assert evs[0]["type"] == "response.created"
    assert evs[-1]["response"] == r


def test_background_advances_one_step_per_retrieve() -> None:
    api = Api()
    created = body(api.create(input="slow job", background=True))
    assert created["status"] == "queued" and created["background"] is True
    assert created["output"] == [] and created["usage"] is None
    path = f"/v1/responses/{created['id']}"
    head = api.call(request("HEAD", path))
    assert body(head)["status"] == "queued"
    statuses = [body(api.get(path))["status"] for _ in range(3)]
    assert statuses == ["in_progress", "completed", "completed"]
    done = body(api.get(path))
    assert done["output"][0]["content"][0]["text"] and done["usage"]["output_tokens"] > 0
    cancelled = body(api.call(request("POST", path + "/cancel")))
    assert cancelled["status"] == "completed"


def test_background_cancel_then_stays_cancelled() -> None:
    api = Api()
    rid = body(api.create(input="cancel me", background=True))["id"]
    path = f"/v1/responses/{rid}"
    assert body(api.get(path))["status"] == "in_progress"
    cancelled = body(api.call(request("POST", path + "/cancel")))
    assert cancelled["status"] == "cancelled" and cancelled["output"] == []
    assert body(api.get(path))["status"] == "cancelled"
    replay = events(api.get(path, query=[("stream", "true")]))
    assert [e["type"] for e in replay] == [
        "response.created",
        "response.queued",
        "response.in_progress",
    ]


def test_cancel_of_a_foreground_response_is_a_400() -> None:
    api = Api()
    rid = body(api.create(input="quick"))["id"]
    answer = api.call(request("POST", f"/v1/responses/{rid}/cancel"))
    assert "background" in error_of(answer, 400)["message"]
    assert body(api.get(f"/v1/responses/{rid}"))["status"] == "completed"


def test_background_needs_store() -> None:
    answer = Api().create(input="x", background=True, store=False)
    assert error_of(answer, 400)["param"] == "background"


def test_background_stream_starts_queued_and_is_stored_finished() -> None:
    api = Api()
    evs = events(api.create(input="bg stream", background=True, stream=True))
    assert [e["type"] for e in evs[:3]] == [
        "response.created",
        "response.queued",
        "response.in_progress",
    ]
    assert evs[0]["response"]["status"] == "queued"
    assert evs[2]["response"]["status"] == "in_progress"
    assert evs[-1]["type"] == "response.completed"
    rid = evs[0]["response"]["id"]
    assert body(api.get(f"/v1/responses/{rid}"))["status"] == "completed"


def test_stream_retrieve_of_a_queued_background_response_finishes_it() -> None:
    api = Api()
    rid = body(api.create(input="bg", background=True))["id"]
    evs = events(api.get(f"/v1/responses/{rid}", query=[("stream", "true")]))
    assert evs[-1]["type"] == "response.completed"
    assert body(api.get(f"/v1/responses/{rid}"))["status"] == "completed"


def test_state_is_a_bounded_lru() -> None:
    def stored(rid: str) -> Stored:
        response = {"id": rid, "status": "completed", "usage": None}
        return Stored(response, (), 0, False, "completed")

    state = ResponsesState(capacity=2)
    state.put(stored("a"))
    state.put(stored("b"))
    assert state.get("a") is not None  # a is now the most recent
    state.put(stored("c"))
    assert state.get("b") is None
    assert state.get("a") is not None and state.get("c") is not None
    assert len(state) == 2
    with pytest.raises(ValueError):
        ResponsesState(capacity=0)


def test_stored_responses_are_bounded_in_bytes_too() -> None:
    from replay.providers.responses_state import ResponsesState, Stored

    state = ResponsesState(capacity=100, budget=10_000)
    big = {"id": "x", "status": "completed", "output": [], "blob": "a" * 3_000}
    for i in range(10):
        state.put(Stored({**big, "id": f"resp_{i}"}, (), 0, False, "completed"))
    assert 1 <= len(state) <= 3
    assert state.get("resp_9") is not None and state.get("resp_0") is None
    state.delete("resp_9")
    assert state.get("resp_9") is None
