"""The OpenAI-shaped surfaces on any host: routes, legacy completions, embeddings, models
(PROTOCOLS.md §2, §3, §5.5).

Owns `ROUTES` for chat completions, legacy completions, embeddings and the models list, under
every OpenAI-compatible prefix: none (`/chat/completions` behind a self-hosted base URL), any
path ending in `/v1` (OpenAI, Azure v1 `/openai/v1`, Ollama, OpenRouter's `/api/v1`, ...),
Azure's classic `/openai/deployments/{deployment}` (the deployment is the `model` path
parameter, used when the body names none; `?api-version=` is ignored) and non-deployment
`/openai`, and Gemini's `/v1beta/openai`. The POST endpoints take any prefix at all; the models
list only those, so that another provider's `/models` is not answered in OpenAI's shape.
Chat completions are made up in `openai_chat`; the Responses API is `openai_responses`, whose
routes the router tries first.

Legacy completions: one choice per prompt × `n` (prompt-major), `max_tokens` 16 unless given
(the endpoint's own default, so most made-up answers end with `length`). Embeddings: one vector
per input (`embeddings.vector`, seeded by model and text only, so a text gets the same vector
in any batch); a token array is embedded as its compact JSON text; `encoding_format` defaults
to float as on the real API (the SDK asks for base64).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote

from replay.providers.base import (
    CREATED,
    Answer,
    BadCall,
    Call,
    Route,
    json_answer,
    made_up_text,
)
from replay.providers.embeddings import dimensions_for, to_base64, vector
from replay.providers.openai_chat import (
    MAX_N,
    Obj,
    chat_completions,
    choice_call,
    chunk_stream,
    interleave,
    limit,
    model_for,
    openai_headers,
    shape_of,
    usage,
)
from replay.providers.text import count_tokens, split_tokens

LEGACY_MAX_TOKENS = 16
"""The legacy completions endpoint's own `max_tokens` default."""
MAX_INPUTS = 2048
"""The most inputs one embeddings request takes."""
MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-4.1",
    "gpt-4.1-nano",
    "o4-mini",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)
"""What `GET /models` lists. Any id can be retrieved, listed or not."""


def completions(call: Call) -> Answer:
    """`POST .../completions` (legacy): one choice per prompt × `n`, stream or not."""
    body = call.json
    prompts = _prompts(body.get("prompt"))
    shape = shape_of(call, body, LEGACY_MAX_TOKENS)
    if len(prompts) * shape.n > MAX_N:
        raise BadCall(f"at most {MAX_N} choices (prompts × n)")
    texts: list[tuple[str, str]] = []
    for i in range(len(prompts) * shape.n):
        sub = choice_call(call, i)
        if sub.reply is not None:
            texts.append((sub.reply.text or "", "stop"))
        else:
            texts.append(limit(made_up_text(sub)[0], shape))
    prompt = sum(len(p) if isinstance(p, list) else count_tokens(p) for p in prompts)
    total = usage(prompt, sum(count_tokens(t) for t, _ in texts), details=False)
    head: Obj = {
        "id": call.id("cmpl-", 29),
        "object": "text_completion",
        "created": CREATED,
        "model": shape.model,
    }
    if shape.stream:
        per_choice = [
            [_text_choice(i, piece, None) for piece in split_tokens(text)]
            + [_text_choice(i, "", finish)]
            for i, (text, finish) in enumerate(texts)
        ]
        return chunk_stream(call, head, interleave(per_choice), shape, total)
    choices = [_text_choice(i, t, f)["choices"][0] for i, (t, f) in enumerate(texts)]
    return json_answer({**head, "choices": choices, "usage": total}, headers=openai_headers(call))


def _text_choice(index: int, text: str, finish: str | None) -> Obj:
    return {"choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish}]}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_tokens(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(t) for t in value)


def _prompts(value: object) -> list[str | list[int]]:
    """A legacy `prompt`: a string, strings, a token array, or token arrays."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(p, str) for p in value):
            return list(value)
        if _is_tokens(value):
            return [value]
        if all(_is_tokens(p) for p in value):
            return list(value)
    raise BadCall("prompt must be a string, an array of strings, or token arrays")


def embeddings(call: Call) -> Answer:
    """`POST .../embeddings`: string | string[] | int[] | int[][] in, float or base64 out."""
    body = call.json
    model = model_for(call, body)
    texts, tokens = _inputs(body.get("input"))
    encoding = body.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise BadCall(f"encoding_format must be 'float' or 'base64', not {encoding!r}")
    try:
        dims = dimensions_for(model, body.get("dimensions"))
    except ValueError as e:
        raise BadCall(str(e)) from None
    data = []
    for i, text in enumerate(texts):
        values = vector(model, text, dims)
        embedding = to_base64(values) if encoding == "base64" else values
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    answer = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return json_answer(answer, headers=openai_headers(call))


def _inputs(value: object) -> tuple[list[str], int]:
    """The texts to embed and their token count; `BadCall` for empty or mixed input."""
    items: list[Any]
    if isinstance(value, str) or _is_tokens(value):
        items = [value]
    elif isinstance(value, list) and value:
        items = value
    else:
        raise BadCall("input must be a non-empty string, array of strings, or token arrays")
    if len(items) > MAX_INPUTS:
        raise BadCall(f"input must have at most {MAX_INPUTS} items")
    texts: list[str] = []
    tokens = 0
    for item in items:
        if isinstance(item, str) and item:
            texts.append(item)
            tokens += count_tokens(item)
        elif _is_tokens(item):
            texts.append(json.dumps(item, separators=(",", ":")))
            tokens += len(item)
        else:
            raise BadCall("each input must be a non-empty string or a non-empty token array")
    return texts, tokens


def _model(model_id: str) -> Obj:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "system"}


def list_models(call: Call) -> Answer:
    """`GET .../models`: a small fixed list."""
    answer = {"object": "list", "data": [_model(m) for m in MODELS]}
    return json_answer(answer, headers=openai_headers(call))


def retrieve_model(call: Call) -> Answer:
    """`GET .../models/{id}`: any id is a model."""
    return json_answer(_model(unquote(call.params["id"])), headers=openai_headers(call))


# Any prefix, tried after Azure's deployment form (whose name is the `model` parameter).
_ANY = r"(?:/openai/deployments/(?P<model>[^/]+)|(?:/[^/]+)*?)"
# The prefixes of OpenAI-compatible APIs, or none.
_VERSIONED = r"(?:(?:/[^/]+)*?/v1|/v1beta/openai|/openai)?"
_MODEL_ID = r"/models/(?P<id>[^/]+(?:/[^/]+)*)"

ROUTES: tuple[Route, ...] = (
    # Chat before legacy: `/v1/chat/completions` also ends with `/completions`.
    Route("POST", re.compile(_ANY + "/chat/completions"), chat_completions, "openai"),
    Route("POST", re.compile(_ANY + "/completions"), completions, "openai"),
    Route("POST", re.compile(_ANY + "/embeddings"), embeddings, "openai", costly=True),
    Route("GET", re.compile(_VERSIONED + "/models"), list_models, "openai"),
    Route("GET", re.compile(_VERSIONED + _MODEL_ID), retrieve_model, "openai"),
)
