"""Synthetic answers in Anthropic's Messages shape: `POST /v1/messages` and
`POST /v1/messages/count_tokens`, on any host and behind any path prefix (a gateway, Ollama's
Anthropic-compatible surface).

Owns reading a Messages request (tools, `tool_choice`, `thinking`, `stop_sequences`, the
required `max_tokens`), the content blocks of the made-up message (thinking, then text, then
tool_use, in that order), its usage figures, and how that message is written out: one JSON
object, or the event sequence of PROTOCOLS.md §4.3. Does not own the made-up text or tool
arguments (`base.choose_reply`), framing (`sse.py`) or pacing.

The stream is what the SDK's `messages.stream()` helper needs: every frame has an `event:`
line equal to its JSON `type`, no `[DONE]`; `message_start` carries the whole message with
`content: []`, the final `usage.input_tokens` and a placeholder `output_tokens`; blocks start
in index order, a text block with `"text": ""`, a thinking block with empty `thinking` and
`signature`; one `ping` follows the first `content_block_start`; text and thinking go out as
one delta per `text.split_tokens` piece (so the final `output_tokens` counts the deltas
sent); a thinking block ends with one `signature_delta`; a tool_use block's input goes out as
an empty `input_json_delta` and then `split_json` fragments of its compact JSON;
`message_delta` carries the stop reason and cumulative usage; `message_stop` ends it.

Usage: `input_tokens` is `prompt_tokens` over system, messages and tools (count_tokens gives
the same figure for the same body); `output_tokens` counts the thinking text, the text and
each tool input's compact JSON. `max_tokens` bounds thinking plus text of a made-up answer
(thinking first, then the rest of the budget goes to the text); canned replies and forced
tool calls are not cut.

Checks are structural, as the real API's 400s are: `model`, `max_tokens` (a positive
integer) and a non-empty `messages` list are required, `tool_choice` must be a known kind and
a forcing one needs tools, `thinking: enabled` needs an integer `budget_tokens`. Value
ranges that vary by model or beta (`budget_tokens` >= 1024 and below `max_tokens`, thinking
with a forced tool) are not enforced.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

from replay.providers.base import (
    ANY_TOOL,
    NO_TOOL,
    SSE_TYPE,
    Answer,
    BadCall,
    Call,
    Reply,
    Route,
    ToolSpec,
    choose_reply,
    json_answer,
    prompt_tokens,
    split_json,
    stream_answer,
)
from replay.providers.schema import instance_for
from replay.providers.sse import sse_event
from replay.providers.text import count_tokens, split_tokens, synthetic_text

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
"""The alphabet of Anthropic's ids (`msg_01…`, `toolu_01…`, `req_011C…`)."""

THINKING_WORDS = (8, 24)
"""Made-up thinking has between this many words (inclusive), chosen by the call's rng."""

SIGNATURE_BYTES = 96
"""A made-up thinking signature is this many random bytes, base64-encoded (128 characters)."""

Block = dict[str, Any]


def b58_id(call: Call, prefix: str, length: int, purpose: str | int = "") -> str:
    """A deterministic id in Anthropic's style: `prefix` + `length` base58 characters."""
    rng = call.rng("anthropic-id", prefix, purpose)
    return prefix + "".join(rng.choice(BASE58) for _ in range(length))


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """The parts of a Messages (or count_tokens) body the answer depends on."""

    model: str
    max_tokens: int
    tools: list[ToolSpec]
    forced: str | None
    parallel: bool
    thinking: bool
    thinking_budget: int | None
    thinking_shown: bool
    stop_sequences: list[str]
    stream: bool
    input_tokens: int
    output_schema: Mapping[str, Any] | None = None
    """Structured outputs' JSON Schema (`output_config.format`, or the beta
    `output_format`): the text is an instance of it."""


def read_request(body: Mapping[str, Any], *, needs_max_tokens: bool = True) -> MessagesRequest:
    """Check and read a Messages body; `BadCall` where the real API answers 400."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadCall("model: field required")
    max_tokens = body.get("max_tokens")
    if needs_max_tokens:
        if max_tokens is None:
            raise BadCall("max_tokens: field required")
        if not _is_int(max_tokens) or max_tokens < 1:
            raise BadCall("max_tokens: must be a positive integer")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadCall("messages: at least one message is required")
    raw_tools = body.get("tools") or []
    if not isinstance(raw_tools, list):
        raise BadCall("tools: must be a list")
    tools = _tool_specs(raw_tools)
    choice = body.get("tool_choice")
    forced = _forced_tool(choice, tools)
    thinking, budget, shown = _thinking(body.get("thinking"))
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise BadCall("stop_sequences: must be a list of non-empty strings")
    return MessagesRequest(
        model=model,
        max_tokens=max_tokens if _is_int(max_tokens) else 0,
        tools=tools,
        forced=forced,
        parallel=isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is False,
        thinking=thinking,
        thinking_budget=budget,
        thinking_shown=shown,
        stop_sequences=stops,
        stream=body.get("stream") is True,
        input_tokens=prompt_tokens(body.get("system"), messages, raw_tools),
        output_schema=_output_schema(body),
    )


def _output_schema(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JSON Schema structured outputs ask for, or None."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise BadCall("output_config.format: must be an object of type json_schema")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise BadCall("output_config.format.schema: field required")
    return schema


def input_json(value: object) -> str:
    """A tool input as compact JSON: what its `input_json_delta`s carry and usage counts."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _tool_specs(raw_tools: list[Any]) -> list[ToolSpec]:
    """The client tools (those with an `input_schema`); server tools are not called."""
    specs: list[ToolSpec] = []
    for tool in raw_tools:
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise BadCall("tools: each tool must be an object with a name")
        schema = tool.get("input_schema")
        if schema is None:
            continue
        if not isinstance(schema, dict):
            raise BadCall(f"tools: input_schema of {tool['name']!r} must be an object")
        specs.append(ToolSpec(tool["name"], schema))
    return specs


def _forced_tool(choice: object, tools: list[ToolSpec]) -> str | None:
    """`tool_choice` as `choose_reply`'s `forced`: None (auto), `NO_TOOL`, `ANY_TOOL` or a
    tool's name."""
    if choice is None:
        return None
    if not isinstance(choice, dict):
        raise BadCall("tool_choice: must be an object")
    kind = choice.get("type")
    if kind == "auto":
        return None
    if kind == "none":
        return NO_TOOL
    if kind == "any":
        forced = ANY_TOOL
    elif kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str):
            raise BadCall("tool_choice.name: field required")
        forced = name
    else:
        raise BadCall(f"tool_choice: unknown type {kind!r}")
    if not tools:
        raise BadCall("tool_choice may only be specified while providing tools")
    return forced


def _thinking(config: object) -> tuple[bool, int | None, bool]:
    """(thinking on, its token budget if any, thinking text shown) from `thinking`."""
    if config is None:
        return False, None, False
    if not isinstance(config, dict):
        raise BadCall("thinking: must be an object")
    kind = config.get("type")
    if kind == "disabled":
        return False, None, False
    shown = config.get("display") != "omitted"
    if kind == "enabled":
        budget = config.get("budget_tokens")
        if not _is_int(budget) or budget < 1:
            raise BadCall("thinking.budget_tokens: must be a positive integer")
        return True, budget, shown
    return True, None, shown  # adaptive, and kinds newer than this module


@dataclass(frozen=True, slots=True)
class Message:
    """The made-up message: its blocks in order, stop reason and usage."""

    id: str
    model: str
    content: list[Block]
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int


def make_message(call: Call, req: MessagesRequest) -> Message:
    """The message that answers `call`: thinking (if asked), then the reply's text and tool
    calls, with its stop reason and usage."""
    content: list[Block] = []
    output_tokens = 0
    left = req.max_tokens
    if req.thinking:
        thought = _thinking_text(call, min(left, req.thinking_budget or left))
        output_tokens += count_tokens(thought)
        left = max(0, left - count_tokens(thought))
        content.append(
            {
                "type": "thinking",
                "thinking": thought if req.thinking_shown else "",
                "signature": _signature(call),
            }
        )
    reply, cut = choose_reply(call, req.tools, req.forced, left, req.parallel)
    if req.output_schema is not None and call.reply is None and not reply.tool_calls:
        structured, cut = _structured_text(call, req.output_schema, left)
        reply = Reply(structured)
    text, stop_sequence = reply.text, None
    if text is not None and call.reply is None and not reply.tool_calls:
        text, stop_sequence = _stop_at(text, req.stop_sequences)
    if text is not None:
        content.append({"type": "text", "text": text})
        output_tokens += count_tokens(text)
    for index, tool_call in enumerate(reply.tool_calls):
        content.append(
            {
                "type": "tool_use",
                "id": _tool_use_id(call, index),
                "name": tool_call.name,
                "input": tool_call.arguments,
            }
        )
        output_tokens += count_tokens(input_json(tool_call.arguments))
    if reply.tool_calls:
        stop_reason = "tool_use"
    elif stop_sequence is not None:
        stop_reason = "stop_sequence"
    elif cut:
        stop_reason = "max_tokens"
    else:
        stop_reason = "end_turn"
    return Message(
        id=b58_id(call, "msg_01", 22),
        model=req.model,
        content=content,
        stop_reason=stop_reason,
        stop_sequence=stop_sequence,
        input_tokens=req.input_tokens,
        output_tokens=output_tokens,
    )


def _structured_text(call: Call, schema: Mapping[str, Any], limit: int) -> tuple[str, bool]:
    """An instance of the structured outputs' schema as compact JSON, and whether it was cut
    at `limit` tokens."""
    try:
        value = instance_for(schema, call.rng("structured"))
    except ValueError as e:
        raise BadCall(f"output_config.format.schema: {e}") from None
    pieces = split_tokens(input_json(value))
    return "".join(pieces[:limit]), len(pieces) > limit


def _thinking_text(call: Call, limit: int) -> str:
    rng = call.rng("thinking")
    text = synthetic_text(rng, rng.randint(*THINKING_WORDS))
    return "".join(split_tokens(text)[:limit])


def _signature(call: Call) -> str:
    rng = call.rng("signature")
    return base64.b64encode(rng.getrandbits(8 * SIGNATURE_BYTES).to_bytes(SIGNATURE_BYTES)).decode()


def _tool_use_id(call: Call, index: int) -> str:
    """A canned tool call keeps its own id; any other gets `toolu_01…` (`choose_reply` fills
    in OpenAI-style `call_…` ids, which are not Anthropic's)."""
    canned = call.reply.tool_calls if call.reply is not None else ()
    own = canned[index].id if index < len(canned) else None
    if own:
        return own
    return b58_id(call, "toolu_01", 22, index)


def _stop_at(text: str, stop_sequences: list[str]) -> tuple[str, str | None]:
    """`text` cut before the earliest stop sequence in it, and that sequence (or None)."""
    found: tuple[int, str] | None = None
    for stop in stop_sequences:
        at = text.find(stop)
        if at >= 0 and (found is None or at < found[0]):
            found = (at, stop)
    if found is None:
        return text, None
    return text[: found[0]], found[1]


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """Usage figures, cumulative (`message_delta` repeats them all, as the real API does)."""
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def message_json(message: Message) -> dict[str, Any]:
    """The non-streamed body."""
    return {
        "id": message.id,
        "type": "message",
        "role": "assistant",
        "model": message.model,
        "content": message.content,
        "stop_reason": message.stop_reason,
        "stop_sequence": message.stop_sequence,
        "usage": _usage(message.input_tokens, message.output_tokens) | {"service_tier": "standard"},
    }


def start_usage(message: Message) -> dict[str, Any]:
    """`message_start`'s usage: final input tokens, a placeholder of one output token."""
    return _usage(message.input_tokens, min(1, message.output_tokens)) | {
        "service_tier": "standard"
    }


def message_events(message: Message) -> list[bytes]:
    """The streamed body, frame by frame (see the module docstring for the order)."""
    start = message_json(message) | {
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage(message),
    }
    frames = [_event({"type": "message_start", "message": start})]
    for index, block in enumerate(message.content):
        frames.append(
            _event({"type": "content_block_start", "index": index, "content_block": _empty(block)})
        )
        if index == 0:
            frames.append(_event({"type": "ping"}))
        frames.extend(
            _event({"type": "content_block_delta", "index": index, "delta": delta})
            for delta in _deltas(block)
        )
        frames.append(_event({"type": "content_block_stop", "index": index}))
    if not message.content:
        frames.append(_event({"type": "ping"}))
    frames.append(
        _event(
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": message.stop_reason,
                    "stop_sequence": message.stop_sequence,
                },
                "usage": _usage(message.input_tokens, message.output_tokens),
            }
        )
    )
    frames.append(_event({"type": "message_stop"}))
    return frames


def _event(data: dict[str, Any]) -> bytes:
    return sse_event(data, event=data["type"])


def _empty(block: Block) -> Block:
    """A block as its `content_block_start` carries it: the deltas fill it in."""
    if block["type"] == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if block["type"] == "tool_use":
        return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
    return {"type": "text", "text": ""}


def _deltas(block: Block) -> list[Block]:
    if block["type"] == "thinking":
        pieces = split_tokens(block["thinking"])
        return [{"type": "thinking_delta", "thinking": p} for p in pieces] + [
            {"type": "signature_delta", "signature": block["signature"]}
        ]
    if block["type"] == "tool_use":
        raw = input_json(block["input"])
        return [{"type": "input_json_delta", "partial_json": p} for p in ["", *split_json(raw)]]
    return [{"type": "text_delta", "text": p} for p in split_tokens(block["text"])]


def _headers(call: Call) -> tuple[tuple[str, str], ...]:
    return (("request-id", b58_id(call, "req_011C", 20)),)


def respond_messages(call: Call) -> Answer:
    """`POST /v1/messages`: a made-up message, streamed when the body says `stream: true`."""
    req = read_request(call.json)
    message = make_message(call, req)
    if not req.stream:
        return json_answer(message_json(message), headers=_headers(call))
    return replace(stream_answer(message_events(message), SSE_TYPE, _headers(call)), stream=True)


def respond_count_tokens(call: Call) -> Answer:
    """`POST /v1/messages/count_tokens`: the input tokens a messages call would report."""
    req = read_request(call.json, needs_max_tokens=False)
    return json_answer({"input_tokens": req.input_tokens}, headers=_headers(call))


ROUTES: tuple[Route, ...] = (
    Route(
        "POST", re.compile(r"(?:/.*)?/v1/messages/count_tokens"), respond_count_tokens, "anthropic"
    ),
    Route("POST", re.compile(r"(?:/.*)?/v1/messages"), respond_messages, "anthropic"),
)
