"""Synthetic answers in Google Gemini's native shape (Developer API and Vertex AI).

Owns the Gemini routes (`models/{model}:generateContent`, `:streamGenerateContent`,
`:countTokens`, `:embedContent`, `:batchEmbedContents`, and Vertex's text-embedding
`:predict`, under `/{version}/`, optionally behind Vertex's `projects/{p}/locations/{l}/` and
`publishers/{pub}/`; `tunedModels/{m}` and Vertex `endpoints/{e}` stand in for `models/{m}`)
and the bodies they answer with (PROTOCOLS.md §6). Does not own the made-up text, tool
arguments or vectors themselves (`base`, `schema`, `embeddings`) or stream framing (`sse`).

Wire facts kept here: google-genai refuses `event:` lines, `[DONE]` and any success status
but 200; a stream (`alt=sse`) sends few, large chunks, each a full GenerateContentResponse
with only the new text and cumulative `usageMetadata`, `finishReason` on the last; without
`alt=sse` the same objects go out as one JSON array (`[`, the objects `,`-separated, `]`).
Function-call `args` are an object. Request fields are read in proto3 JSON's two spellings
(`maxOutputTokens` and `max_output_tokens`): the SDK itself sends `parameters_json_schema`.

Decisions where the references are silent: a function call carries an `id` only when a
canned reply gives one (Gemini 2.x sends none); candidate `i > 0` is made up from the
fingerprint suffixed with `:candidate{i}`; JSON mode is cut at `maxOutputTokens` like text
(the JSON may then be incomplete, as upstream); an inline file (`inlineData`) counts as the
tokens of its mime type, not of its base64 data; embedded text is the content's text parts
joined with a newline.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from replay.providers import embeddings
from replay.providers.base import (
    ANY_TOOL,
    JSON_TYPE,
    NO_TOOL,
    SSE_TYPE,
    Answer,
    BadCall,
    Call,
    Reply,
    Route,
    ToolCall,
    ToolSpec,
    choose_reply,
    json_answer,
    prompt_tokens,
    stream_answer,
)
from replay.providers.schema import instance_for
from replay.providers.sse import json_bytes, sse_event
from replay.providers.structured import json_mode_text
from replay.providers.text import count_tokens, split_tokens

MAX_CANDIDATES = 8
"""The largest `candidateCount` Gemini accepts."""

STREAM_CHUNKS = (2, 4)
"""A made-up stream has between this many chunks (fewer when the text is shorter)."""

_Json = dict[str, Any]


def _field(obj: Mapping[str, Any], name: str) -> Any:
    """A proto3 JSON field under its lowerCamelCase name or its original snake_case one."""
    if name in obj:
        return obj[name]
    return obj.get(re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower())


def _object(value: object, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadCall(f"{what} must be a JSON object")
    return value


def _list(value: object, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadCall(f"{what} must be a JSON array")
    return value


def _int(value: object, what: str, low: int, high: int | None = None) -> int | None:
    """An int32 field (a number or its decimal string) within [low, high], or None."""
    if value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadCall(f"{what} must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadCall(f"{what} must be {bound}, not {value}")
    return value


# --- prompt tokens -------------------------------------------------------------------------


def _countable(value: object) -> object:
    """`value` without the base64 data of inline files (counted by their mime type)."""
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            if key in ("inlineData", "inline_data") and isinstance(item, Mapping):
                item = {k: v for k, v in item.items() if k != "data"}
            out[key] = _countable(item)
        return out
    if isinstance(value, list):
        return [_countable(item) for item in value]
    return value


def _prompt_count(body: Mapping[str, Any]) -> int:
    """The prompt tokens of a generate (or countTokens) body: contents, system instruction
    and tools; a generate call and a countTokens call of the same contents agree."""
    return prompt_tokens(
        _countable(_field(body, "contents")),
        _countable(_field(body, "systemInstruction")),
        _field(body, "tools"),
    )


def _contents(body: Mapping[str, Any]) -> list[Any]:
    contents = _list(_field(body, "contents"), "contents")
    if not contents:
        raise BadCall("contents is not specified")
    return contents


def _usage(prompt: int, output: int) -> _Json:
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }


# --- generateContent -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ask:
    """What a generate request asks for, read and checked once."""

    prompt: int
    tools: list[ToolSpec]
    forced: str | None
    max_tokens: int | None
    candidates: int
    mime: str
    schema: Mapping[str, Any] | None


def _ask(call: Call) -> _Ask:
    body = call.json
    _contents(body)
    config = _object(_field(body, "generationConfig"), "generationConfig")
    forced, tools = _forced(body, _tools(body))
    schema = _field(config, "responseJsonSchema") or _field(config, "responseSchema")
    return _Ask(
        prompt=_prompt_count(body),
        tools=tools,
        forced=forced,
        max_tokens=_int(_field(config, "maxOutputTokens"), "maxOutputTokens", 1),
        candidates=_int(_field(config, "candidateCount"), "candidateCount", 1, MAX_CANDIDATES) or 1,
        mime=str(_field(config, "responseMimeType") or "text/plain").lower(),
        schema=_object(schema, "responseSchema") if schema is not None else None,
    )


def _tools(body: Mapping[str, Any]) -> list[ToolSpec]:
    """The function declarations the request offers (other tools, such as search, are not
    functions the model can call here)."""
    specs: list[ToolSpec] = []
    for tool in _list(_field(body, "tools"), "tools"):
        tool = _object(tool, "a tool")
        for decl in _list(_field(tool, "functionDeclarations"), "functionDeclarations"):
            decl = _object(decl, "a function declaration")
            name = decl.get("name")
            if not isinstance(name, str) or not name:
                raise BadCall("a function declaration needs a name")
            schema = _field(decl, "parametersJsonSchema") or _field(decl, "parameters")
            specs.append(
                ToolSpec(name, _object(schema, f"{name} parameters") or {"type": "object"})
            )
    return specs


def _forced(body: Mapping[str, Any], tools: list[ToolSpec]) -> tuple[str | None, list[ToolSpec]]:
    """`ANY_TOOL` and the functions it may pick when `functionCallingConfig.mode` is ANY
    (those of `allowedFunctionNames` when given); `NO_TOOL` for NONE; None otherwise (AUTO,
    VALIDATED or no config: the model may call a tool)."""
    tool_config = _object(_field(body, "toolConfig"), "toolConfig")
    config = _object(_field(tool_config, "functionCallingConfig"), "functionCallingConfig")
    mode = str(_field(config, "mode") or "").upper()
    if mode == "NONE":
        return NO_TOOL, tools
    if mode != "ANY" or not tools:
        return None, tools
    allowed = _list(_field(config, "allowedFunctionNames"), "allowedFunctionNames")
    if not allowed:
        return ANY_TOOL, tools
    chosen = [t for t in tools if t.name in allowed]
    if not chosen:
        raise BadCall(f"allowedFunctionNames {allowed!r} names no declared function")
    return ANY_TOOL, chosen


def _cut(text: str, max_tokens: int | None) -> tuple[str, bool]:
    if max_tokens is not None and count_tokens(text) > max_tokens:
        return "".join(split_tokens(text)[:max_tokens]), True
    return text, False


def _candidate_call(call: Call, index: int) -> Call:
    """The call candidate `index` is made up from (candidate 0: the call itself)."""
    return call if index == 0 else replace(call, fingerprint=f"{call.fingerprint}:candidate{index}")


def _reply(call: Call, ask: _Ask, index: int) -> tuple[Reply, bool]:
    """Candidate `index`'s reply and whether it was cut at `maxOutputTokens`."""
    sub = _candidate_call(call, index)
    reply, cut = choose_reply(sub, ask.tools, ask.forced, ask.max_tokens)
    if call.reply is None and not reply.tool_calls:
        structured = _structured(sub, ask)
        if structured is not None:
            text, cut = _cut(structured, ask.max_tokens)
            return Reply(text), cut
    return reply, cut


def _structured(call: Call, ask: _Ask) -> str | None:
    """The text of JSON mode (an instance of the response schema) or enum mode (one of the
    schema's values); None for plain text."""
    rng = call.rng("structured")
    if ask.mime == "text/x.enum" and ask.schema and ask.schema.get("enum"):
        return str(rng.choice(list(ask.schema["enum"])))
    if ask.mime != "application/json":
        return None
    if ask.schema is None:
        return json_mode_text(call.body, rng)
    try:
        value = instance_for(ask.schema, rng)
    except ValueError as e:
        raise BadCall(f"cannot make a response for responseSchema: {e}") from None
    return json.dumps(value, ensure_ascii=False)


def _function_call(call: Call, tool_call: ToolCall, index: int) -> _Json:
    args = tool_call.arguments
    if isinstance(args, str):
        with contextlib.suppress(ValueError):
            args = json.loads(args)
    if not isinstance(args, dict):
        raise BadCall(f"the arguments of function call {tool_call.name!r} must be an object")
    out: _Json = {"name": tool_call.name, "args": args}
    canned = call.reply.tool_calls if call.reply is not None else ()
    if index < len(canned) and canned[index].id:
        out["id"] = canned[index].id
    return out


def _call_tokens(fc: Mapping[str, Any]) -> int:
    args = json.dumps(fc["args"], separators=(",", ":"), ensure_ascii=False)
    return count_tokens(f"{fc['name']} {args}")


@dataclass(frozen=True, slots=True)
class _Candidate:
    text: str | None
    calls: list[_Json]
    finish: str

    @property
    def tokens(self) -> int:
        return count_tokens(self.text or "") + sum(_call_tokens(c) for c in self.calls)


def _candidates(call: Call, ask: _Ask) -> list[_Candidate]:
    out = []
    for index in range(ask.candidates):
        reply, cut = _reply(call, ask, index)
        calls = [_function_call(call, c, i) for i, c in enumerate(reply.tool_calls)]
        out.append(_Candidate(reply.text, calls, "MAX_TOKENS" if cut else "STOP"))
    return out


def _parts(text: str | None, calls: list[_Json]) -> list[_Json]:
    parts: list[_Json] = [{"text": text}] if text else []
    parts.extend({"functionCall": c} for c in calls)
    return parts or [{"text": ""}]


def _envelope(call: Call, candidates: list[_Json], prompt: int, output: int) -> _Json:
    return {
        "candidates": candidates,
        "usageMetadata": _usage(prompt, output),
        "modelVersion": call.model or "gemini",
        "responseId": call.id("", 22, "response"),
    }


def generate(call: Call) -> Answer:
    """`:generateContent`: one GenerateContentResponse."""
    ask = _ask(call)
    made = _candidates(call, ask)
    candidates = [
        {
            "content": {"role": "model", "parts": _parts(c.text, c.calls)},
            "finishReason": c.finish,
            "index": i,
        }
        for i, c in enumerate(made)
    ]
    return json_answer(_envelope(call, candidates, ask.prompt, sum(c.tokens for c in made)))


def _groups(pieces: list[str], count: int) -> list[str]:
    """`pieces` joined into `count` consecutive runs of near-equal length (some may be "")."""
    bounds = [round(k * len(pieces) / count) for k in range(count + 1)]
    return ["".join(pieces[bounds[k] : bounds[k + 1]]) for k in range(count)]


def _stream_chunks(call: Call) -> list[_Json]:
    """The GenerateContentResponses of a stream: each candidate's text spread over 2-4
    chunks, its function calls and finish reason in the last; usage cumulative."""
    ask = _ask(call)
    made = _candidates(call, ask)
    pieces = [split_tokens(c.text) if c.text else [] for c in made]
    wanted = call.rng("chunks").randint(*STREAM_CHUNKS)
    count = max(1, min(wanted, max(map(len, pieces))))
    runs = [_groups(p, count) for p in pieces]
    chunks: list[_Json] = []
    sent = 0
    for k in range(count):
        last = k == count - 1
        candidates: list[_Json] = []
        for i, c in enumerate(made):
            text = runs[i][k]
            if not (text or last):
                continue
            calls = c.calls if last else []
            sent += count_tokens(text) + sum(_call_tokens(fc) for fc in calls)
            entry: _Json = {"content": {"role": "model", "parts": _parts(text, calls)}}
            if last:
                entry["finishReason"] = c.finish
            entry["index"] = i
            candidates.append(entry)
        chunks.append(_envelope(call, candidates, ask.prompt, sent))
    return chunks


def stream_generate(call: Call) -> Answer:
    """`:streamGenerateContent`: SSE with `alt=sse` (what the SDK asks for), else one JSON
    array streamed object by object."""
    chunks = _stream_chunks(call)
    if ("alt", "sse") in call.request.query:
        return stream_answer([sse_event(c) for c in chunks], SSE_TYPE)
    frames = [b"["]
    for i, chunk in enumerate(chunks):
        data = json_bytes(chunk)
        frames.append(data if i == 0 else b"," + data)
    frames.append(b"]")
    return stream_answer(frames, JSON_TYPE)


def count(call: Call) -> Answer:
    """`:countTokens`: the prompt tokens a generate call of the same body would report."""
    body: Mapping[str, Any] = call.json
    nested = _field(body, "generateContentRequest")
    if nested is not None:
        body = _object(nested, "generateContentRequest")
    _contents(body)
    total = _prompt_count(body)
    return json_answer(
        {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}
    )


# --- embeddings ----------------------------------------------------------------------------


def _embed_text(request: Mapping[str, Any]) -> str:
    content = _field(request, "content")
    if not isinstance(content, Mapping):
        raise BadCall("content is not specified")
    parts = _list(_field(content, "parts"), "content.parts")
    texts = [p["text"] for p in parts if isinstance(p, Mapping) and isinstance(p.get("text"), str)]
    return "\n".join(texts)


def _dimensions(call: Call, requested: object) -> int:
    try:
        return embeddings.dimensions_for(call.model, requested)
    except ValueError as e:
        raise BadCall(f"outputDimensionality: {e}") from None


def _embedding(call: Call, request: Mapping[str, Any]) -> _Json:
    """One ContentEmbedding; `outputDimensionality` sits on the request (Developer API) or
    in its `embedContentConfig` (Vertex)."""
    config = _object(_field(request, "embedContentConfig"), "embedContentConfig")
    requested = _field(request, "outputDimensionality")
    if requested is None:
        requested = _field(config, "outputDimensionality")
    dims = _dimensions(call, _int(requested, "outputDimensionality", 1))
    return {"values": embeddings.vector(call.model, _embed_text(request), dims)}


def embed(call: Call) -> Answer:
    """`:embedContent`: `{"embedding": {"values": [...]}}`."""
    return json_answer({"embedding": _embedding(call, call.json)})


def batch_embed(call: Call) -> Answer:
    """`:batchEmbedContents` (what google-genai calls even for one text)."""
    requests = _list(_field(call.json, "requests"), "requests")
    if not requests:
        raise BadCall("requests is not specified")
    return json_answer(
        {"embeddings": [_embedding(call, _object(r, "a request")) for r in requests]}
    )


def predict(call: Call) -> Answer:
    """Vertex `:predict` of a text-embedding model (`instances[].content`); other
    predictions (images, ...) are not made up."""
    body = call.json
    instances = _list(_field(body, "instances"), "instances")
    params = _object(_field(body, "parameters"), "parameters")
    dims = _dimensions(call, _int(_field(params, "outputDimensionality"), "dimensionality", 1))
    predictions = []
    for instance in instances:
        text = _object(instance, "an instance").get("content")
        if not isinstance(text, str):
            raise BadCall("only text-embedding predictions (instances[].content) are supported")
        values = embeddings.vector(call.model, text, dims)
        stats = {"token_count": count_tokens(text), "truncated": False}
        predictions.append({"embeddings": {"values": values, "statistics": stats}})
    if not predictions:
        raise BadCall("instances is not specified")
    return json_answer({"predictions": predictions})


# --- routes --------------------------------------------------------------------------------

_PREFIX = (
    r"/(?P<version>v[0-9]+(?:(?:alpha|beta)[0-9]*)?)/"
    r"(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/[^/]+/)?"
    r"(?:models|tunedModels|endpoints)/(?P<model>[^/:]+):"
)


def _route(method: str, respond: Callable[[Call], Answer], costly: bool = False) -> Route:
    return Route("POST", re.compile(_PREFIX + method), respond, "gemini", costly)


ROUTES: tuple[Route, ...] = (
    _route("generateContent", generate),
    _route("streamGenerateContent", stream_generate),
    _route("countTokens", count),
    _route("embedContent", embed, costly=True),
    _route("batchEmbedContents", batch_embed, costly=True),
    _route("predict", predict, costly=True),
)
