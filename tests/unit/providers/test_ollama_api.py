"""Ollama's native responders, called directly: shapes, defaults, limits and refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from replay.models import Request
from replay.providers import ollama_api, router
from replay.providers.base import CREATED, NDJSON_TYPE, Answer, BadCall, Call, Reply, ToolCall
from replay.providers.embeddings import vector

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


def request(path: str, body: object = None, method: str = "POST") -> Request:
    raw = b"" if body is None else json.dumps(body).encode()
    return Request(method, "http", "127.0.0.1", 11434, path, (), (), raw)


def answer(
    path: str,
    body: object = None,
    method: str = "POST",
    reply: Reply | None = None,
    occurrence: int = 0,
    tools: str = "auto",
) -> Answer:
    req = request(path, body, method)
    found = router.find(req)
    assert found is not None, path
    route, params = found
    assert route.provider == "ollama"
    return route.respond(
        Call(req, "a" * 64, occurrence, reply, params=params, synthetic_tools=tools)
    )


def lines(ans: Answer) -> list[dict[str, Any]]:
    assert ans.stream and ans.headers == (("content-type", NDJSON_TYPE),)
    for frame in ans.frames:  # one JSON object per frame, one line each, never blank
        assert frame.endswith(b"\n") and frame.count(b"\n") == 1 and frame.strip()
    return [json.loads(f) for f in ans.frames]


def one(ans: Answer) -> dict[str, Any]:
    assert not ans.stream and ans.headers[0] == ("content-type", "application/json")
    result: dict[str, Any] = json.loads(ans.body)
    return result


def chat_body(**extra: object) -> dict[str, object]:
    return {"model": "llama3.2", "messages": [{"role": "user", "content": "Hello there"}], **extra}


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/chat"),
        ("POST", "/api/generate"),
        ("POST", "/api/embed"),
        ("POST", "/api/embeddings"),
        ("GET", "/api/tags"),
        ("POST", "/api/show"),
        ("GET", "/api/version"),
        ("GET", "/api/ps"),
        ("GET", "/"),
        ("HEAD", "/"),
    ],
)
def test_native_paths_route_here(method: str, path: str) -> None:
    found = router.find(request(path, None, method))
    assert found is not None and found[0].provider == "ollama"


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/embeddings", "/v1/models", "/api/chat/x", "/api"]
)
def test_other_paths_are_not_claimed(path: str) -> None:
    for method in ("GET", "POST"):
        assert not any(r.method == method and r.path.fullmatch(path) for r in ollama_api.ROUTES), (
            path
        )


def test_chat_streams_when_stream_is_absent() -> None:
    parts = lines(answer("/api/chat", chat_body()))
    *pieces, final = parts
    assert pieces and all(p["done"] is False for p in pieces)
    assert all(p["message"]["role"] == "assistant" for p in parts)
    assert final["done"] is True and final["done_reason"] == "stop"
    assert final["message"] == {"role": "assistant", "content": ""}
    assert final["eval_count"] == len(pieces)
    assert final["prompt_eval_count"] > 0
    assert list(final)[:5] == ["model", "created_at", "message", "done_reason", "done"]
    text = "".join(p["message"]["content"] for p in pieces)
    whole = one(answer("/api/chat", chat_body(stream=False)))
    assert whole["message"]["content"] == text and text.strip()
    assert whole["eval_count"] == final["eval_count"]


def test_times_are_nanoseconds_and_consistent() -> None:
    parts = lines(answer("/api/chat", chat_body()))
    final = parts[-1]
    for key in ("load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(final[key], int) and final[key] > 0
    assert final["total_duration"] > (
        final["load_duration"] + final["prompt_eval_duration"] + final["eval_duration"]
    )
    rate = final["eval_count"] / (final["eval_duration"] / 1e9)
    assert 10 < rate < 100  # tokens a second: plausible for a local model
    times = [parse_time(p["created_at"]) for p in parts]
    assert times == sorted(times) and len(set(times)) == len(times)
    start = datetime.fromtimestamp(CREATED, UTC)
    elapsed = times[-1] - start
    assert round(elapsed.total_seconds() * 1e6) == final["total_duration"] // 1000


def test_created_at_is_written_as_go_writes_rfc3339_nano() -> None:
    assert ollama_api._rfc3339(0) == "2026-01-01T00:00:00Z"
    assert ollama_api._rfc3339(1_500_000_000) == "2026-01-01T00:00:01.5Z"
    assert ollama_api._rfc3339(123) == "2026-01-01T00:00:00.000000123Z"
    assert ollama_api._rfc3339(86_400 * 10**9 + 10**7) == "2026-01-02T00:00:00.01Z"


def test_num_predict_cuts_with_length() -> None:
    parts = lines(answer("/api/chat", chat_body(options={"num_predict": 3})))
    assert len(parts) == 4 and parts[-1]["done_reason"] == "length"
    assert parts[-1]["eval_count"] == 3
    unlimited = lines(answer("/api/chat", chat_body(options={"num_predict": -1})))
    assert unlimited[-1]["done_reason"] == "stop" and len(unlimited) > 4
    with pytest.raises(BadCall):
        answer("/api/chat", chat_body(options={"num_predict": "ten"}))


def test_think_streams_thinking_first() -> None:
    parts = lines(answer("/api/chat", chat_body(think=True)))
    thinking = [p for p in parts if p["message"].get("thinking")]
    content = [p for p in parts if p["message"]["content"]]
    assert thinking and content
    assert parts.index(thinking[-1]) < parts.index(content[0])
    assert all(p["message"]["content"] == "" for p in thinking)
    assert parts[-1]["eval_count"] == len(thinking) + len(content)
    whole = one(answer("/api/chat", chat_body(think="high", stream=False)))
    assert whole["message"]["thinking"] == "".join(p["message"]["thinking"] for p in thinking)
    assert (
        "thinking" not in one(answer("/api/chat", chat_body(think=False, stream=False)))["message"]
    )
    with pytest.raises(BadCall):
        answer("/api/chat", chat_body(think="very"))


def test_num_predict_counts_thinking_too() -> None:
    whole = one(
        answer("/api/chat", chat_body(think=True, stream=False, options={"num_predict": 2}))
    )
    assert whole["done_reason"] == "length" and whole["eval_count"] == 2
    assert whole["message"]["content"] == "" and whole["message"]["thinking"]


def test_format_json_and_schema() -> None:
    whole = one(answer("/api/chat", chat_body(format="json", stream=False)))
    assert isinstance(json.loads(whole["message"]["content"]), dict)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    parts = lines(answer("/api/chat", chat_body(format=schema)))
    value = json.loads("".join(p["message"]["content"] for p in parts))
    jsonschema.validate(value, schema)
    gen = one(
        answer("/api/generate", {"model": "m", "prompt": "p", "format": schema, "stream": False})
    )
    jsonschema.validate(json.loads(gen["response"]), schema)
    with pytest.raises(BadCall):
        answer("/api/chat", chat_body(format="xml"))


def test_canned_tool_calls_have_object_arguments() -> None:
    reply = Reply("Checking.", (ToolCall("get_weather"), ToolCall("other", '{"a": 1}')))
    body = chat_body(tools=[WEATHER], stream=False)
    message = one(answer("/api/chat", body, reply=reply))["message"]
    first, second = message["tool_calls"]
    assert message["content"] == "Checking."
    assert first["id"].startswith("call_") and first["function"]["index"] == 0
    assert first["function"]["name"] == "get_weather"
    jsonschema.validate(first["function"]["arguments"], WEATHER["function"]["parameters"])  # type: ignore[index]
    assert second["function"] == {"index": 1, "name": "other", "arguments": {"a": 1}}
    parts = lines(answer("/api/chat", {**body, "stream": True}, reply=reply))
    with_calls = [p for p in parts if "tool_calls" in p["message"]]
    assert len(with_calls) == 1 and with_calls[0]["done"] is False
    assert with_calls[0]["message"]["tool_calls"] == message["tool_calls"]
    assert parts[-1]["done_reason"] == "stop"
    with pytest.raises(BadCall):
        answer("/api/chat", body, reply=Reply(None, (ToolCall("x", [1, 2]),)))


def test_offered_tools_get_one_call_then_text_after_the_tool_result() -> None:
    message = one(answer("/api/chat", chat_body(tools=[WEATHER], stream=False)))["message"]
    (call,) = message["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert isinstance(call["function"]["arguments"]["city"], str)
    history = [
        {"role": "user", "content": "Hello there"},
        message,
        {"role": "tool", "content": "9C", "tool_name": "get_weather"},
    ]
    then = one(answer("/api/chat", chat_body(tools=[WEATHER], stream=False, messages=history)))
    assert then["message"]["content"] and "tool_calls" not in then["message"]


def test_with_option_forced_tools_get_text() -> None:
    body = chat_body(tools=[WEATHER], stream=False)
    message = one(answer("/api/chat", body, tools="forced"))["message"]
    assert message["content"] and "tool_calls" not in message


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/api/chat", {"model": "m", "messages": []}, "load"),
        ("/api/chat", {"model": "m", "messages": [], "keep_alive": 0}, "unload"),
        ("/api/generate", {"model": "m"}, "load"),
        ("/api/generate", {"model": "m", "prompt": "", "keep_alive": "0s"}, "unload"),
    ],
)
def test_empty_requests_load_or_unload(path: str, body: dict[str, object], reason: str) -> None:
    obj = one(answer(path, body))  # one object even though a stream is the default
    assert obj["done"] is True and obj["done_reason"] == reason and obj["model"] == "m"
    assert "eval_count" not in obj
    if path == "/api/chat":
        assert obj["message"] == {"role": "assistant", "content": ""}
    else:
        assert obj["response"] == ""


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", {"messages": [{"role": "user", "content": "x"}]}),
        ("/api/generate", {"prompt": "x", "model": ""}),
        ("/api/embed", {"input": "x"}),
        ("/api/embeddings", {"prompt": "x"}),
        ("/api/show", {}),
        ("/api/chat", {"model": "m", "messages": "hello"}),
        ("/api/chat", {**chat_body(), "stream": "yes"}),
        ("/api/generate", {"model": "m", "prompt": 5}),
        ("/api/embed", {"model": "m", "input": [1, 2]}),
        ("/api/embed", {"model": "m", "input": "x", "dimensions": -3}),
        ("/api/chat", [1, 2]),
    ],
)
def test_bad_requests_are_refused(path: str, body: object) -> None:
    with pytest.raises(BadCall):
        answer(path, body)


def test_generate_stream_and_context() -> None:
    body = {"model": "llama3.2", "prompt": "Why is the sky blue?", "system": "Be brief."}
    parts = lines(answer("/api/generate", body))
    *pieces, final = parts
    assert all(set(p) == {"model", "created_at", "response", "done"} for p in pieces)
    assert final["response"] == "" and final["done"] is True and final["done_reason"] == "stop"
    assert final["eval_count"] == len(pieces)
    context = final["context"]
    assert len(context) == final["prompt_eval_count"] + final["eval_count"]
    assert all(isinstance(t, int) and 0 <= t < 128_256 for t in context)
    whole = one(answer("/api/generate", {**body, "stream": False}))
    assert whole["response"] == "".join(p["response"] for p in pieces)
    assert whole["context"] == context
    assert "context" not in one(answer("/api/generate", {**body, "stream": False, "raw": True}))


def test_generate_ignores_canned_tool_calls_and_thinks() -> None:
    reply = Reply("Canned.", (ToolCall("x", "not an object"),))
    body = {"model": "m", "prompt": "p", "stream": False, "think": True}
    whole = one(answer("/api/generate", body, reply=reply))
    assert whole["response"] == "Canned." and whole["thinking"]


def test_images_count_one_prompt_token_each() -> None:
    image = "iVBORw0KGgo" + "A1b2C3d4" * 500
    plain = {"model": "m", "prompt": "Describe", "stream": False}
    with_image = {**plain, "images": [image, image]}
    base = one(answer("/api/generate", plain))["prompt_eval_count"]
    assert one(answer("/api/generate", with_image))["prompt_eval_count"] == base + 2
    messages = [{"role": "user", "content": "Describe", "images": [image]}]
    counted = one(answer("/api/chat", {"model": "m", "messages": messages, "stream": False}))
    assert counted["prompt_eval_count"] < 10


def test_embed_vectors_depend_on_model_and_text_only() -> None:
    single = one(answer("/api/embed", {"model": "nomic-embed-text", "input": "b"}))
    batch = one(
        answer("/api/embed", {"model": "nomic-embed-text", "input": ["a", "b"]}, occurrence=3)
    )
    assert len(batch["embeddings"]) == 2 and len(batch["embeddings"][0]) == 768
    assert batch["embeddings"][1] == single["embeddings"][0] == vector("nomic-embed-text", "b", 768)
    assert batch["prompt_eval_count"] == 2 and batch["total_duration"] > batch["load_duration"] > 0
    small = one(answer("/api/embed", {"model": "nomic-embed-text", "input": "b", "dimensions": 64}))
    assert len(small["embeddings"][0]) == 64
    unset = one(answer("/api/embed", {"model": "nomic-embed-text", "input": "b", "dimensions": 0}))
    assert len(unset["embeddings"][0]) == 768
    assert one(answer("/api/embed", {"model": "x", "input": []})) == {
        "model": "x",
        "embeddings": [],
    }


def test_legacy_embeddings() -> None:
    obj = one(answer("/api/embeddings", {"model": "nomic-embed-text", "prompt": "hello"}))
    assert obj == {"embedding": vector("nomic-embed-text", "hello", 768)}
    assert one(answer("/api/embeddings", {"model": "m", "prompt": ""})) == {"embedding": []}


def test_tags_ps_version() -> None:
    models = one(answer("/api/tags", method="GET"))["models"]
    names = [m["name"] for m in models]
    assert names == ["llama3.2:latest", "qwen3:8b", "nomic-embed-text:latest"]
    assert all(len(m["digest"]) == 64 and m["details"]["format"] == "gguf" for m in models)
    running = one(answer("/api/ps", method="GET"))["models"]
    assert [m["name"] for m in running] == names
    assert all(m["size_vram"] == m["size"] and m["context_length"] > 0 for m in running)
    assert parse_time(running[0]["expires_at"]) > datetime.fromtimestamp(CREATED, UTC)
    assert one(answer("/api/version", method="GET")) == {"version": "0.12.6"}


def test_show_any_model() -> None:
    chat_model = one(answer("/api/show", {"model": "llama3.2"}))
    assert chat_model["capabilities"] == ["completion", "tools"]
    assert chat_model["model_info"]["general.architecture"] == "llama"
    assert chat_model["model_info"]["llama.context_length"] == 131072
    for key in ("license", "modelfile", "parameters", "template", "modified_at"):
        assert isinstance(chat_model[key], str) and chat_model[key]
    embedder = one(answer("/api/show", {"name": "mxbai-embed-large"}))
    assert embedder["capabilities"] == ["embedding"]
    made_up = one(answer("/api/show", {"model": "mistral:14b"}))
    assert made_up["details"]["parameter_size"] == "14B"
    assert made_up["details"]["family"] == "mistral"
    assert made_up["model_info"]["general.parameter_count"] == 14_000_000_000


def test_root_answers_plain_text_and_head_has_no_body() -> None:
    got = answer("/", method="GET")
    assert got.status == 200 and got.body == b"Ollama is running"
    assert got.headers[0][1].startswith("text/plain")
    head = answer("/", method="HEAD")
    assert head.status == 200 and head.body == b"" and head.headers == got.headers


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", chat_body(think=True)),
        ("/api/generate", {"model": "m", "prompt": "p", "stream": False}),
        ("/api/embed", {"model": "m", "input": ["a", "b"]}),
    ],
)
def test_same_call_same_bytes(path: str, body: dict[str, object]) -> None:
    first, again = answer(path, body), answer(path, body)
    assert first == again
    if path != "/api/embed":  # vectors depend on the text only, everything else on the call
        assert answer(path, body, occurrence=1).frames != first.frames
