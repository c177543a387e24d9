"""JSON from the prompt, over the request bodies instructor and LangChain really send.

The fixtures in tests/data/prompts/ were captured from instructor 1.17.0, langchain-core
1.8.3, langchain-openai 1.7.4 and langchain-anthropic 1.7.10 (see its README.md): each is the
request body of one structured-output call, with the path it went to. Their model is a
`Person` (name, age 0..130, optional email, tags, a nested `Address` through `$ref`).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from replay.models import Request
from replay.providers import router
from replay.providers.base import Answer, Call
from replay.providers.structured import (
    MAX_TRIES,
    PromptJson,
    find_schema,
    json_mode_text,
    json_text,
    prompt_json,
    prompt_texts,
)

PROMPTS = Path(__file__).resolve().parents[2] / "data" / "prompts"
PERSON_FIELDS = {"name", "age", "email", "tags", "address"}

SCHEMA_IN_PROMPT = [
    "instructor-openai-JSON",
    "instructor-openai-MD_JSON",
    "instructor-anthropic-ANTHROPIC_JSON",
    "langchain-openai-pydantic-parser",
    "langchain-openai-json-parser",
    "langchain-anthropic-pydantic-parser",
    "langchain-openai-json-mode-parser",
    "langchain-openai-structured-json_mode",
]
SCHEMA_IN_REQUEST = [
    "instructor-openai-JSON_SCHEMA",
    "langchain-openai-structured-json_schema",
    "langchain-anthropic-structured-json_schema",
]
FORCED_TOOL = [
    "instructor-openai-TOOLS",
    "instructor-anthropic-ANTHROPIC_TOOLS",
    "langchain-openai-structured-function_calling",
    "langchain-anthropic-structured-function_calling",
]


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((PROMPTS / f"{name}.json").read_text())
    return loaded


def respond(name: str, **changes: Any) -> Answer:
    captured = fixture(name)
    body = {**captured["body"], **changes}
    request = Request(
        "POST",
        "https",
        "api.example.com",
        443,
        captured["path"],
        (),
        (("content-type", "application/json"),),
        json.dumps(body).encode(),
    )
    found = router.find(request)
    assert found is not None, captured["path"]
    route, params = found
    answer = route.respond(Call(request, "c" * 64, 0, params=params))
    assert answer.status == 200, answer.body
    return answer


def text_of(answer: Answer) -> str:
    body = json.loads(answer.body)
    if "choices" in body:
        message = body["choices"][0]["message"]
        assert "tool_calls" not in message
        return str(message["content"])
    (block,) = body["content"]
    assert block["type"] == "text"
    return str(block["text"])


def unfenced(text: str) -> str:
    return text.removeprefix("```json\n").removesuffix("\n```")


def test_every_fixture_is_listed() -> None:
    listed = {
        *SCHEMA_IN_PROMPT,
        *SCHEMA_IN_REQUEST,
        *FORCED_TOOL,
        "langchain-openai-json-parser-noschema",
    }
    assert {p.stem for p in PROMPTS.glob("*.json")} == listed


@pytest.mark.parametrize("name", SCHEMA_IN_PROMPT)
def test_the_schema_in_the_prompt_is_found(name: str) -> None:
    schema = find_schema(prompt_texts(fixture(name)["body"]))
    assert schema is not None
    assert set(schema["properties"]) == PERSON_FIELDS
    assert schema["required"] == ["name", "age", "address"]


@pytest.mark.parametrize("name", SCHEMA_IN_PROMPT)
def test_the_answer_is_an_instance_of_the_schema_in_the_prompt(name: str) -> None:
    schema = find_schema(prompt_texts(fixture(name)["body"]))
    assert schema is not None
    text = text_of(respond(name))
    fenced = name == "instructor-openai-MD_JSON"
    assert text.startswith("```json\n") is fenced
    Draft202012Validator(schema).validate(json.loads(unfenced(text)))


@pytest.mark.parametrize("name", SCHEMA_IN_PROMPT)
def test_a_stream_delivers_the_same_json_in_pieces(name: str) -> None:
    whole = text_of(respond(name))
    if fixture(name)["path"].endswith("/messages"):
        frames = respond(name, stream=True).frames
        deltas = [json.loads(f.split(b"data: ", 1)[1]) for f in frames if b"text_delta" in f]
        pieces = [d["delta"]["text"] for d in deltas]
    else:
        frames = respond(name, stream=True).frames[:-1]  # [DONE] last
        chunks = [json.loads(f.removeprefix(b"data: ")) for f in frames]
        pieces = [c["choices"][0]["delta"].get("content") or "" for c in chunks]
    assert len([p for p in pieces if p]) > 5
    assert "".join(pieces) == whole


@pytest.mark.parametrize("name", SCHEMA_IN_REQUEST)
def test_a_schema_in_the_request_itself_is_answered(name: str) -> None:
    body = fixture(name)["body"]
    fmt = body.get("response_format") or body["output_config"]["format"]
    schema = fmt["json_schema"]["schema"] if "json_schema" in fmt else fmt["schema"]
    Draft202012Validator(schema).validate(json.loads(text_of(respond(name))))


@pytest.mark.parametrize("name", FORCED_TOOL)
def test_a_forced_tool_gets_arguments_valid_against_its_schema(name: str) -> None:
    body = fixture(name)["body"]
    answer = json.loads(respond(name).body)
    if "choices" in answer:
        (call,) = answer["choices"][0]["message"]["tool_calls"]
        (tool,) = body["tools"]
        schema, arguments = (
            tool["function"]["parameters"],
            json.loads(call["function"]["arguments"]),
        )
    else:
        (block,) = answer["content"]
        (tool,) = body["tools"]
        schema, arguments = tool["input_schema"], block["input"]
    Draft202012Validator(schema).validate(arguments)


def test_json_asked_without_a_schema_gets_a_small_generic_object() -> None:
    body = fixture("langchain-openai-json-parser-noschema")["body"]
    asked = prompt_json(body)
    assert asked == PromptJson(None, False)
    value = json.loads(text_of(respond("langchain-openai-json-parser-noschema")))
    assert isinstance(value, dict) and value


def test_the_last_schema_wins_over_an_example_before_it() -> None:
    example = {"properties": {"foo": {"type": "array", "items": {"type": "string"}}}}
    real = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    text = (
        f"For the schema {json.dumps(example)} the object "
        '{"foo": ["bar"]} is well formatted; {"properties": {"foo": ["bar"]}} is not.\n'
        f"Here is the output schema:\n```\n{json.dumps(real)}\n```"
    )
    assert find_schema(text) == real


@pytest.mark.parametrize(
    "text",
    [
        "Tell me about the weather in Oslo.",
        "What is JSON? Explain it briefly.",
        'Here is some data: {"a": 1, "b": [1, 2]}. Summarise it.',
    ],
)
def test_prompts_that_do_not_ask_for_json_get_prose(text: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    assert prompt_json(body) is None


def test_a_bare_schema_in_a_gemini_system_instruction_is_found() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}}
    body = {
        "systemInstruction": {"parts": [{"text": f"Reply in JSON matching {json.dumps(schema)}"}]},
        "contents": [{"role": "user", "parts": [{"text": "Go."}]}],
    }
    asked = prompt_json(body)
    assert asked == PromptJson(schema, False)
    value = json.loads(json_text(asked, random.Random(1)))
    assert isinstance(value["n"], int) and value["n"] >= 3


def test_json_mode_without_any_schema_answers_a_generic_object() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hello"}]}
    value = json.loads(json_mode_text(body, random.Random(2)))
    assert set(value) == {"answer", "topic", "confidence"}


def test_an_unbuildable_schema_in_the_prompt_falls_back_to_the_generic_object() -> None:
    asked = PromptJson({"type": "integer", "minimum": 5, "maximum": 1}, False)
    assert set(json.loads(json_text(asked, random.Random(3)))) == {"answer", "topic", "confidence"}


def test_scanning_is_bounded_on_a_prompt_full_of_braces() -> None:
    text = "Return JSON. " + "{" * (MAX_TRIES * 4) + json.dumps({"properties": {"a": {}}})
    assert find_schema(text) is None  # past MAX_TRIES attempts the scan stops


@pytest.mark.parametrize(
    ("instruction", "fenced"),
    [
        ("Wrap your JSON answer in a markdown code block.", True),
        ("Return the JSON within a ```json codeblock.", True),
        ("Answer in JSON. Do not use markdown or code blocks.", False),
        ("Return JSON only, without ```json fences.", False),
        ("Here is the output schema (shown in a code block): reply in JSON.", False),
    ],
)
def test_a_fence_only_when_asked_and_not_negated(instruction: str, fenced: bool) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    body = {"messages": [{"role": "system", "content": f"{instruction}\n{json.dumps(schema)}"}]}
    assert prompt_json(body) == PromptJson(schema, fenced)
