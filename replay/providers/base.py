"""The contract between the engine and the synthetic responders, and what they share.

Owns the values a responder takes and gives (`Call` in, `Answer` out), the reply a model
"gives" (`Reply`: text and/or tool calls, made up here or canned by a rule), the choice
between a text and a tool call (`choose_reply`, the tool policy below), deterministic ids,
and the per-run `Session` where stateful surfaces (the Responses API) keep what they must
remember.

The tool policy (SPEC "Agents and structured output"), for a request that offers tools:
a tool choice that forbids them (`NO_TOOL`) gives text; one that forces a tool gives a call
of it (`ANY_TOOL`: one chosen by the seed, preferring, once a tool result follows, a tool
not called yet in the conversation, so a forced agent loop moves on); otherwise (`auto`) the
answer calls one offered tool chosen by the seed (two distinct ones when the request allows
parallel calls) as long as no tool result follows the last user message, and answers in
text once one does, so an agent runs one tool round and ends. `Call.synthetic_tools`
`forced` (the option `replay_synthetic_tools`) turns the auto calls off. A text answer is
JSON when the prompt asks for JSON (`structured.prompt_json`), else made-up prose.

Determinism: everything made up for a call is seeded from its fingerprint and occurrence
(`Call.rng`), never from the clock or `random`'s global state; `created` timestamps are the
constant `CREATED`. A responder is a plain function `Call -> Answer`; it may raise
`BadCall` for a request it cannot make sense of (the caller answers 400 in the provider's
shape). Framing lives in `sse.py`, pacing in the engine and chunk server.
"""

from __future__ import annotations

import json
import random
import re
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from replay.conversation import called_tools, has_tool_result
from replay.hosts import model_of
from replay.models import Headers, Request
from replay.providers.schema import instance_for
from replay.providers.sse import json_bytes
from replay.providers.structured import json_text, prompt_json
from replay.providers.text import count_tokens, rng_for, split_tokens, synthetic_text

CREATED = 1767225600
"""2026-01-01T00:00:00Z: the `created` time of every synthetic answer (deterministic)."""

DEFAULT_WORDS = (12, 40)
"""Made-up answers have between this many words (inclusive), chosen by the call's rng."""

JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream; charset=utf-8"
NDJSON_TYPE = "application/x-ndjson"

_ALNUM = string.ascii_letters + string.digits
_T = TypeVar("_T")


class BadCall(ValueError):
    """A request a responder cannot answer as the provider would (a 400 in its shape)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model makes: a tool's name and its arguments (a JSON value, normally an
    object). `arguments=None` in a canned reply means "make them up from the schema"."""

    name: str
    arguments: object = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What the model says: a text, tool calls, or both (text first)."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the request offers: its name and its parameters' JSON Schema."""

    name: str
    schema: Mapping[str, Any]


ANY_TOOL = "*"
"""`forced` value of `choose_reply`: the request forces a tool call, any tool."""
NO_TOOL = ""
"""`forced` value of `choose_reply`: the request forbids tool calls (`tool_choice` none)."""

TOOLS_AUTO = "auto"
"""`Call.synthetic_tools`: call an offered tool unless the request forbids it (the default)."""
TOOLS_FORCED = "forced"
"""`Call.synthetic_tools`: call a tool only when the request forces one."""


class Session:
    """Per-run state of stateful surfaces, owned by the engine, shared by all calls.

    Each responder keeps its state in its own slot (`slot(name, factory)`); `lock` guards
    the slots' contents when a responder mutates them (calls come from the proxy's event
    loop and from the engine's worker threads at once).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._slots: dict[str, object] = {}

    def slot(self, name: str, factory: Callable[[], _T]) -> _T:
        with self.lock:
            value = self._slots.get(name)
            if value is None:
                value = self._slots[name] = factory()
            return value  # type: ignore[return-value]


_UNPARSED: Any = object()


@dataclass(frozen=True)
class Call:
    """One request to answer, as a responder sees it."""

    request: Request
    """The request; its `body` already content-decoded."""
    fingerprint: str
    occurrence: int
    reply: Reply | None = None
    """A reply canned by a rule; None: the responder makes one up."""
    session: Session = field(default_factory=Session)
    params: Mapping[str, str] = field(default_factory=dict)
    """Named groups of the route's path pattern (model, deployment, response id, ...)."""
    parsed: Any = field(default=_UNPARSED, repr=False, compare=False)
    """The JSON body already parsed by the caller (`Prepared.body`): not parsed again."""
    synthetic_tools: str = TOOLS_AUTO
    """`TOOLS_AUTO` or `TOOLS_FORCED`: when a made-up answer calls a tool (the policy above)."""

    @cached_property
    def body(self) -> Any:
        """The JSON body (any JSON value), or None when there is none or it is not JSON.
        Parsed once per request (treat it as read-only)."""
        if self.parsed is not _UNPARSED:
            return self.parsed
        return _parse_json(self.request.body)

    @property
    def json(self) -> dict[str, Any]:
        """The JSON body as an object; `BadCall` if it is not one."""
        body = self.body
        if not isinstance(body, dict):
            raise BadCall("the request body must be a JSON object")
        return body

    @property
    def model(self) -> str | None:
        """The body's `model`, else the path's (the route's `model` group: Gemini
        `models/X:`, an Azure deployment)."""
        body = self.body
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            return str(body["model"])
        if "model" in self.params:
            return self.params["model"]
        return model_of(self.request, b"")

    def rng(self, *purpose: str | int) -> random.Random:
        """A Random for one purpose of this call (text, ids, vectors...), stable per call."""
        return rng_for(self.fingerprint, self.occurrence, *purpose)

    def id(self, prefix: str, length: int = 24, purpose: str | int = "") -> str:
        """A deterministic id such as `chatcmpl-...`: `prefix` + `length` alphanumerics."""
        rng = self.rng("id", prefix, purpose)
        return prefix + "".join(rng.choice(_ALNUM) for _ in range(length))

    def hex_id(self, prefix: str, length: int = 32, purpose: str | int = "") -> str:
        """Like `id`, lower-case hex (`req_<32 hex>`, `resp_<48 hex>`)."""
        rng = self.rng("hex", prefix, purpose)
        return prefix + "".join(rng.choice("0123456789abcdef") for _ in range(length))


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


@dataclass(frozen=True, slots=True)
class Answer:
    """A made-up response: status, headers, and the body as frames.

    `stream`: the frames are paced one by one (each its own HTTP chunk); else the body is
    `b"".join(frames)` sent at once with a content-length. Headers carry no framing
    (`content-length`, `transfer-encoding`): the sender adds it.
    """

    status: int
    headers: Headers
    frames: tuple[bytes, ...]
    stream: bool = False

    @property
    def body(self) -> bytes:
        return b"".join(self.frames)


def json_answer(obj: object, status: int = 200, headers: Headers = ()) -> Answer:
    """A non-streamed JSON answer."""
    return Answer(status, (("content-type", JSON_TYPE), *headers), (json_bytes(obj),))


def stream_answer(frames: list[bytes], content_type: str, headers: Headers = ()) -> Answer:
    """A streamed answer of pre-framed events (`sse.sse_event`, `sse.ndjson_line`)."""
    return Answer(200, (("content-type", content_type), *headers), tuple(frames), stream=True)


def made_up_text(call: Call, max_tokens: int | None = None) -> tuple[str, bool]:
    """The call's made-up text and whether it was cut at `max_tokens` (finish: length):
    JSON when the prompt asks for it (`structured.prompt_json`), else prose."""
    asked = prompt_json(call.body)
    if asked is not None:
        text = json_text(asked, call.rng("json"))
    else:
        rng = call.rng("text")
        text = synthetic_text(rng, rng.randint(*DEFAULT_WORDS))
    if max_tokens is not None and max_tokens >= 0 and count_tokens(text) > max_tokens:
        return "".join(split_tokens(text)[:max_tokens]), True
    return text, False


def choose_reply(
    call: Call,
    tools: list[ToolSpec],
    forced: str | None,
    max_tokens: int | None = None,
    parallel: bool = False,
) -> tuple[Reply, bool]:
    """The reply to give, and whether its text was cut at `max_tokens`.

    A reply canned by a rule wins; its tool calls without arguments get arguments made from
    the named tool's schema (`{}` when the request does not offer that tool), and ids are
    filled in. Otherwise the tool policy of the module docstring: `forced` names a tool,
    is `ANY_TOOL`, `NO_TOOL`, or None (auto); `parallel` says the request allows parallel
    tool calls. Tool calls get arguments valid against their schema; a text is made up.
    """
    by_name = {t.name: t for t in tools}
    if call.reply is not None:
        calls = tuple(
            _complete(call, c, by_name.get(c.name), i) for i, c in enumerate(call.reply.tool_calls)
        )
        return Reply(call.reply.text, calls), False
    chosen = _tools_to_call(call, tools, forced, parallel)
    if chosen:
        return Reply(
            None, tuple(_complete(call, ToolCall(s.name), s, i) for i, s in enumerate(chosen))
        ), False
    text, cut = made_up_text(call, max_tokens)
    return Reply(text), cut


def _tools_to_call(
    call: Call, tools: list[ToolSpec], forced: str | None, parallel: bool
) -> list[ToolSpec]:
    """The tools the reply calls (none: it answers in text)."""
    if not tools or forced == NO_TOOL:
        return []
    rng = call.rng("tool")
    if forced == ANY_TOOL:
        pool = tools
        if has_tool_result(call.body):
            called = called_tools(call.body)
            pool = [t for t in tools if t.name not in called] or tools
        return [pool[rng.randrange(len(pool))]]
    if forced is not None:
        for spec in tools:
            if spec.name == forced:
                return [spec]
        raise BadCall(f"tool_choice names {forced!r}, which is not among the tools")
    if call.synthetic_tools != TOOLS_AUTO or has_tool_result(call.body):
        return []
    first = rng.randrange(len(tools))
    if not parallel or len(tools) < 2:
        return [tools[first]]
    second = (first + 1 + rng.randrange(len(tools) - 1)) % len(tools)
    return [tools[first], tools[second]]


def _complete(call: Call, tool_call: ToolCall, spec: ToolSpec | None, index: int) -> ToolCall:
    arguments = tool_call.arguments
    if arguments is None:
        schema = spec.schema if spec is not None else {"type": "object"}
        try:
            arguments = instance_for(schema, call.rng("arguments", index))
        except ValueError as e:
            raise BadCall(f"cannot make arguments for tool {tool_call.name!r}: {e}") from None
    return ToolCall(tool_call.name, arguments, tool_call.id or call.id("call_", 24, index))


def arguments_json(tool_call: ToolCall) -> str:
    """The arguments as the JSON string OpenAI-style wires carry."""
    return json.dumps(tool_call.arguments, separators=(",", ":"), ensure_ascii=False)


def split_json(text: str, pieces: int = 3) -> list[str]:
    """`text` cut into up to `pieces` fragments (streamed tool arguments); joins back."""
    if not text:
        return [""]
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def prompt_text(value: object) -> str:
    """Every string inside a request's prompt part (messages, input, contents...), joined:
    what prompt token counts are computed from. Keys are skipped, values walked."""
    out: list[str] = []

    def walk(v: object) -> None:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, Mapping):
            for item in v.values():
                walk(item)
        elif isinstance(v, list | tuple):
            for item in v:
                walk(item)

    walk(value)
    return "\n".join(out)


_DATA_URL = re.compile(r"^data:[^;,]*;base64,")


def prompt_tokens(*parts: object) -> int:
    """The approximate token count of a prompt (see `text.count_tokens`); inline base64
    images count as one token each rather than thousands."""
    total = 0
    for part in parts:
        text = prompt_text(part)
        total += sum(
            1 if _DATA_URL.match(line) else count_tokens(line) for line in text.split("\n")
        )
    return total


Responder = Callable[[Call], Answer]


@dataclass(frozen=True, slots=True)
class Route:
    """An endpoint a responder answers: method, a regex over the request path (matched in
    full; its named groups become `Call.params`), and the provider whose shape errors take
    (`openai`, `anthropic`, `gemini`, `ollama`). `costly`: an answer that can take a while
    to make (embedding vectors of a long batch), made off the event loop."""

    method: str
    path: re.Pattern[str]
    respond: Responder
    provider: str
    costly: bool = False
