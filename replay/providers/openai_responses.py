"""Synthetic answers of the OpenAI Responses API, a stateful surface (PROTOCOLS.md §2.4).

Owns the routes (`POST /responses`, `GET` and `DELETE /responses/{id}`, `POST
/responses/{id}/cancel`, `GET /responses/{id}/input_items`, under every OpenAI-compatible
prefix: `/v1`, none, Azure's `/openai` and `/openai/v1`, Gemini's `/v1beta/openai`), the
Response object, its input and output items, the SSE framing of its stream, and
OpenAI-shaped errors for what the real API refuses (unknown ids are 404s, an unknown
`previous_response_id` a 400 with `param`). The event sequence a finished response unfolds
into, what is remembered between calls, and how a background response moves along are
`responses_state.py`.

The reply (`choose_reply`): a canned reply wins; then the tool policy of `base` over the
function tools (`tool_choice` `"required"` or `{"type":"function","name":X}` forces a call,
`"none"` forbids one, `auto` calls one until a `function_call_output` follows the last user
message; built-in tools are never called); `text.format` `json_schema` makes the text a JSON
instance of the schema (`json_object`: an instance of the schema in the prompt, else a small
generic object); else made-up text. `max_output_tokens` (at least 16,
as the real API demands) cuts made-up and JSON text, never a canned reply, and makes the
response `incomplete`. Usage counts the instructions, tools and input, plus, through
`previous_response_id`, the history the response continues; output tokens count the text
and the arguments sent.

Streams (`responses_state.stream_events`) send `event:` lines equal to the JSON `type`,
`sequence_number` from 0, no `[DONE]`, the same response id in every lifecycle event, one
`output_text.delta` per token (`split_tokens`) after `output_item.added` and
`content_part.added`, arguments in `split_json` fragments, and the full output in the final
`response.completed` (or `response.incomplete`). A stored response keeps these events for
`GET /responses/{id}?stream=true&starting_after=N`, even when created without a stream.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

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
    Route,
    ToolSpec,
    arguments_json,
    choose_reply,
    json_answer,
    prompt_tokens,
    stream_answer,
)
from replay.providers.responses_state import ResponsesState, Stored, pending, stream_events
from replay.providers.schema import instance_for
from replay.providers.sse import sse_event
from replay.providers.structured import json_mode_text
from replay.providers.text import count_tokens, split_tokens

ID_LENGTH = 48
"""Hex digits after `resp_`, `msg_`, `fc_`: the length real ids have."""

MIN_OUTPUT_TOKENS = 16
"""The smallest `max_output_tokens` the real API accepts."""

PAGE_LIMIT = (1, 100, 20)
"""`limit` of an input_items page: minimum, maximum, default."""

_ITEM_PREFIX = {
    "message": "msg_",
    "function_call": "fc_",
    "function_call_output": "fco_",
    "reasoning": "rs_",
}

_Json = dict[str, Any]


class _Refusal(Exception):
    """A request the real API refuses, in OpenAI's error shape."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def _headers(call: Call) -> Headers:
    return (("x-request-id", call.hex_id("req_", 32)),)


def _error(call: Call, refusal: _Refusal) -> Answer:
    error = {
        "message": refusal.message,
        "type": "invalid_request_error",
        "param": refusal.param,
        "code": refusal.code,
    }
    return json_answer({"error": error}, refusal.status, _headers(call))


def _answering(respond: Callable[[Call], Answer]) -> Callable[[Call], Answer]:
    """`respond`, with a `_Refusal` answered as an OpenAI error."""

    @functools.wraps(respond)
    def answering(call: Call) -> Answer:
        try:
            return respond(call)
        except _Refusal as refusal:
            return _error(call, refusal)

    return answering


def _state(call: Call) -> ResponsesState:
    return call.session.slot("responses", ResponsesState)


def _stored(call: Call, found: Stored | None) -> Stored:
    if found is None:
        response_id = call.params.get("response_id", "")
        raise _Refusal(404, f"Response with id '{response_id}' not found.")
    return found


def _sse(events: list[Mapping[str, Any]], call: Call) -> Answer:
    frames = [sse_event(e, event=str(e["type"])) for e in events]
    return stream_answer(frames, SSE_TYPE, _headers(call))


# --- the request -------------------------------------------------------------------------


def _flag(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _Refusal(400, f"Invalid type for '{name}': expected a boolean.", name)
    return value


def _max_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_output_tokens")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Refusal(
            400, "Invalid type for 'max_output_tokens': expected an integer.", "max_output_tokens"
        )
    if value < MIN_OUTPUT_TOKENS:
        raise _Refusal(
            400,
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
            f"{MIN_OUTPUT_TOKENS}, but got {value} instead.",
            "max_output_tokens",
            "integer_below_min_value",
        )
    return value


def _tools(body: Mapping[str, Any]) -> tuple[list[_Json], list[ToolSpec]]:
    """The tools as the response echoes them, and the function tools a reply may call."""
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise _Refusal(400, "Invalid type for 'tools': expected an array of objects.", "tools")
    echoed: list[_Json] = []
    specs: list[ToolSpec] = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            echoed.append(tool)
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _Refusal(
                400, f"Missing required parameter: 'tools[{i}].name'.", f"tools[{i}].name"
            )
        parameters = tool.get("parameters")
        schema = parameters if isinstance(parameters, dict) else {"type": "object"}
        specs.append(ToolSpec(name, schema))
        echoed.append({"type": "function", "description": None, "strict": True, **tool})
    return echoed, specs


def _forced(body: Mapping[str, Any], specs: list[ToolSpec]) -> str | None:
    """`tool_choice` as `choose_reply`'s `forced` (None: auto)."""
    choice = body.get("tool_choice")
    if choice == "required":
        return ANY_TOOL
    if choice == "none":
        return NO_TOOL
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if name not in {s.name for s in specs}:
            raise _Refusal(
                400,
                f"Tool choice 'function' named {name!r} not found in 'tools' parameter.",
                "tool_choice",
            )
        return str(name)
    return None


def _text_config(body: Mapping[str, Any]) -> _Json:
    text = body.get("text") or {}
    if not isinstance(text, dict):
        raise _Refusal(400, "Invalid type for 'text': expected an object.", "text")
    fmt = text.get("format")
    fmt = fmt or {"type": "text"}
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_schema", "json_object"):
        raise _Refusal(400, "Invalid value for 'text.format'.", "text.format")
    if fmt["type"] == "json_schema" and not isinstance(fmt.get("schema"), dict):
        raise _Refusal(
            400, "Missing required parameter: 'text.format.schema'.", "text.format.schema"
        )
    return {"format": fmt, "verbosity": text.get("verbosity") or "medium"}


def _input_items(call: Call, value: object) -> list[_Json]:
    """The request's input as stored items: a string is one user message; every item gets an
    id and a status, and a string `content` becomes one text part."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _Refusal(
            400, "Invalid type for 'input': expected a string or an array of items.", "input"
        )
    items: list[_Json] = []
    for i, raw in enumerate(value):
        kind = str(raw.get("type") or "message")
        item: _Json = {"id": raw.get("id") or "", "type": kind, **raw}
        item["type"] = kind
        if not item["id"]:
            item["id"] = call.hex_id(_ITEM_PREFIX.get(kind, "item_"), ID_LENGTH, f"input {i}")
        if kind == "message" and isinstance(raw.get("content"), str):
            assistant = raw.get("role") == "assistant"
            part: _Json = {"type": "output_text" if assistant else "input_text"}
            part["text"] = raw["content"]
            if assistant:
                part["annotations"] = []
            item["content"] = [part]
        if kind in _ITEM_PREFIX:
            item.setdefault("status", "completed")
        items.append(item)
    return items


# --- the reply -----------------------------------------------------------------------------


def _cut(text: str, max_tokens: int | None) -> tuple[str, bool]:
    if max_tokens is not None and count_tokens(text) > max_tokens:
        return "".join(split_tokens(text)[:max_tokens]), True
    return text, False


def _reply(
    call: Call, body: Mapping[str, Any], specs: list[ToolSpec], fmt: Mapping[str, Any]
) -> tuple[Reply, bool]:
    max_tokens = _max_tokens(body)
    parallel = body.get("parallel_tool_calls") is True
    reply, cut = choose_reply(call, specs, _forced(body, specs), max_tokens, parallel)
    if call.reply is not None or reply.tool_calls or fmt["type"] == "text":
        return reply, cut
    value: object
    if fmt["type"] == "json_schema":
        try:
            value = instance_for(fmt["schema"], call.rng("format"))
        except ValueError as e:
            raise BadCall(f"cannot make an instance of text.format.schema: {e}") from None
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    else:
        text = json_mode_text(call.body, call.rng("format"))
    text, cut = _cut(text, max_tokens)
    return Reply(text), cut


def _output(call: Call, reply: Reply, cut: bool) -> list[_Json]:
    items: list[_Json] = []
    if reply.text is not None:
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": reply.text}
        items.append(
            {
                "id": call.hex_id("msg_", ID_LENGTH, "output"),
                "type": "message",
                "status": "incomplete" if cut else "completed",
                "role": "assistant",
                "content": [part],
            }
        )
    for i, tool_call in enumerate(reply.tool_calls):
        items.append(
            {
                "id": call.hex_id("fc_", ID_LENGTH, i),
                "type": "function_call",
                "status": "completed",
                "arguments": arguments_json(tool_call),
                "call_id": tool_call.id or call.id("call_", 24, i),
                "name": tool_call.name,
            }
        )
    return items


def _output_tokens(output: list[_Json]) -> int:
    total = 0
    for item in output:
        if item["type"] == "message":
            total += sum(count_tokens(part["text"]) for part in item["content"])
        else:
            total += count_tokens(item["arguments"])
    return total


def _usage(input_tokens: int, output_tokens: int) -> _Json:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


# --- the endpoints ---------------------------------------------------------------------------


def _response(
    call: Call,
    body: Mapping[str, Any],
    output: list[_Json],
    cut: bool,
    usage: _Json,
    tools: list[_Json],
    text: _Json,
) -> _Json:
    status = "incomplete" if cut else "completed"

    def given(name: str, default: object) -> object:
        value = body.get(name)
        return default if value is None else value

    return {
        "id": call.hex_id("resp_", ID_LENGTH),
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": given("background", False),
        "completed_at": CREATED if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": given("metadata", {}),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": given("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": given("reasoning", {"effort": None, "summary": None}),
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": given("store", True),
        "temperature": given("temperature", 1.0),
        "text": text,
        "tool_choice": given("tool_choice", "auto"),
        "tools": tools,
        "top_p": given("top_p", 1.0),
        "truncation": given("truncation", "disabled"),
        "usage": usage,
        "user": body.get("user"),
    }


@_answering
def create(call: Call) -> Answer:
    """`POST /responses`: a made-up response, streamed or not, stored unless `store: false`."""
    body = call.json
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _Refusal(400, "Missing required parameter: 'model'.", "model")
    store = _flag(body, "store", True)
    background = _flag(body, "background", False)
    stream = _flag(body, "stream", False)
    if background and not store:
        raise _Refusal(400, "Background mode requires 'store' to be true.", "background")
    state = _state(call)
    history = 0
    previous_id = body.get("previous_response_id")
    if previous_id is not None:
        previous = state.get(previous_id) if isinstance(previous_id, str) else None
        if previous is None:
            raise _Refusal(
                400,
                f"Previous response with id '{previous_id}' not found.",
                "previous_response_id",
                "previous_response_not_found",
            )
        history = previous.inherited_tokens()
    tools, specs = _tools(body)
    text = _text_config(body)
    items = _input_items(call, body.get("input"))
    reply, cut = _reply(call, body, specs, text["format"])
    output = _output(call, reply, cut)
    context = history + prompt_tokens(body.get("input"))
    usage = _usage(context + prompt_tokens(body.get("instructions"), tools), _output_tokens(output))
    final = _response(call, body, output, cut, usage, tools, text)
    events = stream_events(final, background)
    status = "queued" if background and not stream else final["status"]
    if store:
        state.put(Stored(final, tuple(items), context, background, status))
    if stream:
        return _sse(list(events), call)
    return json_answer(
        pending(final, status) if status != final["status"] else final, headers=_headers(call)
    )


def _starting_after(query: Mapping[str, str]) -> int:
    raw = query.get("starting_after")
    if raw is None or raw == "":
        return -1
    try:
        return int(raw)
    except ValueError:
        raise _Refusal(
            400, "Invalid 'starting_after': expected an integer.", "starting_after"
        ) from None


@_answering
def retrieve(call: Call) -> Answer:
    """`GET /responses/{id}`: the stored response (a background one moves a step each time);
    with `stream=true`, its events after `starting_after`."""
    state, response_id = _state(call), call.params["response_id"]
    query = dict(call.request.query)
    if query.get("stream", "").lower() == "true":
        after = _starting_after(query)
        return _sse(_stored(call, state.finish(response_id)).replay(after), call)
    if call.request.method.upper() == "HEAD":
        return json_answer(_stored(call, state.get(response_id)).view(), headers=_headers(call))
    return json_answer(_stored(call, state.advance(response_id)).view(), headers=_headers(call))


@_answering
def delete(call: Call) -> Answer:
    """`DELETE /responses/{id}`: forgets it; a later retrieve is a 404."""
    stored = _stored(call, _state(call).delete(call.params["response_id"]))
    body = {"id": stored.id, "object": "response.deleted", "deleted": True}
    return json_answer(body, headers=_headers(call))


@_answering
def cancel(call: Call) -> Answer:
    """`POST /responses/{id}/cancel`: a queued or in-progress background response becomes
    `cancelled`; a finished one is returned as it is; one not made in the background is a 400."""
    stored = _stored(call, _state(call).cancel(call.params["response_id"]))
    if not stored.background:
        raise _Refusal(400, "Only responses created with background=true can be cancelled.")
    return json_answer(stored.view(), headers=_headers(call))


def _limit(query: Mapping[str, str]) -> int:
    low, high, default = PAGE_LIMIT
    raw = query.get("limit")
    try:
        limit = default if raw is None else int(raw)
    except ValueError:
        limit = low - 1
    if not low <= limit <= high:
        raise _Refusal(400, f"Invalid 'limit': expected an integer from {low} to {high}.", "limit")
    return limit


@_answering
def input_items(call: Call) -> Answer:
    """`GET /responses/{id}/input_items`: its own input items, a cursor page (`order`
    desc by default, `limit`, `after`)."""
    stored = _stored(call, _state(call).get(call.params["response_id"]))
    query = dict(call.request.query)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise _Refusal(400, "Invalid 'order': expected 'asc' or 'desc'.", "order")
    limit = _limit(query)
    items = list(stored.input_items if order == "asc" else reversed(stored.input_items))
    after = query.get("after")
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    body = {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }
    return json_answer(body, headers=_headers(call))


_PREFIX = r"(?:/v1|/openai/v1|/openai|/v1beta/openai)?/responses"
_ONE = _PREFIX + r"/(?P<response_id>[^/]+)"

ROUTES: tuple[Route, ...] = (
    Route("POST", re.compile(_PREFIX), create, "openai"),
    Route("GET", re.compile(_ONE), retrieve, "openai"),
    Route("DELETE", re.compile(_ONE), delete, "openai"),
    Route("POST", re.compile(_ONE + "/cancel"), cancel, "openai"),
    Route("GET", re.compile(_ONE + "/input_items"), input_items, "openai"),
)
