"""Made-up OpenAI chat completions, streamed or not (PROTOCOLS.md §2.3), and what the legacy
completions share with them.

Owns the request fields that shape a generated answer (`n`, `stream`, `stream_options`,
`max_tokens`/`max_completion_tokens`, `stop`, `tools`/`tool_choice`, `response_format`), the
chat body, its chunk sequence, and usage figures; also what every OpenAI-shaped answer shares
(`openai_headers`, `model_for`, `Shape`, `chunk_stream`), which `openai_api` uses for legacy
completions, embeddings and models. Does not own which paths lead here (`openai_api.ROUTES`),
the Responses API (`openai_responses`), or framing (`sse`).

Choices: choice 0 is made up from the call itself, choice `i > 0` from the call with a seed
that adds `i`, so each has its own text and ids. A stream sends one `split_tokens` piece per
content chunk, choices interleaved in index order (each choice's role chunk first, its own
finish chunk with `delta: {}` last), then `[DONE]`. `completion_tokens` is the sum over the
choices of the text's `count_tokens` plus, per tool call, the tokens of its name and its
arguments' JSON: for a text stream, the number of content chunks sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from replay.models import Headers
from replay.providers.base import (
    ANY_TOOL,
    CREATED,
    NO_TOOL,
    SSE_TYPE,
    Answer,
    BadCall,
    Call,
    Reply,
    ToolSpec,
    arguments_json,
    choose_reply,
    json_answer,
    prompt_tokens,
    split_json,
    stream_answer,
)
from replay.providers.schema import instance_for
from replay.providers.sse import sse_done, sse_event
from replay.providers.structured import json_mode_text
from replay.providers.text import count_tokens, rng_for, split_tokens

MAX_N = 128
"""The largest `n` the API takes (also the cap on legacy prompts × n)."""
_MAX_STOPS = 4

Obj = dict[str, Any]


def openai_headers(call: Call) -> Headers:
    """Headers of every OpenAI-shaped answer: `x-request-id: req_<32 hex>` (the SDK reads it)."""
    return (("x-request-id", call.hex_id("req_", 32)),)


def model_for(call: Call, body: Mapping[str, Any]) -> str:
    """The body's `model`, else the path's (an Azure deployment); `BadCall` without one."""
    model = body.get("model")
    if model is None and "model" in call.params:
        model = unquote(call.params["model"])
    if not isinstance(model, str) or not model:
        raise BadCall("you must provide a model parameter (a non-empty string)")
    return model


def int_field(body: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    """An optional integer field in `[low, high]`; None when absent or null."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadCall(f"{name} must be an integer between {low} and {high}, not {value!r}")
    return value


def choice_call(call: Call, index: int) -> Call:
    """The call that choice `index` is made up from: the call itself for 0, else re-seeded."""
    return call if index == 0 else replace(call, fingerprint=f"{call.fingerprint}/choice/{index}")


@dataclass(frozen=True, slots=True)
class Shape:
    """The request fields every generation endpoint shares."""

    model: str
    n: int
    stream: bool
    include_usage: bool
    max_tokens: int | None
    stops: tuple[str, ...]


def shape_of(call: Call, body: Mapping[str, Any], default_max: int | None) -> Shape:
    """The shared fields of a generation request, checked; `default_max` when no max is set."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadCall(f"stream must be a boolean, not {stream!r}")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise BadCall("stream_options must be an object")
    max_tokens = int_field(body, "max_completion_tokens", 1, 2**31)
    if max_tokens is None:
        max_tokens = int_field(body, "max_tokens", 1, 2**31)
    return Shape(
        model=model_for(call, body),
        n=int_field(body, "n", 1, MAX_N) or 1,
        stream=bool(stream),
        include_usage=bool(stream) and bool((options or {}).get("include_usage")),
        max_tokens=default_max if max_tokens is None else max_tokens,
        stops=_stops(body.get("stop")),
    )


def _stops(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if (
        not isinstance(stops, list)
        or len(stops) > _MAX_STOPS
        or not all(isinstance(s, str) and s for s in stops)
    ):
        raise BadCall(f"stop must be a string or up to {_MAX_STOPS} non-empty strings")
    return tuple(stops)


def limit(text: str, shape: Shape) -> tuple[str, str]:
    """A made-up text as the model would end it: at a stop sequence (left out), else cut at
    `max_tokens` (finish `length`)."""
    ends = [i for i in (text.find(s) for s in shape.stops) if i >= 0]
    if ends:
        text = text[: min(ends)]
    if shape.max_tokens is not None and count_tokens(text) > shape.max_tokens:
        return "".join(split_tokens(text)[: shape.max_tokens]), "length"
    return text, "stop"


@dataclass(frozen=True, slots=True)
class _Choice:
    reply: Reply
    finish: str

    @property
    def tokens(self) -> int:
        tools = sum(
            count_tokens(c.name) + count_tokens(arguments_json(c)) for c in self.reply.tool_calls
        )
        return count_tokens(self.reply.text or "") + tools


def usage(prompt: int, completion: int, details: bool = True) -> Obj:
    """A `usage` object; `details` adds chat's zeroed token breakdowns."""
    out: Obj = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if details:
        out["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        out["completion_tokens_details"] = {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return out


def interleave(per_choice: Sequence[Sequence[Obj]]) -> list[Obj]:
    """Each choice's chunk payloads, round robin in index order."""
    out: list[Obj] = []
    for step in range(max((len(s) for s in per_choice), default=0)):
        out.extend(s[step] for s in per_choice if step < len(s))
    return out


def chunk_stream(call: Call, head: Obj, payloads: list[Obj], shape: Shape, total: Obj) -> Answer:
    """The frames of a chat or legacy stream: `head` fields + each payload, the usage chunk
    when asked for, `[DONE]`."""
    frames = []
    for payload in payloads:
        chunk = {**head, **payload}
        if shape.include_usage:
            chunk["usage"] = None
        frames.append(sse_event(chunk))
    if shape.include_usage:
        frames.append(sse_event({**head, "choices": [], "usage": total}))
    frames.append(sse_done())
    return stream_answer(frames, SSE_TYPE, openai_headers(call))


# -- chat completions ---------------------------------------------------------------------


def chat_completions(call: Call) -> Answer:
    """`POST .../chat/completions`: text, tool calls or JSON, `n` choices, stream or not."""
    body = call.json
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadCall("messages must be a non-empty array")
    if not all(isinstance(m, dict) for m in messages):
        raise BadCall("each message must be an object")
    shape = shape_of(call, body, None)
    tools = _tools(body.get("tools"))
    forced, tools = _tool_choice(body.get("tool_choice"), tools)
    json_format = _json_format(body.get("response_format"))
    parallel = body.get("parallel_tool_calls") is True
    choices = [
        _chat_choice(choice_call(call, i), shape, tools, forced, parallel, json_format)
        for i in range(shape.n)
    ]
    prompt = prompt_tokens(messages, body.get("tools"))
    total = usage(prompt, sum(c.tokens for c in choices))
    head: Obj = {
        "id": call.id("chatcmpl-", 29),
        "object": "chat.completion.chunk" if shape.stream else "chat.completion",
        "created": CREATED,
        "model": shape.model,
        "service_tier": "default",
        "system_fingerprint": _system_fingerprint(shape.model),
    }
    if shape.stream:
        per_choice = [_chat_chunks(i, c) for i, c in enumerate(choices)]
        return chunk_stream(call, head, interleave(per_choice), shape, total)
    return json_answer(
        {
            **head,
            "choices": [
                {
                    "index": i,
                    "message": _message(c.reply),
                    "logprobs": None,
                    "finish_reason": c.finish,
                }
                for i, c in enumerate(choices)
            ],
            "usage": total,
        },
        headers=openai_headers(call),
    )


def _system_fingerprint(model: str) -> str:
    """`fp_` + 10 hex: fixed per model, like a serving configuration."""
    rng = rng_for("system_fingerprint", model)
    return "fp_" + "".join(rng.choice("0123456789abcdef") for _ in range(10))


def _tools(raw: object) -> list[ToolSpec]:
    """The function tools a request offers (other kinds, e.g. `custom`, are never called)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadCall("tools must be an array")
    specs = []
    for tool in raw:
        if not isinstance(tool, dict):
            raise BadCall("each tool must be an object")
        if tool.get("type", "function") != "function":
            continue
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise BadCall("a function tool needs function.name")
        schema = fn.get("parameters")
        if schema is None:
            schema = {"type": "object", "properties": {}}
        if not isinstance(schema, dict):
            raise BadCall(f"tool {fn['name']!r}: parameters must be an object")
        specs.append(ToolSpec(fn["name"], schema))
    return specs


def _tool_choice(choice: object, tools: list[ToolSpec]) -> tuple[str | None, list[ToolSpec]]:
    """What `tool_choice` says (None: auto; `NO_TOOL`; `ANY_TOOL`; a tool's name) among
    which tools."""
    if choice is None or choice == "auto":
        return None, tools
    if choice == "none":
        return NO_TOOL, tools
    if not tools:
        raise BadCall("tool_choice is only allowed when tools are specified")
    if choice == "required":
        return ANY_TOOL, tools
    if isinstance(choice, dict) and choice.get("type") == "function":
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str) or name not in {t.name for t in tools}:
            raise BadCall(f"tool_choice names {name!r}, which is not among the tools")
        return name, tools
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools")
        if isinstance(allowed, dict) and isinstance(allowed.get("tools"), list):
            names = {
                t["function"].get("name")
                for t in allowed["tools"]
                if isinstance(t, dict) and isinstance(t.get("function"), dict)
            }
            subset = [t for t in tools if t.name in names]
            if subset and allowed.get("mode") in ("auto", "required"):
                return (ANY_TOOL if allowed["mode"] == "required" else None), subset
    raise BadCall(f"invalid tool_choice {choice!r}")


def _json_format(fmt: object) -> Callable[[Call], str] | None:
    """For `response_format` json_schema / json_object: the made-up JSON text of a choice."""
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return _json_object
    if kind == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
        schema = spec.get("schema", {"type": "object"}) if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise BadCall("response_format.json_schema.schema must be an object")

        def from_schema(call: Call) -> str:
            try:
                value = instance_for(schema, call.rng("json"))
            except ValueError as e:
                raise BadCall(f"cannot answer with response_format's schema: {e}") from None
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

        return from_schema
    raise BadCall(f"invalid response_format {fmt!r}")


def _json_object(call: Call) -> str:
    """JSON mode without a schema: an instance of the schema the prompt carries, else a
    small generic object."""
    return json_mode_text(call.body, call.rng("json"))


def _chat_choice(
    call: Call,
    shape: Shape,
    tools: list[ToolSpec],
    forced: str | None,
    parallel: bool,
    json_format: Callable[[Call], str] | None,
) -> _Choice:
    """One choice: a canned reply as is, else tool calls (the tool policy), JSON, or a
    made-up text."""
    reply, _ = choose_reply(call, tools, forced, parallel=parallel)
    if call.reply is None and not reply.tool_calls and json_format is not None:
        reply = Reply(json_format(call))
    if reply.tool_calls:
        return _Choice(reply, "tool_calls")
    if call.reply is not None:
        return _Choice(reply, "stop")
    text, finish = limit(reply.text or "", shape)
    return _Choice(Reply(text), finish)


def _content(reply: Reply) -> str | None:
    """`content`: the text; null beside tool calls when there is none."""
    if reply.text is None:
        return None if reply.tool_calls else ""
    return reply.text


def _message(reply: Reply) -> Obj:
    message: Obj = {
        "role": "assistant",
        "content": _content(reply),
        "refusal": None,
        "annotations": [],
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": arguments_json(c)},
            }
            for c in reply.tool_calls
        ]
    return message


def _chat_chunks(index: int, choice: _Choice) -> list[Obj]:
    """A choice's chunk payloads: role, text pieces, tool-call deltas, finish."""
    reply = choice.reply
    content = None if _content(reply) is None else ""
    deltas: list[Obj] = [{"role": "assistant", "content": content, "refusal": None}]
    deltas.extend({"content": piece} for piece in split_tokens(reply.text or ""))
    for j, c in enumerate(reply.tool_calls):
        first = {"index": j, "id": c.id, "type": "function"}
        deltas.append({"tool_calls": [{**first, "function": {"name": c.name, "arguments": ""}}]})
        deltas.extend(
            {"tool_calls": [{"index": j, "function": {"arguments": part}}]}
            for part in split_json(arguments_json(c))
        )
    payloads: list[Obj] = [
        {"choices": [{"index": index, "delta": d, "logprobs": None, "finish_reason": None}]}
        for d in deltas
    ]
    finish: Obj = {"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.finish}
    payloads.append({"choices": [finish]})
    return payloads
