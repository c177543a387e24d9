"""What a chat request says, whatever the provider: the last user text and tool results.

Owns the readers over a decoded JSON request body: `last_user_text` and `has_tool_result`
(the rules file's `last_user_message` and `tool_result` matches, and the synthetic tool
policy), `system_text` (the instructions: system and developer messages, Anthropic's and
Ollama's `system`, Gemini's `systemInstruction`, the Responses `instructions`) and
`called_tools` (the names of the tools the model called so far). The body's keys tell the
shapes apart, never the path:

- `messages`: OpenAI chat completions, Anthropic messages and Ollama `/api/chat` alike
  (content a string or a list of parts/blocks with `text`; tool results are `role: "tool"`
  (or legacy `"function"`) messages, or Anthropic `tool_result` blocks in a user message);
- `contents`: Gemini (`parts[].text`; a missing role is the user's; tool results are
  `functionResponse` parts);
- `input`: the OpenAI Responses API (a string, or items such as
  `{"role": "user", "content": str | [{"type": "input_text", "text": ...}]}`; tool results
  are `function_call_output` items, and any other `*_call_output`), and also embeddings
  inputs (a string or a list of strings);
- `prompt`: legacy completions, Ollama `/api/generate` and `/api/embeddings` (a string, or a
  list of strings of which the last counts); `content`: Gemini `embedContent`.

"The last user text" is the text of the last user message that has text (a string content,
or at least one text part, joined with newlines); messages that only carry tool results or
images are skipped, so a follow-up that returns a tool's output still has the question that
led to it as its last user text. "The last turn" is every message after the last one the
model wrote (assistant, Gemini `model`, Responses `function_call`/`reasoning`/`*_call`
items), or the whole conversation when the model wrote none.

Pure and total: odd shapes give None / False, never an exception. Knows nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

_TOOL_ROLES = frozenset({"tool", "function"})
_MODEL_ROLES = frozenset({"assistant", "model"})
_TEXT_PART_TYPES = frozenset({"text", "input_text"})
_MODEL_ITEM_TYPES = frozenset({"function_call", "reasoning", "custom_tool_call"})
_SYSTEM_ROLES = frozenset({"system", "developer"})


def last_user_text(body: object) -> str | None:
    """The text of the last user message of a request body, or None when it has none."""
    if not isinstance(body, Mapping):
        return None
    if "messages" in body:
        return _last_user_in(_list(body["messages"]), default_role=None)
    if "contents" in body:
        contents = body["contents"]
        if isinstance(contents, str):
            return contents
        if isinstance(contents, Mapping):
            contents = [contents]
        return _last_user_in(_list(contents), default_role="user")
    if "input" in body:
        value = body["input"]
        if isinstance(value, str):
            return value
        items = _list(value)
        if items and all(isinstance(item, str) for item in items):
            return str(items[-1])  # an embeddings batch: the last input
        return _last_user_in(items, default_role=None)
    if "prompt" in body:
        return _last_string(body["prompt"])
    if "content" in body:  # Gemini embedContent
        return _text_of(body["content"])
    return None


def has_tool_result(body: object) -> bool:
    """Whether the last turn of a request body's conversation carries a tool result."""
    if not isinstance(body, Mapping):
        return False
    if "messages" in body:
        turn = _last_turn(_list(body["messages"]))
    elif "contents" in body:
        contents = body["contents"]
        turn = _last_turn([contents] if isinstance(contents, Mapping) else _list(contents))
    elif "input" in body:
        turn = _last_turn(_list(body["input"]))
    else:
        return False
    return any(_is_tool_result(message) for message in turn)


def system_text(body: object) -> str | None:
    """The instructions of a request body (every system or developer text, joined with
    newlines), or None when it has none."""
    if not isinstance(body, Mapping):
        return None
    texts: list[str] = []
    for key in ("system", "instructions", "systemInstruction", "system_instruction"):
        if key in body:
            text = _text_of(body[key])
            if text is not None:
                texts.append(text)
    for key in ("messages", "input"):
        for message in _list(body.get(key)):
            if isinstance(message, Mapping) and _role(message, None) in _SYSTEM_ROLES:
                text = _text_of(message.get("content"))
                if text is not None:
                    texts.append(text)
    return "\n".join(texts) if texts else None


def called_tools(body: object) -> set[str]:
    """The names of the tools the model called anywhere in a request body's conversation."""
    if not isinstance(body, Mapping):
        return set()
    names: set[str] = set()
    for message in (
        *_list(body.get("messages")),
        *_list(body.get("contents")),
        *_list(body.get("input")),
    ):
        if isinstance(message, Mapping):
            names.update(_calls_in(message))
    return names


def _calls_in(message: Mapping[str, Any]) -> Iterator[str]:
    if message.get("type") == "function_call":  # a Responses item
        name = message.get("name")
        if isinstance(name, str):
            yield name
    for call in _list(message.get("tool_calls")):  # OpenAI chat, Ollama
        function = call.get("function") if isinstance(call, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            yield function["name"]
    for part in _list(message.get("content", message.get("parts"))):
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "tool_use" and isinstance(part.get("name"), str):  # Anthropic
            yield part["name"]
        call = part.get("functionCall", part.get("function_call"))  # Gemini
        if isinstance(call, Mapping) and isinstance(call.get("name"), str):
            yield call["name"]


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _last_string(value: object) -> str | None:
    if isinstance(value, str):
        return value
    strings = [item for item in _list(value) if isinstance(item, str)]
    return strings[-1] if strings else None


def _role(message: Mapping[str, Any], default: str | None) -> str | None:
    role = message.get("role", default)
    return role if isinstance(role, str) else default


def _last_user_in(messages: Sequence[object], default_role: str | None) -> str | None:
    for message in reversed(messages):
        if isinstance(message, Mapping) and _role(message, default_role) == "user":
            content = (
                message["content"] if "content" in message else {"parts": message.get("parts")}
            )
            text = _text_of(content)
            if text is not None:
                return text
    return None


def _text_parts(parts: Sequence[object]) -> Iterator[str]:
    for part in parts:
        if isinstance(part, str):
            yield part
        elif isinstance(part, Mapping):
            text = part.get("text")
            kind = part.get("type")
            if isinstance(text, str) and (kind is None or kind in _TEXT_PART_TYPES):
                yield text


def _text_of(content: object) -> str | None:
    """A content's text: a string as is, text parts joined with newlines, else None."""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):  # a Gemini Content: {"parts": [...]}
        content = content.get("parts")
    texts = list(_text_parts(_list(content)))
    return "\n".join(texts) if texts else None


def _is_model_output(message: object) -> bool:
    if not isinstance(message, Mapping):
        return False
    if _role(message, None) in _MODEL_ROLES:
        return True
    kind = message.get("type")
    return isinstance(kind, str) and (
        kind in _MODEL_ITEM_TYPES or (kind.endswith("_call") and "role" not in message)
    )


def _last_turn(messages: list[Any]) -> list[Any]:
    for index in range(len(messages) - 1, -1, -1):
        if _is_model_output(messages[index]):
            return messages[index + 1 :]
    return messages


def _is_tool_result(message: object) -> bool:
    if not isinstance(message, Mapping):
        return False
    if _role(message, None) in _TOOL_ROLES:
        return True
    kind = message.get("type")
    if isinstance(kind, str) and kind.endswith("_call_output"):
        return True
    for part in _list(message.get("content", message.get("parts"))):
        if isinstance(part, Mapping) and (
            part.get("type") == "tool_result"
            or "functionResponse" in part
            or "function_response" in part
        ):
            return True
    return False
