"""A JSON value valid against a tool's JSON Schema: the arguments of a synthetic tool call.

Owns turning the schema kinds that tool definitions use (OpenAI/Anthropic JSON Schema, Gemini's
uppercase OpenAPI subset) into one deterministic instance. Does not own validation, remote
`$ref`s, or choosing which tool to call (the responders do).

Rules, in order: `$ref` (local `#/...` pointers only, merged with its siblings), `const`,
`default` (trusted as is), `enum` (one member), `allOf` (merged), `anyOf`/`oneOf` (the first
branch), then the type (the first non-null one of a type list; inferred from the keywords when
absent). Objects get every property, required or not, and nothing else when
`additionalProperties` is false; past `MAX_DEPTH` nesting levels only required properties and
`minItems` items are made, and a schema that still recurses raises `ValueError`, as does an
unsatisfiable one (empty range, `false`).

Known limits: a string `pattern` is met only when one of a few stock strings or one of the
schema's `examples` matches it, else the plain string is kept (it may not match); `oneOf`
branches are not checked for overlap; a float `multipleOf` that is not exact in binary may
fail a strict validator; `contains`, `patternProperties`, `if`/`then` and `not` are ignored.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Mapping
from typing import Any

from replay.providers.text import WORDS

MAX_DEPTH = 6
_HARD_DEPTH = 48
_Schema = Mapping[str, Any]
_NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_STOCK = ("alpha", "abc123", "12345", "ABC", "a", "x-1", "2024-01-15", "user@example.com")


def instance_for(schema: Mapping[str, object], rng: random.Random) -> object:
    """An instance of `schema`, the same one for the same schema and rng state."""
    return _Maker(schema, rng).make(schema, 0)


def _int(value: object) -> int | None:
    # Gemini's wire schema carries int64 keywords (minItems, maxLength...) as strings.
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        return int(value)
    return None


class _Maker:
    def __init__(self, root: _Schema, rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def make(self, schema: object, depth: int) -> object:
        if schema is True or schema == {}:
            return self.rng.choice(WORDS)
        if not isinstance(schema, Mapping):
            raise ValueError(f"unsatisfiable or invalid schema: {schema!r}")
        if depth > _HARD_DEPTH:
            raise ValueError("schema recursion too deep to build a finite instance")
        schema = self.flatten(schema, depth)
        if "const" in schema:
            return schema["const"]
        if "default" in schema:
            return schema["default"]
        if schema.get("enum"):
            return self.rng.choice(list(schema["enum"]))
        kind = self.kind(schema)
        if kind == "object":
            return self.an_object(schema, depth)
        if kind == "array":
            return self.an_array(schema, depth)
        if kind == "string":
            return self.a_string(schema)
        if kind in ("integer", "number"):
            return self.a_number(schema, kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        raise ValueError(f"unknown schema type {kind!r}")

    def flatten(self, schema: _Schema, depth: int) -> _Schema:
        """Resolve `$ref`, merge `allOf`, take the first `anyOf`/`oneOf` branch."""
        for _ in range(_HARD_DEPTH):
            rest = dict(schema)
            if "$ref" in rest:
                target = self.resolve(str(rest.pop("$ref")))
                schema = _merge(target, rest)
            elif "allOf" in rest:
                for branch in rest.pop("allOf"):
                    if branch is not True:
                        rest = _merge(rest, self.flatten(branch, depth))
                schema = rest
            elif rest.get("anyOf") or rest.get("oneOf"):
                first = rest.pop("anyOf" if rest.get("anyOf") else "oneOf")[0]
                schema = _merge(rest, first) if isinstance(first, Mapping) else first
            else:
                return schema
            if not isinstance(schema, Mapping):
                raise ValueError(f"unsatisfiable or invalid schema: {schema!r}")
        raise ValueError("circular $ref")

    def resolve(self, ref: str) -> _Schema:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref are supported, not {ref!r}")
        node: object = self.root
        for raw in filter(None, ref[1:].split("/")):
            key = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or key not in node:
                raise ValueError(f"unresolvable $ref {ref!r}")
            node = node[key]
        if not isinstance(node, Mapping):
            raise ValueError(f"$ref {ref!r} does not point at a schema")
        return node

    def kind(self, schema: _Schema) -> str:
        declared = schema.get("type")
        if isinstance(declared, list):
            names = [str(t).lower() for t in declared]
            return next((t for t in names if t != "null"), "null")
        if isinstance(declared, str):
            return declared.lower()
        if {"properties", "required", "additionalProperties"} & schema.keys():
            return "object"
        if {"items", "prefixItems", "minItems", "maxItems"} & schema.keys():
            return "array"
        if any(k in schema for k in _NUMERIC):
            return "number"
        return "string"

    def an_object(self, schema: _Schema, depth: int) -> dict[str, object]:
        props: Mapping[str, object] = schema.get("properties") or {}
        required = [str(r) for r in schema.get("required") or ()]
        extra = schema.get("additionalProperties", True)
        out: dict[str, object] = {}
        for name, sub in props.items():
            if depth < MAX_DEPTH or name in required:
                out[name] = self.make(sub, depth + 1)
        for name in required:
            if name not in out:
                out[name] = self.make(extra if isinstance(extra, Mapping) else True, depth + 1)
        wanted = _int(schema.get("minProperties")) or 0
        while len(out) < wanted and extra is not False:
            out[f"key{len(out) + 1}"] = self.make(extra, depth + 1)
        return out

    def an_array(self, schema: _Schema, depth: int) -> list[object]:
        low = _int(schema.get("minItems")) or 0
        high = _int(schema.get("maxItems"))
        high = low + 3 if high is None else high
        if high < low:
            raise ValueError(f"minItems {low} > maxItems {high}")
        count = low if depth >= MAX_DEPTH else min(max(low, self.rng.randint(1, 3)), high)
        prefix = schema.get("prefixItems")
        items = schema.get("items", True)
        if isinstance(items, list):  # draft 4 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        prefix = list(prefix or ())
        out: list[object] = []
        seen: set[str] = set()
        for _ in range(count * 10 + 10):
            if len(out) >= count:
                break
            sub = prefix[len(out)] if len(out) < len(prefix) else items
            value = self.make(sub, depth + 1)
            if schema.get("uniqueItems"):
                if repr(value) in seen:
                    continue
                seen.add(repr(value))
            out.append(value)
        if len(out) < low:
            raise ValueError(f"cannot make {low} unique items")
        return out

    def a_string(self, schema: _Schema) -> str:
        low = _int(schema.get("minLength")) or 0
        high = _int(schema.get("maxLength"))
        value = self.formatted(str(schema.get("format", "")).lower())
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            value = self.patterned(pattern, schema, low, high) or value
        if len(value) < low:
            value += "".join(self.rng.choice("abcdefghij") for _ in range(low - len(value)))
        return value if high is None else value[:high]

    def formatted(self, fmt: str) -> str:
        rng = self.rng
        date = f"{rng.randint(2020, 2029)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        time = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
        word = rng.choice(WORDS)
        return {
            "date": date,
            "date-time": f"{date}T{time}",
            "time": time,
            "email": f"{word}@example.com",
            "uri": f"https://example.com/{word}",
            "url": f"https://example.com/{word}",
            "hostname": f"{word}.example.com",
            "ipv4": f"192.0.2.{rng.randint(1, 254)}",
            "ipv6": f"2001:db8::{rng.randint(1, 0xFFFF):x}",
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        }.get(fmt, word)

    def patterned(self, pattern: str, schema: _Schema, low: int, high: int | None) -> str | None:
        try:
            compiled = re.compile(pattern)
        except re.error:
            return None
        examples = [e for e in schema.get("examples") or () if isinstance(e, str)]
        for candidate in (*examples, self.rng.choice(WORDS), *_STOCK):
            fits = low <= len(candidate) and (high is None or len(candidate) <= high)
            if fits and compiled.search(candidate):
                return candidate
        return None

    def a_number(self, schema: _Schema, integer: bool) -> int | float:
        low, low_open = _bound(schema, "minimum", "exclusiveMinimum")
        high, high_open = _bound(schema, "maximum", "exclusiveMaximum")
        if low is None:
            low = 0.0 if high is None or high > 0 else high - 100
        if high is None:
            high = low + 100
        step = schema.get("multipleOf")
        if integer or step:
            unit = float(step or 1)
            if integer and unit != int(unit):
                raise ValueError("an integer with a fractional multipleOf is not supported")
            first, last = math.ceil(low / unit), math.floor(high / unit)
            first += low_open and first * unit == low
            last -= high_open and last * unit == high
            if first > last:
                raise ValueError(f"no multiple of {unit} in the range [{low}, {high}]")
            k = self.rng.randint(first, last)
            return int(k * unit) if unit == int(unit) else k * unit
        value = round(self.rng.uniform(low, high), 2)
        if not _inside(value, low, low_open, high, high_open):
            value = (low + high) / 2
            if not _inside(value, low, low_open, high, high_open):
                raise ValueError(f"empty range ({low}, {high})")
        return value


def _inside(value: float, low: float, low_open: bool, high: float, high_open: bool) -> bool:
    above = value > low if low_open else value >= low
    return above and (value < high if high_open else value <= high)


def _bound(schema: _Schema, inclusive: str, exclusive: str) -> tuple[float | None, bool]:
    """A bound and whether it is open; draft 4's boolean `exclusive*` is understood too."""
    ex = schema.get(exclusive)
    if isinstance(ex, int | float) and not isinstance(ex, bool):
        return float(ex), True
    value = schema.get(inclusive)
    if value is None:
        return None, False
    return float(value), ex is True


def _merge(base: _Schema, over: _Schema) -> dict[str, Any]:
    """`over` on top of `base`; properties merged, required united."""
    out = {**base, **over}
    if "properties" in base and "properties" in over:
        out["properties"] = {**base["properties"], **over["properties"]}
    if "required" in base and "required" in over:
        out["required"] = list(dict.fromkeys([*base["required"], *over["required"]]))
    return out
