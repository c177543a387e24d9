"""How a live answer's shape differs from a recorded one's, for `replay drift`.

Owns the comparison only: an answer (status, headers, content-decoded body) is reduced to
its shape, and two shapes are compared. Nothing here sends a request or reads the store
(livesend.py and cli/drift.py do).

A shape is what a client's parser depends on, never the generated text:
- the status, the media type of `content-type`, and whether a request-id header is sent
  (the SDKs read `x-request-id` / `request-id`);
- for a JSON body, every key path with the JSON types seen there (`choices[].message.content:
  string`), array elements merged under `[]`;
- for a stream (SSE or NDJSON), the event names in the order they first appear, and the key
  paths of each kind of event, merged over all its events (`[message_start].message.id`).
  An event's name is its SSE `event:` field, else its data's `type` or `object` field, else
  `data` (an SSE event) or `line` (an NDJSON line); `data: [DONE]` is the event `[DONE]`.

What is not drift, because the text decides it, not the API: a field that is `null` on one
side and has a value on the other, the keys under a container that is empty or null on one
side, the keys inside generated objects (a tool call's `input`, `args` or `arguments`, a
`metadata` object), how many events of a kind were sent, and Anthropic's `ping` events.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from replay.models import Headers, header_value
from replay.transcript import events, stream_framing

ALWAYS_IGNORED = ("[ping]",)
"""Anthropic's streams "may include any number of ping events" (its docs): their presence and
place are timing, not shape."""

REQUEST_ID_HEADERS = ("x-request-id", "request-id")
"""Response headers the official SDKs read; one of them vanishing is drift."""

FREE_FORM_KEYS = frozenset({"input", "args", "arguments", "metadata"})
"""Objects whose keys the model or the caller chooses: their type is compared, not their keys."""

_MAX_DEPTH = 64
_MAX_PATHS = 20_000


@dataclass(frozen=True, slots=True)
class Answer:
    """A response as drift compares it: the body is content-decoded."""

    status: int
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


class Kind(StrEnum):
    """What kind of difference a `Difference` is."""

    STATUS = "status"
    CONTENT_TYPE = "content-type"
    HEADER = "header"
    GONE = "gone"
    """A key path the recording has and the live answer lacks."""
    NEW = "new"
    """A key path only the live answer has."""
    TYPE = "type"
    EVENT_GONE = "event-gone"
    EVENT_NEW = "event-new"
    EVENT_ORDER = "event-order"


@dataclass(frozen=True, slots=True)
class Difference:
    kind: Kind
    where: str
    recorded: str
    live: str

    def __str__(self) -> str:
        match self.kind:
            case Kind.GONE:
                return f"- {self.where}: no longer sent (was {self.recorded})"
            case Kind.NEW:
                return f"+ {self.where}: new ({self.live})"
            case Kind.TYPE:
                return f"~ {self.where}: {self.recorded} → {self.live}"
            case Kind.EVENT_GONE:
                return f"- event {self.where}: no longer sent"
            case Kind.EVENT_NEW:
                return f"+ event {self.where}: new"
            case Kind.HEADER:
                return f"- header {self.where}: no longer sent"
            case _:
                return f"~ {self.kind}: {self.recorded} → {self.live}"

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": str(self.kind),
            "where": self.where,
            "recorded": self.recorded,
            "live": self.live,
        }


@dataclass(slots=True)
class Shape:
    """Key paths with their JSON types, the containers that had children, and the event
    names in order of first appearance (empty for a plain JSON body)."""

    types: dict[str, set[str]] = field(default_factory=dict)
    filled: set[str] = field(default_factory=set)
    """Paths of objects and arrays that had at least one child somewhere."""
    parents: dict[str, str | None] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    framing: str = "json"
    """`json`, `sse`, `ndjson`, or `opaque` (a body that is none of these)."""

    def add(
        self, value: object, path: str, parent: str | None = None, key: str = "", depth: int = 0
    ) -> None:
        """Add `value`'s key paths under `path` (bounded in depth and in paths)."""
        if len(self.types) >= _MAX_PATHS:
            return
        self.types.setdefault(path, set()).add(_type_name(value))
        self.parents.setdefault(path, parent)
        if depth >= _MAX_DEPTH or key in FREE_FORM_KEYS:
            return
        if isinstance(value, dict) and value:
            self.filled.add(path)
            for name, item in value.items():
                child = f"{path}.{name}" if path else str(name)
                self.add(item, child, path, str(name), depth + 1)
        elif isinstance(value, list) and value:
            self.filled.add(path)
            for item in value:
                self.add(item, f"{path}[]", path, "", depth + 1)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower() or "(none)"


def shape_of(answer: Answer) -> Shape:
    """The shape of `answer`'s body (see the module's docstring)."""
    framing = stream_framing(answer.header("content-type")) or "json"
    shape = Shape(framing=framing)
    if framing == "json":
        value = _json(answer.body)
        if value is _NOT_JSON:
            shape.framing = "opaque" if answer.body.strip() else "json"
        else:
            shape.add(value, "")
        return shape
    for event in events([(0.0, answer.body)], framing):
        data = event.data.strip()
        if data == "[DONE]":
            name, value = event.name or "[DONE]", None
        else:
            value = _json(data.encode())
            name = event.name or _named(value) or ("data" if framing == "sse" else "line")
        if name not in shape.events:
            shape.events.append(name)
        if value is not None and value is not _NOT_JSON:
            shape.add(value, f"[{name}]")
    return shape


_NOT_JSON = object()


def _json(data: bytes) -> object:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _named(value: object) -> str | None:
    if isinstance(value, dict):
        for key in ("type", "object"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return None


def compare(recorded: Answer, live: Answer, ignore: Sequence[str] = ()) -> list[Difference]:
    """Every way `live`'s shape differs from `recorded`'s; [] when they match.

    `ignore` holds glob patterns of key paths (`choices[].logprobs*`, `[ping]*`) left out,
    besides ALWAYS_IGNORED."""
    ignore = (*ALWAYS_IGNORED, *ignore)
    out: list[Difference] = []
    if recorded.status != live.status:
        out.append(Difference(Kind.STATUS, "", str(recorded.status), _status(live)))
        return out  # an error body says why; its shape is not the answer's
    rec_type = media_type(recorded.header("content-type"))
    live_type = media_type(live.header("content-type"))
    if rec_type != live_type:
        out.append(Difference(Kind.CONTENT_TYPE, "", rec_type, live_type))
    for name in REQUEST_ID_HEADERS:
        if recorded.header(name) is not None and live.header(name) is None:
            out.append(Difference(Kind.HEADER, name, "sent", "absent"))
    before, after = shape_of(recorded), shape_of(live)
    if before.framing != after.framing:
        return out  # a different kind of body: the content-type line says it
    out += _event_differences(before.events, after.events, ignore)
    out += _path_differences(before, after, ignore)
    return out


def stream_error(differences: Sequence[Difference]) -> bool:
    """The live stream carried an `error` event the recording did not (Anthropic's
    `overloaded_error` mid-stream): the provider failed, the API did not change."""
    return any(d.kind is Kind.EVENT_NEW and d.where == "error" for d in differences)


def _status(live: Answer) -> str:
    value = _json(live.body)
    message = None
    if isinstance(value, dict):
        error = value.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
        elif isinstance(value.get("message"), str):
            message = value["message"]
    if message:
        return f"{live.status} ({message[:200]})"
    return str(live.status)


def _ignored(path: str, ignore: Sequence[str]) -> bool:
    """Whether a pattern of `ignore` matches `path`; only `*` is special (any characters), so
    `[ping]` and `choices[]` are taken literally."""
    return any(_glob(pattern).fullmatch(path) for pattern in ignore)


@functools.cache
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")))


def _event_differences(
    before: list[str], after: list[str], ignore: Sequence[str]
) -> list[Difference]:
    out = [
        Difference(Kind.EVENT_GONE, name, "sent", "absent")
        for name in before
        if name not in after and not _ignored(f"[{name}]", ignore)
    ]
    out += [
        Difference(Kind.EVENT_NEW, name, "absent", "sent")
        for name in after
        if name not in before and not _ignored(f"[{name}]", ignore)
    ]
    common_before = [n for n in before if n in after and not _ignored(f"[{n}]", ignore)]
    common_after = [n for n in after if n in before and not _ignored(f"[{n}]", ignore)]
    if common_before != common_after:
        out.append(
            Difference(Kind.EVENT_ORDER, "", ", ".join(common_before), ", ".join(common_after))
        )
    return out


def _path_differences(before: Shape, after: Shape, ignore: Sequence[str]) -> list[Difference]:
    out: list[Difference] = []
    for path in _ordered(before.types, after.types):
        if _ignored(path, ignore):
            continue
        was, now = before.types.get(path), after.types.get(path)
        if was is not None and now is None:
            if before.parents[path] in after.filled:
                out.append(Difference(Kind.GONE, path, _types(was), "absent"))
        elif was is None and now is not None:
            if after.parents[path] in before.filled:
                out.append(Difference(Kind.NEW, path, "absent", _types(now)))
        elif was is not None and now is not None and _retyped(was, now):
            out.append(Difference(Kind.TYPE, path, _types(was), _types(now)))
    return out


def _retyped(was: set[str], now: set[str]) -> bool:
    """No type in common, `null` aside (a field that is null on one side is not retyped)."""
    was, now = was - {"null"}, now - {"null"}
    return bool(was and now and not was & now)


def _ordered(*maps: dict[str, set[str]]) -> Iterable[str]:
    seen: dict[str, None] = {}
    for m in maps:
        seen.update(dict.fromkeys(m))
    return seen


def _types(names: set[str]) -> str:
    return " or ".join(sorted(names))
