"""Gemini responders through the router, on hand-built requests (PROTOCOLS.md §6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from replay.models import Request
from replay.providers import router
from replay.providers.base import TOOLS_AUTO, TOOLS_FORCED, Answer, BadCall, Call, Reply, ToolCall
from replay.providers.text import count_tokens

DEV = "/v1beta/models/gemini-2.5-flash"
VERTEX = "/v1beta1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash"
CONTENTS = [{"role": "user", "parts": [{"text": "Tell me something."}]}]


def request(
    path: str, body: object, query: tuple[tuple[str, str], ...] = (), host: str = "example.test"
) -> Request:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Request("POST", "https", host, 443, path, query, (), raw)


def answer(
    path: str,
    body: object,
    query: tuple[tuple[str, str], ...] = (),
    reply: Reply | None = None,
    fingerprint: str = "a" * 64,
    occurrence: int = 0,
    tools: str = TOOLS_AUTO,
) -> Answer:
    req = request(path, body, query)
    found = router.find(req)
    assert found is not None, path
    route, params = found
    assert route.provider == "gemini"
    return route.respond(
        Call(req, fingerprint, occurrence, reply, params=params, synthetic_tools=tools)
    )


def body_of(a: Answer) -> Any:
    assert a.status == 200
    assert dict(a.headers)["content-type"] == "application/json"
    return json.loads(a.body)


def sse_chunks(a: Answer) -> list[Any]:
    assert a.stream
    assert dict(a.headers)["content-type"].startswith("text/event-stream")
    out = []
    for frame in a.frames:
        assert frame.startswith(b"data: ") and frame.endswith(b"\n\n")
        assert b"event:" not in frame and b"[DONE]" not in frame
        out.append(json.loads(frame[len(b"data: ") :]))
    return out


def text_of(response: Any, index: int = 0) -> str:
    parts = response["candidates"][index]["content"]["parts"]
    return "".join(p.get("text", "") for p in parts)


# --- routing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/models/gemini-2.5-flash:generateContent", "gemini-2.5-flash"),
        ("/v1beta/models/gemini-2.0-flash-001:generateContent", "gemini-2.0-flash-001"),
        (VERTEX + ":generateContent", "gemini-2.5-flash"),
        ("/v1/publishers/google/models/gemini-2.5-pro:generateContent", "gemini-2.5-pro"),
        ("/v1beta/tunedModels/my-model-7:generateContent", "my-model-7"),
        ("/v1/projects/p/locations/l/endpoints/123:generateContent", "123"),
    ],
)
def test_generate_paths_put_the_model_in_params(path: str, model: str) -> None:
    found = router.find(request(path, {"contents": CONTENTS}))
    assert found is not None
    route, params = found
    assert route.provider == "gemini"
    assert params["model"] == model


@pytest.mark.parametrize(
    "path",
    [
        "/v1beta/openai/chat/completions",
        "/v1beta/models/gemini-2.5-flash:unknownMethod",
        "/models/gemini-2.5-flash:generateContent",
        "/v1beta/models/gemini-2.5-flash:generateContent/extra",
    ],
)
def test_other_paths_are_not_gemini_native(path: str) -> None:
    found = router.find(request(path, {}))
    assert found is None or found[0].provider != "gemini"


def test_vertex_path_answers_with_the_same_body_as_the_developer_api() -> None:
    dev = answer(DEV + ":generateContent", {"contents": CONTENTS})
    vertex = answer(VERTEX + ":generateContent", {"contents": CONTENTS})
    assert dev.body == vertex.body


# --- generateContent -----------------------------------------------------------------------


def test_text_response_shape_and_usage() -> None:
    res = body_of(answer(DEV + ":generateContent", {"contents": CONTENTS}))
    (candidate,) = res["candidates"]
    assert candidate["content"]["role"] == "model"
    assert candidate["finishReason"] == "STOP"
    text = text_of(res)
    assert text
    usage = res["usageMetadata"]
    assert usage["candidatesTokenCount"] == count_tokens(text)
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert usage["promptTokensDetails"] == [
        {"modality": "TEXT", "tokenCount": usage["promptTokenCount"]}
    ]
    assert res["modelVersion"] == "gemini-2.5-flash"
    assert isinstance(res["responseId"], str) and res["responseId"]


def test_prompt_tokens_count_system_instruction_and_tools() -> None:
    plain = body_of(answer(DEV + ":generateContent", {"contents": CONTENTS}))
    system = {"parts": [{"text": "Answer in one short sentence please."}]}
    tools = [{"functionDeclarations": [{"name": "lookup", "description": "Find a thing."}]}]
    fuller = body_of(
        answer(
            DEV + ":generateContent",
            {"contents": CONTENTS, "systemInstruction": system, "tools": tools},
        )
    )
    p0 = plain["usageMetadata"]["promptTokenCount"]
    assert fuller["usageMetadata"]["promptTokenCount"] > p0 + 6


def test_inline_data_counts_as_its_mime_type_not_its_base64() -> None:
    image = {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo" * 2000}}
    contents = [{"role": "user", "parts": [{"text": "Describe."}, image]}]
    res = body_of(answer(DEV + ":countTokens", {"contents": contents}))
    assert res["totalTokens"] < 20


def test_max_output_tokens_cuts_the_text() -> None:
    body = {"contents": CONTENTS, "generationConfig": {"maxOutputTokens": 3}}
    res = body_of(answer(DEV + ":generateContent", body))
    assert res["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert count_tokens(text_of(res)) == 3
    assert res["usageMetadata"]["candidatesTokenCount"] == 3


def test_snake_case_fields_are_read_too() -> None:
    body = {"contents": CONTENTS, "generation_config": {"max_output_tokens": "2"}}
    res = body_of(answer(DEV + ":generateContent", body))
    assert res["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert count_tokens(text_of(res)) == 2


def test_candidate_count_gives_distinct_candidates_and_summed_usage() -> None:
    body = {"contents": CONTENTS, "generationConfig": {"candidateCount": 3}}
    res = body_of(answer(DEV + ":generateContent", body))
    assert [c["index"] for c in res["candidates"]] == [0, 1, 2]
    texts = [text_of(res, i) for i in range(3)]
    assert len(set(texts)) == 3
    assert res["usageMetadata"]["candidatesTokenCount"] == sum(map(count_tokens, texts))
    single = body_of(answer(DEV + ":generateContent", {"contents": CONTENTS}))
    assert texts[0] == text_of(single)


def test_forced_function_call_has_object_args_valid_for_the_uppercase_schema() -> None:
    params = {
        "type": "OBJECT",
        "properties": {
            "city": {"type": "STRING"},
            "days": {"type": "INTEGER", "minimum": 1, "maximum": 7},
            "unit": {"type": "STRING", "enum": ["C", "F"]},
        },
        "required": ["city", "days"],
    }
    body = {
        "contents": CONTENTS,
        "tools": [{"functionDeclarations": [{"name": "forecast", "parameters": params}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }
    res = body_of(answer(DEV + ":generateContent", body))
    (part,) = res["candidates"][0]["content"]["parts"]
    call = part["functionCall"]
    assert call["name"] == "forecast"
    assert "id" not in call
    args = call["args"]
    assert isinstance(args["city"], str)
    assert isinstance(args["days"], int) and 1 <= args["days"] <= 7
    assert args.get("unit", "C") in ("C", "F")
    usage = res["usageMetadata"]
    assert usage["candidatesTokenCount"] > 0


def test_allowed_function_names_restrict_the_pick() -> None:
    decls = [{"name": f"tool{i}", "parametersJsonSchema": {"type": "object"}} for i in range(6)]
    for n in range(8):
        body = {
            "contents": [{"role": "user", "parts": [{"text": f"call {n}"}]}],
            "tools": [{"functionDeclarations": decls}],
            "toolConfig": {
                "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["tool2", "tool4"]}
            },
        }
        res = body_of(answer(DEV + ":generateContent", body, fingerprint=f"{n:064d}"))
        assert res["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] in (
            "tool2",
            "tool4",
        )


def test_allowed_function_names_that_name_nothing_are_a_bad_call() -> None:
    body = {
        "contents": CONTENTS,
        "tools": [{"functionDeclarations": [{"name": "a"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["b"]}},
    }
    with pytest.raises(BadCall):
        answer(DEV + ":generateContent", body)


@pytest.mark.parametrize("mode", ["AUTO", "VALIDATED", None])
def test_auto_calls_a_function_until_a_function_response_follows(mode: str | None) -> None:
    body: dict[str, Any] = {
        "contents": CONTENTS,
        "tools": [{"functionDeclarations": [{"name": "a"}, {"name": "b"}]}],
    }
    if mode is not None:
        body["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
    res = body_of(answer(DEV + ":generateContent", body))
    (part,) = res["candidates"][0]["content"]["parts"]
    assert part["functionCall"]["name"] in ("a", "b")
    then = body | {
        "contents": [
            *CONTENTS,
            {"role": "model", "parts": [part]},
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "a", "response": {"ok": True}}}],
            },
        ]
    }
    (text,) = body_of(answer(DEV + ":generateContent", then))["candidates"][0]["content"]["parts"]
    assert text["text"]


@pytest.mark.parametrize(
    ("mode", "tools"), [("NONE", TOOLS_AUTO), ("AUTO", TOOLS_FORCED), (None, TOOLS_FORCED)]
)
def test_mode_none_or_option_forced_answers_in_text(mode: str | None, tools: str) -> None:
    body: dict[str, Any] = {
        "contents": CONTENTS,
        "tools": [{"functionDeclarations": [{"name": "a"}]}],
    }
    if mode is not None:
        body["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
    res = body_of(answer(DEV + ":generateContent", body, tools=tools))
    (part,) = res["candidates"][0]["content"]["parts"]
    assert part["text"]


def test_canned_reply_gives_text_then_function_calls_with_the_canned_id() -> None:
    reply = Reply(
        "Checking.",
        (ToolCall("lookup", {"q": "x"}, "fc-1"), ToolCall("other", '{"n": 2}')),
    )
    res = body_of(answer(DEV + ":generateContent", {"contents": CONTENTS}, reply=reply))
    parts = res["candidates"][0]["content"]["parts"]
    assert parts == [
        {"text": "Checking."},
        {"functionCall": {"name": "lookup", "args": {"q": "x"}, "id": "fc-1"}},
        {"functionCall": {"name": "other", "args": {"n": 2}}},
    ]


def test_canned_function_call_with_non_object_args_is_a_bad_call() -> None:
    reply = Reply(None, (ToolCall("lookup", [1, 2]),))
    with pytest.raises(BadCall):
        answer(DEV + ":generateContent", {"contents": CONTENTS}, reply=reply)


def test_json_mode_with_uppercase_schema() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {"name": {"type": "STRING"}, "n": {"type": "INTEGER"}},
        "required": ["name", "n"],
    }
    body = {
        "contents": CONTENTS,
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
    }
    value = json.loads(text_of(body_of(answer(DEV + ":generateContent", body))))
    assert isinstance(value["name"], str) and isinstance(value["n"], int)


def test_json_mode_with_json_schema_and_without_schema() -> None:
    schema = {"type": "array", "items": {"type": "number"}, "minItems": 2}
    body: dict[str, Any] = {
        "contents": CONTENTS,
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": schema},
    }
    value = json.loads(text_of(body_of(answer(DEV + ":generateContent", body))))
    assert isinstance(value, list) and len(value) >= 2
    body["generationConfig"] = {"responseMimeType": "application/json"}
    value = json.loads(text_of(body_of(answer(DEV + ":generateContent", body))))
    assert isinstance(value, dict) and value


def test_enum_mode_answers_one_member() -> None:
    schema = {"type": "STRING", "enum": ["red", "blue"]}
    body = {
        "contents": CONTENTS,
        "generationConfig": {"responseMimeType": "text/x.enum", "responseSchema": schema},
    }
    assert text_of(body_of(answer(DEV + ":generateContent", body))) in ("red", "blue")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        [1, 2],
        {},
        {"contents": []},
        {"contents": "hi"},
        {"contents": CONTENTS, "generationConfig": {"maxOutputTokens": "many"}},
        {"contents": CONTENTS, "generationConfig": {"candidateCount": 9}},
        {"contents": CONTENTS, "tools": [{"functionDeclarations": [{"description": "x"}]}]},
    ],
)
def test_bad_bodies_are_bad_calls(body: object) -> None:
    for method in ("generateContent", "streamGenerateContent", "countTokens"):
        if method == "countTokens" and isinstance(body, dict) and "contents" in body:
            continue
        with pytest.raises(BadCall):
            answer(f"{DEV}:{method}", body, query=(("alt", "sse"),))


# --- streaming -----------------------------------------------------------------------------


def test_sse_stream_sends_two_to_four_chunks_that_join_to_the_text() -> None:
    full = body_of(answer(DEV + ":generateContent", {"contents": CONTENTS}))
    chunks = sse_chunks(
        answer(DEV + ":streamGenerateContent", {"contents": CONTENTS}, query=(("alt", "sse"),))
    )
    assert 2 <= len(chunks) <= 4
    assert "".join(text_of(c) for c in chunks) == text_of(full)
    counts = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]
    assert counts == sorted(counts) and counts[-1] == full["usageMetadata"]["candidatesTokenCount"]
    for chunk, so_far in zip(chunks, counts, strict=True):
        assert chunk["modelVersion"] == "gemini-2.5-flash"
        assert chunk["responseId"] == full["responseId"]
        assert chunk["usageMetadata"]["totalTokenCount"] == (
            chunk["usageMetadata"]["promptTokenCount"] + so_far
        )
    assert [c["candidates"][0].get("finishReason") for c in chunks][-1] == "STOP"
    assert all("finishReason" not in c["candidates"][0] for c in chunks[:-1])


def test_stream_with_tool_call_and_max_tokens() -> None:
    body = {
        "contents": CONTENTS,
        "tools": [{"functionDeclarations": [{"name": "go"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }
    (chunk,) = sse_chunks(answer(DEV + ":streamGenerateContent", body, query=(("alt", "sse"),)))
    assert chunk["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "go", "args": {}}}
    ]
    assert chunk["candidates"][0]["finishReason"] == "STOP"

    body = {"contents": CONTENTS, "generationConfig": {"maxOutputTokens": 5}}
    chunks = sse_chunks(answer(DEV + ":streamGenerateContent", body, query=(("alt", "sse"),)))
    assert chunks[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert count_tokens("".join(text_of(c) for c in chunks)) == 5


def test_stream_with_two_candidates_ends_each_in_the_last_chunk() -> None:
    body = {"contents": CONTENTS, "generationConfig": {"candidateCount": 2}}
    full = body_of(answer(DEV + ":generateContent", body))
    chunks = sse_chunks(answer(DEV + ":streamGenerateContent", body, query=(("alt", "sse"),)))
    for index in (0, 1):
        texts = [
            "".join(p.get("text", "") for p in c["content"]["parts"])
            for chunk in chunks
            for c in chunk["candidates"]
            if c["index"] == index
        ]
        assert "".join(texts) == text_of(full, index)
    assert {c["index"]: c["finishReason"] for c in chunks[-1]["candidates"]} == {
        0: "STOP",
        1: "STOP",
    }


def test_without_alt_sse_the_stream_is_one_json_array() -> None:
    a = answer(DEV + ":streamGenerateContent", {"contents": CONTENTS}, query=(("key", "x"),))
    assert a.stream
    assert dict(a.headers)["content-type"] == "application/json"
    assert a.frames[0] == b"[" and a.frames[-1] == b"]"
    assert all(f.startswith(b",{") for f in a.frames[2:-1])
    items = json.loads(a.body)
    assert isinstance(items, list)
    sse = sse_chunks(
        answer(DEV + ":streamGenerateContent", {"contents": CONTENTS}, query=(("alt", "sse"),))
    )
    assert items == sse


# --- countTokens ---------------------------------------------------------------------------


def test_count_tokens_equals_the_generate_prompt_count() -> None:
    body = {
        "contents": CONTENTS,
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [{"functionDeclarations": [{"name": "lookup"}]}],
    }
    generated = body_of(answer(DEV + ":generateContent", body))
    counted = body_of(answer(DEV + ":countTokens", body))
    prompt = generated["usageMetadata"]["promptTokenCount"]
    assert counted == {
        "totalTokens": prompt,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    nested = body_of(answer(DEV + ":countTokens", {"generateContentRequest": body}))
    assert nested == counted


# --- embeddings ----------------------------------------------------------------------------

EMBED = "/v1beta/models/gemini-embedding-001"


def content(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def test_embed_content_default_dimensions_and_unit_norm() -> None:
    res = body_of(answer(EMBED + ":embedContent", {"content": content("hello")}))
    values = res["embedding"]["values"]
    assert len(values) == 3072
    assert abs(sum(v * v for v in values) - 1.0) < 1e-4


def test_batch_embed_same_text_same_vector_any_batch_or_fingerprint() -> None:
    single = body_of(
        answer(
            EMBED + ":embedContent",
            {"content": content("b"), "outputDimensionality": 16},
            fingerprint="1" * 64,
        )
    )
    requests = [
        {"model": "models/gemini-embedding-001", "content": content(t), "outputDimensionality": 16}
        for t in ("a", "b", "a")
    ]
    res = body_of(answer(EMBED + ":batchEmbedContents", {"requests": requests}))
    vectors = [e["values"] for e in res["embeddings"]]
    assert [len(v) for v in vectors] == [16, 16, 16]
    assert vectors[0] == vectors[2] != vectors[1]
    assert vectors[1] == single["embedding"]["values"]


def test_vertex_embed_config_dimensions_and_predict() -> None:
    vertex = "/v1beta1/projects/p/locations/l/publishers/google/models/"
    res = body_of(
        answer(
            vertex + "gemini-embedding-001:embedContent",
            {"content": content("a"), "embedContentConfig": {"outputDimensionality": 8}},
        )
    )
    assert len(res["embedding"]["values"]) == 8
    res = body_of(
        answer(
            vertex + "text-embedding-004:predict",
            {"instances": [{"content": "a"}, {"content": "b c"}]},
        )
    )
    (a, bc) = res["predictions"]
    assert len(a["embeddings"]["values"]) == 768
    assert bc["embeddings"]["statistics"] == {"token_count": 2, "truncated": False}


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("embedContent", {}),
        ("embedContent", {"content": content("a"), "outputDimensionality": 0}),
        ("batchEmbedContents", {"requests": []}),
        ("batchEmbedContents", {"requests": [{"model": "m"}]}),
        ("predict", {"instances": [{"prompt": "a cat"}]}),
    ],
)
def test_bad_embedding_bodies_are_bad_calls(method: str, body: object) -> None:
    with pytest.raises(BadCall):
        answer(f"{EMBED}:{method}", body)


# --- determinism ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "query"),
    [("generateContent", ()), ("streamGenerateContent", (("alt", "sse"),))],
)
def test_same_call_same_bytes_other_occurrence_other_text(
    method: str, query: tuple[tuple[str, str], ...]
) -> None:
    body = {
        "contents": CONTENTS,
        "generationConfig": {"candidateCount": 2},
        "tools": [{"functionDeclarations": [{"name": "t", "parameters": {"type": "OBJECT"}}]}],
    }
    first = answer(f"{DEV}:{method}", body, query=query)
    again = answer(f"{DEV}:{method}", body, query=query)
    assert first.frames == again.frames
    assert first.headers == again.headers
    other = answer(f"{DEV}:{method}", body, query=query, occurrence=1)
    assert other.body != first.body
