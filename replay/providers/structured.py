"""Structured output read from the prompt: the JSON a synthetic answer gives when the request
asks for JSON.

Owns finding a JSON Schema in a request's instructions or last user text (`find_schema`),
telling whether a plain request asks for JSON (`prompt_json`, the pattern of instructor's
JSON modes, LangChain's format instructions and similar libraries), and the JSON text of the
answer (`json_text`: an instance of the schema found, else a small generic object; inside a
Markdown ```json fence when the prompt asks for a code block). Does not own JSON mode with a
schema in the request itself (`response_format` json_schema, Gemini's `responseSchema`,
Ollama's `format` object: the responders read those) nor the choice between a tool call and
text (`base.choose_reply`).

A schema is found as a JSON object in the text, bare or fenced: the text is scanned for `{`,
each decoded with `json.JSONDecoder.raw_decode` (a decoded object is skipped whole), and the
last object that looks like a JSON Schema wins (format instructions show an example schema
first and the real one last). "Looks like a schema" (`_is_schema`): non-empty `properties`
that map names to objects, or a `$ref` string, or an `anyOf`/`oneOf`/`allOf` list, or a
`type` among JSON Schema's beside `items`, `enum`, `$defs`, `definitions`, `title` or
`description`. Scanning is bounded (`MAX_SCAN` characters of each text, `MAX_TRIES`
decodes, `MAX_LOOKS` mentions looked at, each within `_WINDOW` characters), so a huge prompt
costs little.

A plain request asks for JSON when its text says so: a schema plus the word JSON, or an
instruction such as "Return a JSON object" / "formatted as a JSON instance" (a verb shortly
before "json" in the same sentence). The answer is fenced when the text mentions a ```json
block, or asks to wrap or return the answer in a code block or Markdown, and no negation
precedes that in its sentence (instructor's MD_JSON asks for one; LangChain's strict format
instructions say "Do not wrap the JSON in Markdown or code fences (no ``` or ```json)").
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from replay.conversation import last_user_text, system_text
from replay.providers.schema import instance_for
from replay.providers.text import WORDS, synthetic_text

MAX_SCAN = 262144
"""Characters of the instructions, and of the last user text, searched (the rest is
ignored)."""
MAX_TRIES = 256
"""At most this many `{` are tried as the start of a JSON object."""

_SCHEMA_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})
MAX_LOOKS = 64
"""At most this many mentions of JSON, or of a fence, are looked at."""
_WINDOW = 90
"""An instruction's verb is looked for this many characters before what it asks for, on
the same line and in the same sentence."""

_ASK_VERB = re.compile(
    r"\b(?:return|respond|reply|answer|output|format(?:ted)?|provide|produce|give|generate)\b"
)
_FENCE_VERB = re.compile(
    r"\b(?:wrap|return|respond|answer|output(?! schema)|reply|put|enclose|format)\b"
)
_FENCES = ("```json", "code block", "codeblock", "markdown")
_NEGATED = re.compile(r"\b(?:not|no|never|don't|without|avoid)\b")


@dataclass(frozen=True, slots=True)
class PromptJson:
    """What the prompt asks for: an instance of `schema` (None: any small object), fenced
    in a Markdown ```json block or bare."""

    schema: Mapping[str, Any] | None
    fenced: bool


def prompt_texts(body: object) -> str:
    """The texts a prompt's JSON instructions live in: the instructions and the last user
    text, joined (either may be missing), each cut at `MAX_SCAN` characters."""
    parts = [t[:MAX_SCAN] for t in (system_text(body), last_user_text(body)) if t]
    return "\n".join(parts)


def find_schema(text: str) -> Mapping[str, Any] | None:
    """The last JSON object in `text` that looks like a JSON Schema, or None."""
    decoder = json.JSONDecoder()
    found: Mapping[str, Any] | None = None
    at, tries = text.find("{"), 0
    while at >= 0 and tries < MAX_TRIES:
        tries += 1
        try:
            value, end = decoder.raw_decode(text, at)
        except ValueError:
            at = text.find("{", at + 1)
            continue
        if isinstance(value, dict) and _is_schema(value):
            found = value
        at = text.find("{", end)
    return found


def _is_schema(value: Mapping[str, Any]) -> bool:
    props = value.get("properties")
    if isinstance(props, Mapping):
        return bool(props) and all(isinstance(p, Mapping) for p in props.values())
    if isinstance(value.get("$ref"), str):
        return True
    if any(isinstance(value.get(k), list) for k in ("anyOf", "oneOf", "allOf")):
        return True
    kind = value.get("type")
    return (
        isinstance(kind, str)
        and kind in _SCHEMA_TYPES
        and bool({"items", "enum", "$defs", "definitions", "title", "description"} & value.keys())
    )


def _before(lowered: str, at: int) -> str:
    """The text before `at` on its line and in its sentence, at most `_WINDOW` characters
    (searched in that window only: a long text costs no more)."""
    start = max(at - _WINDOW, 0)
    start = max(start, lowered.rfind("\n", start, at) + 1, lowered.rfind(". ", start, at) + 1)
    return lowered[start:at]


def _found(lowered: str, word: str) -> list[int]:
    """Where `word` occurs in `lowered`: the first `MAX_LOOKS` places."""
    places: list[int] = []
    at = lowered.find(word)
    while at >= 0 and len(places) < MAX_LOOKS:
        places.append(at)
        at = lowered.find(word, at + len(word))
    return places


def _asks_json(lowered: str) -> bool:
    """An instruction to answer in JSON: "Return a JSON object", "formatted as a JSON
    instance"..."""
    return any(_ASK_VERB.search(_before(lowered, at)) for at in _found(lowered, "json"))


def _asks_fence(lowered: str) -> bool:
    """Whether the text asks for a ```json block or a code block, and no negation ("do not
    wrap it in ```json") precedes that on its line."""
    for fence in _FENCES:
        for at in _found(lowered, fence):
            before = _before(lowered, at)
            if _NEGATED.search(before):
                continue
            if fence == "```json" or _FENCE_VERB.search(before):
                return True
    return False


def prompt_json(body: object, json_mode: bool = False) -> PromptJson | None:
    """What JSON the request asks for from its prompt text, or None when it asks for none.
    `json_mode`: the request is in a JSON mode without a schema (it always gets JSON)."""
    text = prompt_texts(body)
    lowered = text.lower()
    mentions = "json" in lowered
    schema = find_schema(text) if mentions or json_mode else None
    fenced = mentions and not json_mode and _asks_fence(lowered)
    if schema is not None or json_mode:
        return PromptJson(schema, fenced)
    if mentions and _asks_json(lowered):
        return PromptJson(None, fenced)
    return None


def generic_object(rng: random.Random) -> dict[str, object]:
    """The small object of JSON mode when no schema is to be found."""
    return {
        "answer": synthetic_text(rng, rng.randint(3, 8)),
        "topic": rng.choice(WORDS),
        "confidence": rng.randint(1, 99) / 100,
    }


def json_text(asked: PromptJson, rng: random.Random) -> str:
    """The answer's JSON text: an instance of the schema, else (no schema, or one no
    instance can be built for: the prompt is only a hint) a small generic object; fenced
    when asked."""
    value: object = None
    if asked.schema is not None:
        try:
            value = instance_for(asked.schema, rng)
        except ValueError:
            value = None
    if value is None:
        value = generic_object(rng)
    text = json.dumps(value, ensure_ascii=False)
    return f"```json\n{text}\n```" if asked.fenced else text


def json_mode_text(body: object, rng: random.Random) -> str:
    """The text of JSON mode without a schema in the request (`response_format`
    json_object, Ollama `format: json`, Gemini's JSON mime type): an instance of the schema
    the prompt carries, else a small generic object; never fenced."""
    return json_text(prompt_json(body, json_mode=True) or PromptJson(None, False), rng)
