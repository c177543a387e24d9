"""OpenAI-shaped responders without an SDK: routes, edge cases, refusals, determinism."""

from __future__ import annotations

import json
from typing import Any

import pytest

from replay.models import Request
from replay.providers import openai_api
from replay.providers.base import TOOLS_FORCED, Answer, BadCall, Call, Reply, ToolCall
from replay.providers.embeddings import vector
from replay.providers.text import count_tokens

USER = [{"role": "user", "content": "Hello there"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def request(
    path: str, body: object = None, method: str = "POST", raw: bytes | None = None
) -> Request:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return Request(method, "https", "api.example.com", 443, path, (), (), data)


def match(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """The name of the responder `openai_api.ROUTES` send `method path` to, and the params."""
    for route in openai_api.ROUTES:
        if route.method == method and (m := route.path.fullmatch(path)):
            params = {k: v for k, v in m.groupdict().items() if v is not None}
            return route.respond.__name__, params
    return None


def answer(
    path: str,
    body: object = None,
    *,
    method: str = "POST",
    occurrence: int = 0,
    reply: Reply | None = None,
    raw: bytes | None = None,
    tools: str = "auto",
) -> Answer:
    req = request(path, body, method, raw)
    found = match(method, path)
    assert found is not None, path
    route = next(r for r in openai_api.ROUTES if r.respond.__name__ == found[0])
    return route.respond(
        Call(req, "a" * 64, occurrence, reply, params=found[1], synthetic_tools=tools)
    )


def payloads(a: Answer) -> list[Any]:
    assert a.frames[-1] == b"data: [DONE]\n\n"
    return [json.loads(f.removeprefix(b"data: ")) for f in a.frames[:-1]]


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": USER, **fields}


# -- routes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "responder", "params"),
    [
        ("POST", "/v1/chat/completions", "chat_completions", {}),
        ("POST", "/chat/completions", "chat_completions", {}),
        ("POST", "/openai/v1/chat/completions", "chat_completions", {}),
        ("POST", "/v1beta/openai/chat/completions", "chat_completions", {}),
        ("POST", "/api/v1/chat/completions", "chat_completions", {}),
        (
            "POST",
            "/openai/deployments/dep-1/chat/completions",
            "chat_completions",
            {"model": "dep-1"},
        ),
        ("POST", "/v1/completions", "completions", {}),
        ("POST", "/openai/deployments/dep-1/completions", "completions", {"model": "dep-1"}),
        ("POST", "/completions", "completions", {}),
        ("POST", "/v1/embeddings", "embeddings", {}),
        ("POST", "/openai/deployments/emb/embeddings", "embeddings", {"model": "emb"}),
        ("POST", "/v1beta/openai/embeddings", "embeddings", {}),
        ("GET", "/v1/models", "list_models", {}),
        ("GET", "/models", "list_models", {}),
        ("GET", "/openai/models", "list_models", {}),
        ("GET", "/openai/v1/models", "list_models", {}),
        ("GET", "/v1beta/openai/models", "list_models", {}),
        ("GET", "/v1/models/gpt-4o", "retrieve_model", {"id": "gpt-4o"}),
        ("GET", "/v1/models/org/model", "retrieve_model", {"id": "org/model"}),
        ("GET", "/openai/models/gpt-4o", "retrieve_model", {"id": "gpt-4o"}),
    ],
)
def test_routes(method: str, path: str, responder: str, params: dict[str, str]) -> None:
    assert match(method, path) == (responder, params)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1beta/models"),  # Gemini's own model list
        ("GET", "/v1beta/models/gemini-2.5-flash"),
        ("POST", "/v1/models"),
        ("GET", "/v1/chat/completions"),
        ("POST", "/v1/responses"),
        ("POST", "/v1/chat/completions/extra"),
    ],
)
def test_paths_not_answered(method: str, path: str) -> None:
    assert match(method, path) is None


def test_azure_deployment_is_the_model_when_the_body_names_none() -> None:
    body = {"input": "hi"}
    out = json.loads(answer("/openai/deployments/text-embedding-3-large/embeddings", body).body)
    assert out["model"] == "text-embedding-3-large"
    assert len(out["data"][0]["embedding"]) == 3072
    spaced = answer("/openai/deployments/my%20dep/embeddings", body)
    assert json.loads(spaced.body)["model"] == "my dep"
    named = answer("/openai/deployments/dep/chat/completions", chat(model="gpt-4.1"))
    assert json.loads(named.body)["model"] == "gpt-4.1"


# -- chat edge cases ----------------------------------------------------------------------


def test_stop_sequence_ends_the_text_before_it() -> None:
    full = json.loads(answer("/v1/chat/completions", chat()).body)["choices"][0]["message"]
    stop = full["content"].split(" ")[2]
    cut = json.loads(answer("/v1/chat/completions", chat(stop=[stop])).body)["choices"][0]
    assert full["content"].startswith(cut["message"]["content"])
    assert stop not in cut["message"]["content"]
    assert cut["finish_reason"] == "stop"


def test_json_object_response_format() -> None:
    body = chat(response_format={"type": "json_object"})
    content = json.loads(answer("/v1/chat/completions", body).body)["choices"][0]["message"][
        "content"
    ]
    assert isinstance(json.loads(content), dict)


def test_json_schema_without_a_schema_gives_an_object() -> None:
    body = chat(response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    content = json.loads(answer("/v1/chat/completions", body).body)["choices"][0]["message"][
        "content"
    ]
    assert isinstance(json.loads(content), dict)


def test_tool_choice_auto_calls_a_tool_then_answers_after_its_result() -> None:
    for choice in ("auto", None):
        out = json.loads(
            answer("/v1/chat/completions", chat(tools=[WEATHER], tool_choice=choice)).body
        )
        assert out["choices"][0]["finish_reason"] == "tool_calls"
        message = out["choices"][0]["message"]
        (call,) = message["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        result = {"role": "tool", "tool_call_id": call["id"], "content": "9C"}
        history = [*USER, message, result]
        then = json.loads(
            answer("/v1/chat/completions", chat(tools=[WEATHER], messages=history)).body
        )
        assert then["choices"][0]["finish_reason"] == "stop"
        assert "tool_calls" not in then["choices"][0]["message"]


def test_tool_choice_none_or_option_forced_answer_text() -> None:
    for choice, tools in (("none", "auto"), ("auto", TOOLS_FORCED), (None, TOOLS_FORCED)):
        body = chat(tools=[WEATHER], tool_choice=choice)
        out = json.loads(answer("/v1/chat/completions", body, tools=tools).body)
        assert out["choices"][0]["finish_reason"] == "stop"
        assert "tool_calls" not in out["choices"][0]["message"]


def test_parallel_tool_calls_true_calls_two_distinct_tools() -> None:
    other = {"type": "function", "function": {"name": "other", "parameters": {"type": "object"}}}
    body = chat(tools=[WEATHER, other], parallel_tool_calls=True)
    message = json.loads(answer("/v1/chat/completions", body).body)["choices"][0]["message"]
    names = [c["function"]["name"] for c in message["tool_calls"]]
    assert sorted(names) == ["get_weather", "other"]
    assert len({c["id"] for c in message["tool_calls"]}) == 2


def test_allowed_tools_required_calls_one_of_them() -> None:
    other = {"type": "function", "function": {"name": "other"}}
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "other"}}],
        },
    }
    out = json.loads(
        answer("/v1/chat/completions", chat(tools=[WEATHER, other], tool_choice=choice)).body
    )
    calls = out["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["other"]


def test_custom_tools_are_never_called() -> None:
    custom = {"type": "custom", "custom": {"name": "grammar"}}
    body = chat(tools=[custom, WEATHER], tool_choice="required")
    calls = json.loads(answer("/v1/chat/completions", body).body)["choices"][0]["message"][
        "tool_calls"
    ]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]


def test_n_forced_tools_get_their_own_ids() -> None:
    body = chat(tools=[WEATHER], tool_choice="required", n=2)
    choices = json.loads(answer("/v1/chat/completions", body).body)["choices"]
    ids = [c["message"]["tool_calls"][0]["id"] for c in choices]
    assert ids[0] != ids[1]


def test_canned_text_is_not_cut_by_max_tokens() -> None:
    text = "A canned answer that is longer than two tokens."
    out = json.loads(answer("/v1/chat/completions", chat(max_tokens=2), reply=Reply(text)).body)
    assert out["choices"][0]["message"]["content"] == text
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"]["completion_tokens"] == count_tokens(text)


def test_canned_tool_call_for_a_tool_not_offered_gets_empty_object_arguments() -> None:
    reply = Reply(None, (ToolCall("lookup"),))
    message = json.loads(answer("/v1/chat/completions", chat(), reply=reply).body)["choices"][0][
        "message"
    ]
    assert message["content"] is None
    assert message["tool_calls"][0]["function"] == {"name": "lookup", "arguments": "{}"}


def test_stream_choice_indices_first_appear_in_order() -> None:
    frames = payloads(answer("/v1/chat/completions", chat(n=3, stream=True)))
    first_seen: list[int] = []
    for p in frames:
        index = p["choices"][0]["index"]
        if index not in first_seen:
            first_seen.append(index)
    assert first_seen == [0, 1, 2]
    finishes = [p["choices"][0]["index"] for p in frames if p["choices"][0]["finish_reason"]]
    assert sorted(finishes) == [0, 1, 2]


def test_streamed_tool_call_deltas() -> None:
    frames = payloads(
        answer("/v1/chat/completions", chat(tools=[WEATHER], tool_choice="required", stream=True))
    )
    deltas = [p["choices"][0]["delta"] for p in frames]
    assert deltas[0] == {"role": "assistant", "content": None, "refusal": None}
    first = deltas[1]["tool_calls"][0]
    assert first["index"] == 0 and first["type"] == "function" and first["id"].startswith("call_")
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    parts = [d["tool_calls"][0]["function"]["arguments"] for d in deltas[2:-1]]
    assert len(parts) > 1 and json.loads("".join(parts))["city"]
    assert deltas[-1] == {} and frames[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_include_usage_is_ignored_without_stream() -> None:
    out = json.loads(
        answer("/v1/chat/completions", chat(stream_options={"include_usage": True})).body
    )
    assert out["object"] == "chat.completion" and out["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize(
    "body",
    [
        [1, 2],
        "text",
        {"model": "gpt-4o-mini"},
        chat(messages="hi"),
        chat(messages=[]),
        chat(messages=["hi"]),
        {"messages": USER},
        chat(model=5),
        chat(n=0),
        chat(n=129),
        chat(n="2"),
        chat(n=True),
        chat(stream="yes"),
        chat(stream_options=True),
        chat(max_tokens=0),
        chat(max_completion_tokens="9"),
        chat(stop=5),
        chat(stop=["a", "b", "c", "d", "e"]),
        chat(tools={"x": 1}),
        chat(tools=[{"type": "function", "function": {}}]),
        chat(tools=[{"type": "function", "function": {"name": "f", "parameters": []}}]),
        chat(tool_choice="required"),
        chat(tools=[WEATHER], tool_choice="sometimes"),
        chat(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "absent"}}),
        chat(
            tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "absent"}}, n=2
        ),
        chat(response_format={"type": "yaml"}),
        chat(response_format={"type": "json_schema", "json_schema": {"schema": "x"}}),
        chat(
            response_format={"type": "json_schema", "json_schema": {"schema": {"type": "nothing"}}}
        ),
    ],
)
def test_chat_bad_calls(body: object) -> None:
    with pytest.raises(BadCall):
        answer("/v1/chat/completions", body)


def test_body_that_is_not_json_is_a_bad_call() -> None:
    with pytest.raises(BadCall):
        answer("/v1/chat/completions", raw=b"{not json")


def test_absent_tool_is_refused_even_with_a_canned_reply() -> None:
    body = chat(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "absent"}})
    with pytest.raises(BadCall):
        answer("/v1/chat/completions", body, reply=Reply("hi"))


# -- legacy completions -------------------------------------------------------------------


def test_legacy_default_max_tokens_is_16() -> None:
    choice = json.loads(answer("/v1/completions", {"model": "m", "prompt": "Hi"}).body)["choices"][
        0
    ]
    assert choice["finish_reason"] == "length" and count_tokens(choice["text"]) == 16


def test_legacy_token_array_prompts() -> None:
    out = json.loads(answer("/v1/completions", {"model": "m", "prompt": [[1, 2, 3], [4, 5]]}).body)
    assert len(out["choices"]) == 2 and out["usage"]["prompt_tokens"] == 5
    one = json.loads(answer("/v1/completions", {"model": "m", "prompt": [1, 2, 3]}).body)
    assert len(one["choices"]) == 1 and one["usage"]["prompt_tokens"] == 3


def test_legacy_stream_without_usage_has_no_usage_fields() -> None:
    frames = payloads(
        answer("/v1/completions", {"model": "m", "prompt": "Hi", "n": 2, "stream": True})
    )
    assert all("usage" not in p for p in frames)
    texts = [
        "".join(p["choices"][0]["text"] for p in frames if p["choices"][0]["index"] == i)
        for i in (0, 1)
    ]
    assert texts[0] != texts[1] and all(count_tokens(t) == 16 for t in texts)


def test_legacy_canned_reply() -> None:
    out = json.loads(
        answer("/v1/completions", {"model": "m", "prompt": "Hi"}, reply=Reply("Yes.")).body
    )
    assert out["choices"][0]["text"] == "Yes."


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m"},
        {"model": "m", "prompt": []},
        {"model": "m", "prompt": ["a", 1]},
        {"model": "m", "prompt": [[]]},
        {"model": "m", "prompt": 7},
        {"model": "m", "prompt": ["a", "b"], "n": 65},
        {"prompt": "Hi"},
    ],
)
def test_legacy_bad_calls(body: object) -> None:
    with pytest.raises(BadCall):
        answer("/v1/completions", body)


# -- embeddings ---------------------------------------------------------------------------


def test_token_array_inputs_are_embedded_as_their_json_text() -> None:
    body = {
        "model": "text-embedding-3-small",
        "input": [[1, 2], [3]],
        "encoding_format": "float",
        "dimensions": 4,
    }
    out = json.loads(answer("/v1/embeddings", body).body)
    assert out["data"][0]["embedding"] == vector("text-embedding-3-small", "[1,2]", 4)
    assert out["data"][1]["embedding"] == vector("text-embedding-3-small", "[3]", 4)
    assert out["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    single = json.loads(answer("/v1/embeddings", {**body, "input": [1, 2]}).body)
    assert single["data"][0]["embedding"] == out["data"][0]["embedding"]


def test_embeddings_default_to_float_when_not_asked() -> None:
    out = json.loads(answer("/v1/embeddings", {"model": "nomic-embed-text", "input": "x"}).body)
    assert isinstance(out["data"][0]["embedding"], list) and len(out["data"][0]["embedding"]) == 768


@pytest.mark.parametrize(
    "body",
    [
        {"model": "e", "input": ""},
        {"model": "e", "input": []},
        {"model": "e", "input": [""]},
        {"model": "e", "input": ["a", 1]},
        {"model": "e", "input": [[]]},
        {"model": "e", "input": None},
        {"model": "e", "input": {"text": "a"}},
        {"model": "e", "input": ["a"] * 2049},
        {"model": "e", "input": "a", "encoding_format": "hex"},
        {"model": "e", "input": "a", "dimensions": 0},
        {"model": "e", "input": "a", "dimensions": "8"},
        {"input": "a"},
    ],
)
def test_embeddings_bad_calls(body: object) -> None:
    with pytest.raises(BadCall):
        answer("/v1/embeddings", body)


# -- models -------------------------------------------------------------------------------


def test_retrieve_decodes_the_id() -> None:
    out = json.loads(answer("/v1/models/org%2Fmodel%3Av1", method="GET").body)
    assert out == {
        "id": "org/model:v1",
        "object": "model",
        "created": 1767225600,
        "owned_by": "system",
    }


def test_every_answer_carries_a_request_id() -> None:
    for a in (
        answer("/v1/models", method="GET"),
        answer("/v1/embeddings", {"model": "e", "input": "a"}),
        answer("/v1/completions", {"model": "m", "prompt": "a", "stream": True}),
    ):
        names = [k for k, _ in a.headers]
        assert names.count("x-request-id") == 1 and names.count("content-type") == 1


# -- determinism --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", chat(n=2, stream=True, stream_options={"include_usage": True})),
        ("/v1/chat/completions", chat(tools=[WEATHER], tool_choice="required")),
        ("/v1/completions", {"model": "m", "prompt": ["a", "b"], "stream": True}),
    ],
)
def test_same_call_same_bytes_other_occurrence_other_answer(path: str, body: object) -> None:
    a, b = answer(path, body), answer(path, body)
    assert a == b
    other = answer(path, body, occurrence=1)
    assert other.body != a.body


def test_embeddings_do_not_depend_on_the_occurrence() -> None:
    body = {"model": "e", "input": "same"}
    assert answer("/v1/embeddings", body).body == answer("/v1/embeddings", body, occurrence=3).body
