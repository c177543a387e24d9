"""Ollama's native API, made up: `/api/chat`, `/api/generate`, embeddings, model management.

Owns the answers of PROTOCOLS.md §5 in the shapes the pydantic-validated ollama-python client
accepts: NDJSON streams (`stream` defaults to true when absent) whose every line carries
`message.role` (chat), metrics in nanoseconds, tool-call `arguments` as objects, `model_info`
in `/api/show`. Does not own the `/v1/...` OpenAI-compatible paths (the OpenAI modules answer
those) nor framing bytes (`sse.ndjson_line`).

Timing is made up but deterministic and self-consistent: durations come from the call's rng
(per-token rates in a plausible range), `created_at` is `CREATED` plus the time at which each
line "was written", and `eval_count` is the number of pieces streamed (thinking and content,
plus the tokens of any tool call). `options.num_predict` caps the thinking and the content
together, as on a real server, and ends the answer with `done_reason: "length"`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from replay.providers.base import (
    CREATED,
    NDJSON_TYPE,
    Answer,
    BadCall,
    Call,
    Responder,
    Route,
    ToolCall,
    ToolSpec,
    arguments_json,
    choose_reply,
    json_answer,
    prompt_tokens,
    stream_answer,
)
from replay.providers.embeddings import dimensions_for, vector
from replay.providers.schema import instance_for
from replay.providers.sse import ndjson_line
from replay.providers.structured import json_mode_text
from replay.providers.text import count_tokens, split_tokens, synthetic_text

VERSION = "0.12.6"
"""What `GET /api/version` reports."""

RUNNING = b"Ollama is running"
_THINK_ON = (True, "true", "high", "medium", "low")
_THINK_OFF = (None, False, "false")
_NS = 1_000_000_000


# ---------------------------------------------------------------------------- timing


def _rfc3339(offset_ns: int) -> str:
    """`CREATED` plus `offset_ns`, as Go's RFC3339Nano writes it (trailing zeros trimmed)."""
    seconds, frac = divmod(offset_ns, _NS)
    base = datetime.fromtimestamp(CREATED + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


@dataclass(frozen=True, slots=True)
class _Timing:
    """Made-up durations (ns) of one answer: load, prompt evaluation, then one token at a
    time at `per_token`, then a little overhead."""

    prompt_count: int
    eval_count: int
    load: int
    prompt_eval: int
    per_token: int
    overhead: int

    def at(self, index: int) -> str:
        """`created_at` of the line carrying piece `index` (0-based)."""
        return _rfc3339(self.load + self.prompt_eval + (index + 1) * self.per_token)

    @property
    def total(self) -> int:
        return self.load + self.prompt_eval + self.eval_count * self.per_token + self.overhead

    @property
    def done_at(self) -> str:
        return _rfc3339(self.total)

    def metrics(self) -> dict[str, int]:
        """The final object's metrics; zeros left out, as the server's `omitempty` does."""
        metrics = {
            "total_duration": self.total,
            "load_duration": self.load,
            "prompt_eval_count": self.prompt_count,
            "prompt_eval_duration": self.prompt_eval,
            "eval_count": self.eval_count,
            "eval_duration": self.eval_count * self.per_token,
        }
        return {k: v for k, v in metrics.items() if v}


def _timing(call: Call, prompt_count: int, eval_count: int) -> _Timing:
    rng = call.rng("durations")
    load = rng.randint(2_000_000, 40_000_000)  # a warm model: milliseconds
    per_prompt_token = rng.randint(150_000, 900_000)
    per_token = rng.randint(12_000_000, 40_000_000)  # 25 to 80 tokens a second
    overhead = rng.randint(300_000, 3_000_000)
    return _Timing(
        prompt_count, eval_count, load, prompt_count * per_prompt_token, per_token, overhead
    )


# ---------------------------------------------------------------------------- request fields


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadCall("model is required")
    return model


def _streams(body: Mapping[str, Any]) -> bool:
    stream = body.get("stream")
    if stream is None:
        return True  # the server's default, unlike every other provider's
    if not isinstance(stream, bool):
        raise BadCall(f"stream must be a boolean, not {stream!r}")
    return stream


def _thinks(body: Mapping[str, Any]) -> bool:
    think = body.get("think")
    if think in _THINK_OFF:
        return False
    if think in _THINK_ON:
        return True
    raise BadCall('think must be a boolean or one of "high", "medium", "low"')


def _num_predict(body: Mapping[str, Any]) -> int | None:
    """`options.num_predict` when it limits the answer (a negative value means no limit)."""
    options = body.get("options")
    if options is None:
        return None
    if not isinstance(options, Mapping):
        raise BadCall("options must be an object")
    limit = options.get("num_predict")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit != int(limit):
        raise BadCall(f"options.num_predict must be an integer, not {limit!r}")
    return int(limit) if limit >= 0 else None


def _unloads(body: Mapping[str, Any]) -> bool:
    """`keep_alive: 0` (or `"0"`, `"0s"`...) on an empty request unloads the model."""
    keep = body.get("keep_alive")
    if isinstance(keep, bool) or keep is None:
        return False
    if isinstance(keep, int | float):
        return keep == 0
    return isinstance(keep, str) and re.fullmatch(r"0+(\.0*)?(ns|us|ms|s|m|h)?", keep) is not None


def _tools(body: Mapping[str, Any]) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise BadCall("tools must be a list")
    for tool in tools:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            params = function.get("parameters")
            specs.append(ToolSpec(function["name"], params if isinstance(params, Mapping) else {}))
    return specs


def _without_images(value: object) -> tuple[object, int]:
    """`value` with every `images` list dropped, and how many images there were: an image
    counts as one prompt token, not as the thousands its base64 would."""
    if isinstance(value, Mapping):
        images = value.get("images")
        count = len(images) if isinstance(images, list) else 0
        kept: dict[str, object] = {}
        for key, item in value.items():
            if key != "images":
                kept[key], inner = _without_images(item)
                count += inner
        return kept, count
    if isinstance(value, list):
        pairs = [_without_images(item) for item in value]
        return [p[0] for p in pairs], sum(p[1] for p in pairs)
    return value, 0


def _prompt_count(*parts: object) -> int:
    stripped, images = _without_images(list(parts))
    return prompt_tokens(stripped) + images


# ---------------------------------------------------------------------------- the answer


@dataclass(frozen=True, slots=True)
class _Output:
    """What the model "generates": thinking and content as stream pieces, tool calls."""

    thinking: tuple[str, ...]
    content: tuple[str, ...]
    tool_calls: tuple[ToolCall, ...]
    done_reason: str

    @property
    def eval_count(self) -> int:
        calls = sum(count_tokens(c.name) + count_tokens(arguments_json(c)) for c in self.tool_calls)
        return len(self.thinking) + len(self.content) + calls


def _formatted(call: Call, fmt: object) -> str | None:
    """The content `format` asks for (JSON text), or None when it asks for none."""
    if fmt is None or fmt == "":
        return None
    rng = call.rng("format")
    if fmt == "json":
        return json_mode_text(call.body, rng)
    if isinstance(fmt, Mapping):
        try:
            value = instance_for(fmt, rng)
        except ValueError as e:
            raise BadCall(f"invalid JSON schema in format: {e}") from None
    else:
        raise BadCall(f'format must be "json" or a JSON schema, not {fmt!r}')
    return json.dumps(value, ensure_ascii=False)


def _cut(pieces: list[str], budget: int | None) -> tuple[tuple[str, ...], bool]:
    if budget is not None and len(pieces) > budget:
        return tuple(pieces[:budget]), True
    return tuple(pieces), False


def _output(call: Call, body: Mapping[str, Any], tools: list[ToolSpec] | None) -> _Output:
    """The answer's pieces; `tools=None` (generate) keeps only a canned reply's text."""
    budget = _num_predict(body)
    thinking: tuple[str, ...] = ()
    cut = False
    if _thinks(body):
        rng = call.rng("thinking")
        thinking, cut = _cut(split_tokens(synthetic_text(rng, rng.randint(8, 24))), budget)
    left = None if budget is None else budget - len(thinking)
    tool_calls: tuple[ToolCall, ...] = ()
    reply, cut_content = choose_reply(call, tools or [], None, left)
    content = tuple(split_tokens(reply.text or ""))
    if tools is not None:
        tool_calls = tuple(_object_arguments(c) for c in reply.tool_calls)
    if call.reply is None and not tool_calls:
        formatted = _formatted(call, body.get("format"))
        if formatted is not None:
            content, cut_content = _cut(split_tokens(formatted), left)
    return _Output(thinking, content, tool_calls, "length" if cut or cut_content else "stop")


def _object_arguments(tool_call: ToolCall) -> ToolCall:
    """Ollama's tool-call arguments are an object (a string fails the client's validation);
    a canned JSON text of an object is accepted and parsed."""
    arguments = tool_call.arguments
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    if not isinstance(arguments, Mapping):
        raise BadCall(f"tool call {tool_call.name!r}: Ollama's arguments must be a JSON object")
    return ToolCall(tool_call.name, dict(arguments), tool_call.id)


def _tool_calls_json(calls: tuple[ToolCall, ...]) -> list[dict[str, object]]:
    return [
        {"id": c.id, "function": {"index": i, "name": c.name, "arguments": c.arguments}}
        for i, c in enumerate(calls)
    ]


def _ndjson(lines: list[dict[str, Any]]) -> Answer:
    """A streamed NDJSON answer, one line a frame."""
    return stream_answer([ndjson_line(x) for x in lines], NDJSON_TYPE)


def _load_answer(body: Mapping[str, Any], model: str, chat: bool) -> Answer:
    """An empty request loads (or with `keep_alive: 0` unloads) the model: one JSON object
    at once, even when a stream was asked for, as the server does."""
    reason = "unload" if _unloads(body) else "load"
    part: dict[str, object] = (
        {"message": {"role": "assistant", "content": ""}} if chat else {"response": ""}
    )
    head: dict[str, object] = {"model": model, "created_at": _rfc3339(0), **part}
    if chat:
        return json_answer({**head, "done_reason": reason, "done": True})
    return json_answer({**head, "done": True, "done_reason": reason})


def chat(call: Call) -> Answer:
    """`POST /api/chat`."""
    body = call.json
    model = _model(body)
    messages = body.get("messages")
    if messages is not None and not isinstance(messages, list):
        raise BadCall("messages must be a list")
    stream = _streams(body)
    if not messages:
        return _load_answer(body, model, chat=True)
    tools = _tools(body)
    out = _output(call, body, tools)
    timing = _timing(call, _prompt_count(messages, body.get("tools")), out.eval_count)
    final = {"done_reason": out.done_reason, "done": True, **timing.metrics()}

    def line(at: str, message: dict[str, object], done: Mapping[str, object]) -> dict[str, Any]:
        return {"model": model, "created_at": at, "message": message, **done}

    if not stream:
        message: dict[str, object] = {"role": "assistant", "content": "".join(out.content)}
        if out.thinking:
            message["thinking"] = "".join(out.thinking)
        if out.tool_calls:
            message["tool_calls"] = _tool_calls_json(out.tool_calls)
        return json_answer(line(timing.done_at, message, final))
    lines: list[dict[str, Any]] = []
    not_done = {"done": False}
    for piece in out.thinking:
        message = {"role": "assistant", "content": "", "thinking": piece}
        lines.append(line(timing.at(len(lines)), message, not_done))
    for piece in out.content:
        lines.append(line(timing.at(len(lines)), {"role": "assistant", "content": piece}, not_done))
    if out.tool_calls:
        calls = _tool_calls_json(out.tool_calls)
        message = {"role": "assistant", "content": "", "tool_calls": calls}
        lines.append(line(timing.at(max(0, out.eval_count - 1)), message, not_done))
    lines.append(line(timing.done_at, {"role": "assistant", "content": ""}, final))
    return _ndjson(lines)


def generate(call: Call) -> Answer:
    """`POST /api/generate`."""
    body = call.json
    model = _model(body)
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise BadCall("prompt must be a string")
    stream = _streams(body)
    if not prompt:
        return _load_answer(body, model, chat=False)
    out = _output(call, body, None)
    images = {"images": body.get("images")}
    prompt_count = _prompt_count(body.get("system"), prompt, body.get("suffix"), images)
    timing = _timing(call, prompt_count, out.eval_count)
    final: dict[str, object] = {"done": True, "done_reason": out.done_reason}
    if not body.get("raw"):
        rng = call.rng("context")
        final["context"] = [rng.randrange(128_256) for _ in range(prompt_count + out.eval_count)]
    final.update(timing.metrics())
    head = {"model": model}
    if not stream:
        text: dict[str, object] = {"response": "".join(out.content)}
        if out.thinking:
            text["thinking"] = "".join(out.thinking)
        return json_answer({**head, "created_at": timing.done_at, **text, **final})
    lines: list[dict[str, Any]] = []
    for piece in out.thinking:
        at = timing.at(len(lines))
        lines.append({**head, "created_at": at, "response": "", "thinking": piece, "done": False})
    for piece in out.content:
        lines.append(
            {**head, "created_at": timing.at(len(lines)), "response": piece, "done": False}
        )
    lines.append({**head, "created_at": timing.done_at, "response": "", **final})
    return _ndjson(lines)


# ---------------------------------------------------------------------------- embeddings


def _dimensions(model: str, requested: object) -> int:
    try:  # 0 is the Go zero value: not given
        return dimensions_for(model, None if requested == 0 else requested)
    except ValueError as e:
        raise BadCall(str(e)) from None


def embed(call: Call) -> Answer:
    """`POST /api/embed`: `input` a string or a list of strings."""
    body = call.json
    model = _model(body)
    raw = body.get("input")
    if raw is None or raw == "":
        texts: list[str] = []
    elif isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and all(isinstance(t, str) for t in raw):
        texts = list(raw)
    else:
        raise BadCall("invalid input type: input must be a string or a list of strings")
    dims = _dimensions(model, body.get("dimensions"))
    if not texts:  # a load request
        return json_answer({"model": model, "embeddings": []})
    count = sum(count_tokens(t) for t in texts)
    timing = _timing(call, count, 0)
    return json_answer(
        {
            "model": model,
            "embeddings": [vector(model, t, dims) for t in texts],
            "total_duration": timing.total,
            "load_duration": timing.load,
            "prompt_eval_count": count,
        }
    )


def embeddings(call: Call) -> Answer:
    """`POST /api/embeddings` (legacy): `prompt` → `{"embedding": [...]}`."""
    body = call.json
    model = _model(body)
    prompt = body.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise BadCall("prompt must be a string")
    if not prompt:
        return json_answer({"embedding": []})
    return json_answer({"embedding": vector(model, prompt, _dimensions(model, None))})


# ---------------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True)
class _Model:
    name: str
    family: str
    parameter_size: str
    quantization: str
    size: int
    parameter_count: int
    context_length: int
    embedding_length: int
    embedding: bool

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()

    def details(self) -> dict[str, object]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.family,
            "families": [self.family],
            "parameter_size": self.parameter_size,
            "quantization_level": self.quantization,
        }

    def entry(self) -> dict[str, object]:
        return {"name": self.name, "model": self.name, "size": self.size, "digest": self.digest}


MODELS: tuple[_Model, ...] = (
    _Model(
        "llama3.2:latest", "llama", "3.2B", "Q4_K_M", 2019393189, 3212749888, 131072, 3072, False
    ),
    _Model("qwen3:8b", "qwen3", "8.2B", "Q4_K_M", 5225388164, 8190735360, 40960, 4096, False),
    _Model(
        "nomic-embed-text:latest",
        "nomic-bert",
        "137M",
        "F16",
        274302450,
        136727040,
        2048,
        768,
        True,
    ),
)
"""The models `/api/tags` lists and `/api/ps` shows loaded."""

MODIFIED_AT = "2025-10-01T12:00:00-07:00"
_EMBEDDING_NAMES = ("embed", "minilm", "bge-", "e5-")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)([bm])\b")


def _describe(name: str) -> _Model:
    """A catalogue model, or one made up from the name (`x:14b` is 14B, `*embed*` embeds)."""
    full = name if ":" in name else f"{name}:latest"
    for model in MODELS:
        if model.name == full:
            return model
    base, tag = full.split(":", 1)
    embedding = any(part in base for part in _EMBEDDING_NAMES)
    letters = re.match(r"[a-z]+", base)
    family = letters.group() if letters else "llama"
    m = _SIZE.search(tag)
    size = f"{m.group(1)}{m.group(2).upper()}" if m else ("335M" if embedding else "7B")
    count = int(float(size[:-1]) * (1e9 if size.endswith("B") else 1e6))
    dims = dimensions_for(name) if embedding else 4096
    return _Model(full, family, size, "Q4_K_M", count * 5 // 8, count, 8192, dims, embedding)


def tags(call: Call) -> Answer:
    """`GET /api/tags`: the catalogue."""
    models = [{**m.entry(), "modified_at": MODIFIED_AT, "details": m.details()} for m in MODELS]
    return json_answer({"models": models})


def ps(call: Call) -> Answer:
    """`GET /api/ps`: every catalogue model, loaded for five more minutes."""
    models = [
        {
            **m.entry(),
            "details": m.details(),
            "expires_at": _rfc3339(300 * _NS),
            "size_vram": m.size,
            "context_length": min(4096, m.context_length),
        }
        for m in MODELS
    ]
    return json_answer({"models": models})


def show(call: Call) -> Answer:
    """`POST /api/show` for any model (`model`, or the older `name`)."""
    body = call.json
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name:
        raise BadCall("model is required")
    m = _describe(name)
    arch = m.family.replace("-", "")
    template = (
        "{{ .Prompt }}" if m.embedding else "{{ if .System }}{{ .System }}\n{{ end }}{{ .Prompt }}"
    )
    parameters = "num_ctx 8192" if m.embedding else 'stop "<|end|>"\ntemperature 0.7'
    license_ = "Synthetic model card served by replay; no license text was recorded."
    modelfile = (
        '# Modelfile generated by "ollama show"\n'
        f"FROM /root/.ollama/models/blobs/sha256-{m.digest}\n"
        f'TEMPLATE """{template}"""\n'
        + "".join(f"PARAMETER {p}\n" for p in parameters.split("\n"))
        + f'LICENSE """{license_}"""\n'
    )
    info: dict[str, object] = {
        "general.architecture": arch,
        "general.file_type": 1 if m.quantization == "F16" else 15,
        "general.parameter_count": m.parameter_count,
        "general.quantization_version": 2,
        f"{arch}.context_length": m.context_length,
        f"{arch}.embedding_length": m.embedding_length,
        f"{arch}.block_count": 12 if m.embedding else 28,
    }
    return json_answer(
        {
            "license": license_,
            "modelfile": modelfile,
            "parameters": parameters,
            "template": template,
            "details": m.details(),
            "model_info": info,
            "capabilities": ["embedding"] if m.embedding else ["completion", "tools"],
            "modified_at": MODIFIED_AT,
        }
    )


def version(call: Call) -> Answer:
    """`GET /api/version`."""
    return json_answer({"version": VERSION})


def root(call: Call) -> Answer:
    """`GET /` and `HEAD /`: the plain text health check (no body for HEAD)."""
    head = call.request.method.upper() == "HEAD"
    return Answer(200, (("content-type", "text/plain; charset=utf-8"),), () if head else (RUNNING,))


def _route(method: str, path: str, respond: Responder, costly: bool = False) -> Route:
    return Route(method, re.compile(re.escape(path)), respond, "ollama", costly)


ROUTES: tuple[Route, ...] = (
    _route("POST", "/api/chat", chat),
    _route("POST", "/api/generate", generate),
    _route("POST", "/api/embed", embed, costly=True),
    _route("POST", "/api/embeddings", embeddings, costly=True),
    _route("GET", "/api/tags", tags),
    _route("POST", "/api/show", show),
    _route("GET", "/api/version", version),
    _route("GET", "/api/ps", ps),
    _route("GET", "/", root),
)
