"""The last user text and tool results, read from every provider's request shape."""

from __future__ import annotations

import pytest

from replay.conversation import called_tools, has_tool_result, last_user_text, system_text

# -- OpenAI chat completions ----------------------------------------------------------------

OPENAI_TOOL_ROUND = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    ],
}


def test_openai_chat_string_content() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    assert last_user_text(body) == "hi"
    assert not has_tool_result(body)


def test_openai_chat_parts_are_joined_and_images_skipped() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": "at this"},
                ],
            }
        ]
    }
    assert last_user_text(body) == "look\nat this"


def test_openai_chat_last_user_message_wins() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second"},
        ]
    }
    assert last_user_text(body) == "second"


def test_openai_tool_round_keeps_the_question_and_sees_the_result() -> None:
    assert last_user_text(OPENAI_TOOL_ROUND) == "weather in Paris?"
    assert has_tool_result(OPENAI_TOOL_ROUND)


def test_a_tool_result_before_the_last_assistant_message_is_not_in_the_last_turn() -> None:
    body = {
        "messages": [
            *OPENAI_TOOL_ROUND["messages"],  # type: ignore[list-item]
            {"role": "assistant", "content": "21 degrees"},
            {"role": "user", "content": "thanks"},
        ]
    }
    assert last_user_text(body) == "thanks"
    assert not has_tool_result(body)


def test_legacy_function_role_is_a_tool_result() -> None:
    body = {"messages": [{"role": "user", "content": "x"}, {"role": "function", "content": "1"}]}
    assert has_tool_result(body)


def test_image_only_user_message_is_skipped() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "describe the next one"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
        ]
    }
    assert last_user_text(body) == "describe the next one"


def test_empty_string_content_is_text() -> None:
    assert last_user_text({"messages": [{"role": "user", "content": ""}]}) == ""


# -- legacy completions and Ollama generate -------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [("say hi", "say hi"), (["a", "b"], "b"), ([[1, 2, 3]], None), (7, None)],
)
def test_prompt(prompt: object, expected: str | None) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": prompt}
    assert last_user_text(body) == expected
    assert not has_tool_result(body)


# -- OpenAI Responses -----------------------------------------------------------------------


def test_responses_string_input() -> None:
    assert last_user_text({"model": "gpt-4o", "input": "hello"}) == "hello"
    assert not has_tool_result({"input": "hello"})


def test_responses_items() -> None:
    body = {
        "input": [
            {"role": "developer", "content": "be terse"},
            {"role": "user", "content": [{"type": "input_text", "text": "what is 2+2"}]},
        ]
    }
    assert last_user_text(body) == "what is 2+2"
    assert not has_tool_result(body)


def test_responses_message_items_with_type() -> None:
    body = {"input": [{"type": "message", "role": "user", "content": "typed item"}]}
    assert last_user_text(body) == "typed item"


def test_responses_function_call_output_after_the_call() -> None:
    body = {
        "input": [
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ]
    }
    assert last_user_text(body) == "weather?"
    assert has_tool_result(body)


def test_responses_output_alone_with_previous_response_id() -> None:
    body = {
        "previous_response_id": "resp_1",
        "input": [{"type": "function_call_output", "call_id": "c1", "output": "sunny"}],
    }
    assert last_user_text(body) is None
    assert has_tool_result(body)


def test_responses_output_before_an_assistant_message_is_old() -> None:
    body = {
        "input": [
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text"}]},
            {"role": "user", "content": "and tomorrow?"},
        ]
    }
    assert last_user_text(body) == "and tomorrow?"
    assert not has_tool_result(body)


def test_embeddings_input() -> None:
    assert last_user_text({"input": ["one", "two"], "model": "text-embedding-3-small"}) == "two"
    assert last_user_text({"input": [[1, 2]]}) is None
    assert last_user_text({"input": []}) is None


# -- Anthropic ------------------------------------------------------------------------------


def test_anthropic_blocks() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 10,
        "system": "not the user",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "ping"}]}],
    }
    assert last_user_text(body) == "ping"
    assert not has_tool_result(body)


def test_anthropic_tool_result_block() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "w", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}],
            },
        ]
    }
    assert last_user_text(body) == "weather?"  # the tool-result-only message has no text
    assert has_tool_result(body)


def test_anthropic_tool_result_and_text_in_one_message() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
                    {"type": "text", "text": "so?"},
                ],
            }
        ]
    }
    assert last_user_text(body) == "so?"
    assert has_tool_result(body)


# -- Gemini ---------------------------------------------------------------------------------


def test_gemini_contents() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "hello"}]},
            {"parts": [{"text": "again"}, {"text": "please"}]},  # no role: the user's
        ]
    }
    assert last_user_text(body) == "again\nplease"
    assert not has_tool_result(body)


def test_gemini_function_response() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "w", "response": {}}}]},
        ]
    }
    assert last_user_text(body) == "weather?"
    assert has_tool_result(body)


def test_gemini_single_content_and_embed_content() -> None:
    assert last_user_text({"contents": {"parts": [{"text": "solo"}]}}) == "solo"
    assert last_user_text({"content": {"parts": [{"text": "embed me"}]}}) == "embed me"


# -- Ollama ---------------------------------------------------------------------------------


def test_ollama_chat_tool_message() -> None:
    body = {
        "model": "llama3.2",
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "w"}}]},
            {"role": "tool", "content": "sunny", "tool_name": "w"},
        ],
    }
    assert last_user_text(body) == "weather?"
    assert has_tool_result(body)


def test_ollama_generate_prompt() -> None:
    assert last_user_text({"model": "llama3.2", "prompt": "why is the sky blue"}) == (
        "why is the sky blue"
    )


# -- odd input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        None,
        "text",
        42,
        [1, 2],
        {},
        {"messages": None},
        {"messages": "hi"},
        {"messages": [None, 3, "x", {"role": 5}, {"role": "user"}, {"role": "user", "content": 1}]},
        {"messages": [{"role": "user", "content": [None, 1, {"text": 5}, {"type": "x"}]}]},
        {"contents": [{"role": "user", "parts": "nope"}]},
        {"contents": 3},
        {"input": {"role": "user"}},
        {"input": [{"type": 5}, {"role": "tool"}]},
        {"prompt": None},
        {"content": 5},
    ],
)
def test_odd_shapes_never_raise(body: object) -> None:
    assert last_user_text(body) is None
    assert isinstance(has_tool_result(body), bool)


def test_odd_role_tool_in_input_items_counts_as_a_tool_result() -> None:
    assert has_tool_result({"input": [{"role": "tool", "content": "x"}]})
    assert has_tool_result({"contents": "x"}) is False


# -- instructions and the tools called so far ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (OPENAI_TOOL_ROUND, "be brief"),
        ({"messages": [{"role": "developer", "content": [{"type": "text", "text": "d"}]}]}, "d"),
        ({"system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, "a\nb"),
        ({"system": "s", "prompt": "p"}, "s"),  # Ollama /api/generate
        ({"systemInstruction": {"parts": [{"text": "g"}]}, "contents": []}, "g"),
        ({"instructions": "i", "input": [{"role": "system", "content": "j"}]}, "i\nj"),
        ({"messages": [{"role": "user", "content": "u"}]}, None),
        ("not a body", None),
    ],
)
def test_system_text(body: object, expected: str | None) -> None:
    assert system_text(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (OPENAI_TOOL_ROUND, {"get_weather"}),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "a", "input": {}}],
                    },
                ]
            },
            {"a"},
        ),
        ({"contents": [{"role": "model", "parts": [{"functionCall": {"name": "g"}}]}]}, {"g"}),
        ({"input": [{"type": "function_call", "name": "r", "call_id": "c"}]}, {"r"}),
        ({"messages": [{"role": "user", "content": "x"}]}, set()),
        (None, set()),
    ],
)
def test_called_tools(body: object, expected: set[str]) -> None:
    assert called_tools(body) == expected
