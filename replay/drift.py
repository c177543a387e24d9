"""How a live answer's shape differs from a recorded one's, for `replay drift`.

Owns the comparison only: an answer (status, headers, content-decoded body) is reduced to
its shape, and two shapes are compared. Nothing here sends a request or reads the store
(drift_run.py and cli/drift.py do).

A shape is what a client's parser depends on, never the generated text:
- the status, the media type and charset of `content-type` (a missing charset is UTF-8, what
  httpx assumes), and whether a request-id header is sent (the SDKs read `x-request-id` /
  `request-id`);
- for a JSON body, every key path with the JSON types seen there (`choices[].message.content:
  string`), array elements merged under `[]`, and the body's own `type` / `object` value;
- a nested object that says what it is (a `type` string, or for a Gemini part the key that
  holds its data: `text`, `functionCall`...) is a *variant*: its keys are written under
  `path@variant` (`content[]@tool_use.input`) and compared only with the same variant;
- for a stream (SSE or NDJSON), the event names, and the key paths of each kind of event,
  merged over all its events (`[message_start].message.id`). An event's name is its SSE
  `event:` field, else its data's `type` or `object` field, else `data` (an SSE event) or
  `line` (an NDJSON line); an `event:` field that disagrees with the data's `type` gives
  `name:type`; `data: [DONE]` is the event `[DONE]`.

The rule: what both sides have is compared, what the text decides is not. Not drift:
- a field that is `null` on one side and has a value on the other; the keys under a
  container that is empty or null on one side; the keys inside generated objects (a tool
  call's `input`, `args` or `arguments`, a `metadata` object);
- a variant of KNOWN_VARIANTS that only one side has: the SDKs define it, the answer chose
  it (a tool call instead of text, a thinking block, a reasoning item); a variant no SDK
  defines that one side lacks is drift (`text_delta` became `text_chunk`);
- a field of OPTIONAL_FIELDS that one side lacks (providers leave those out by content:
  a tool call, a zero count, a filter's finding); its type is still compared;
- an event of CONTENT_EVENTS that one side lacks (the Responses API's events of one kind of
  output: text, a function call, a reasoning summary...), unless the other events of its
  family came on both sides (`response.output_text.done` missing while `.delta` came is
  drift); Anthropic's `ping` events; how many events of a kind were sent;
- the order of events, except two kinds that always came one before the other and now
  always come the other way round (an interleaving that differs is the text's doing).
Everything else is drift. The lists are drift_known.py's, each entry with its source. The
price of the lists: a field of OPTIONAL_FIELDS, a known
variant or a content event that the API stops sending altogether is not seen (renamed, it
is: the new name is new).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from replay.drift_known import (
    ALWAYS_IGNORED,
    CONTENT_EVENTS,
    FREE_FORM_KEYS,
    GEMINI_PART_DATA,
    KNOWN_VARIANTS,
    OPTIONAL_FIELDS,
    REQUEST_ID_HEADERS,
    STREAM_ERRORS,
)
from replay.models import Headers, header_value
from replay.transcript import events, stream_framing

_MAX_DEPTH = 64
_MAX_PATHS = 20_000


@dataclass(frozen=True)
class Answer:
    """A response as drift compares it: the body is content-decoded."""

    status: int
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    @functools.cached_property
    def shape(self) -> Shape:
        """The body's shape, worked out once however often it is compared (read only)."""
        return _shape(self)


class Kind(StrEnum):
    """What kind of difference a `Difference` is."""

    STATUS = "status"
    CONTENT_TYPE = "content-type"
    BODY = "body"
    """The body is no longer (or now) JSON, SSE or NDJSON under the same content-type."""
    OBJECT = "object"
    """The body's own `type` / `object` value changed (`chat.completion` → `chat.response`)."""
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
            case Kind.EVENT_ORDER:
                return f"~ event order: {self.recorded} → {self.live}"
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
    """Key paths with their JSON types, the containers that had children, the variants seen
    at each place, and the events in order (empty for a plain JSON body)."""

    types: dict[str, set[str]] = field(default_factory=dict)
    filled: set[str] = field(default_factory=set)
    """Paths of objects and arrays that had at least one child somewhere."""
    parents: dict[str, str | None] = field(default_factory=dict)
    variants: dict[str, set[str]] = field(default_factory=dict)
    """{place: the variants seen there}; a variant's keys are under `place@variant`."""
    events: list[str] = field(default_factory=list)
    """Event names in order of first appearance."""
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    """{event name: (index of its first event, index of its last)}."""
    count: int = 0
    """How many events were counted."""
    kind: str | None = None
    """A JSON body's own `type` / `object` value."""
    framing: str = "json"
    """`json`, `sse`, `ndjson`, or `opaque` (a body that is none of these)."""

    def add(
        self,
        value: object,
        path: str,
        parent: str | None = None,
        key: str = "",
        depth: int = 0,
        array: str = "",
    ) -> None:
        """Add `value`'s key paths under `path` (bounded in depth and in paths); `array` is
        the key of the array `value` is an element of."""
        if len(self.types) >= _MAX_PATHS:
            return
        self.types.setdefault(path, set()).add(_type_name(value))
        self.parents.setdefault(path, parent)
        if depth >= _MAX_DEPTH or key in FREE_FORM_KEYS:
            return
        if isinstance(value, dict) and value:
            self.filled.add(path)
            if depth and (variant := _variant(value, array)) is not None:
                self.variants.setdefault(path, set()).add(variant)
                parent, path = path, f"{path}@{variant}"
                self.types.setdefault(path, set()).add("object")
                self.parents.setdefault(path, parent)
                self.filled.add(path)
            for name, item in value.items():
                child = f"{path}.{name}" if path else str(name)
                self.add(item, child, path, str(name), depth + 1)
        elif isinstance(value, list) and value:
            self.filled.add(path)
            for item in value:
                self.add(item, f"{path}[]", path, "", depth + 1, key)

    def event(self, name: str) -> None:
        """Count one event called `name`."""
        first, _ = self.spans.get(name, (self.count, self.count))
        self.spans[name] = (first, self.count)
        self.count += 1
        if name not in self.events:
            self.events.append(name)


def _variant(value: dict[object, object], array: str) -> str | None:
    """What a nested object says it is: its `type`, or a Gemini part's data key."""
    kind = value.get("type")
    if isinstance(kind, str) and kind:
        return kind
    if array == "parts":
        return next((k for k in GEMINI_PART_DATA if k in value), None)
    return None


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


def charset(content_type: str | None) -> str:
    """The `charset` parameter, normalised; UTF-8 when there is none (httpx's default)."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            value = value.strip().strip('"').lower()
            return "utf-8" if value in ("utf8", "") else value
    return "utf-8"


def shape_of(answer: Answer) -> Shape:
    """The shape of `answer`'s body (see the module's docstring)."""
    return answer.shape


def _shape(answer: Answer) -> Shape:
    framing = stream_framing(answer.header("content-type")) or "json"
    shape = Shape(framing=framing)
    if framing == "json":
        value = _json(answer.body)
        if value is _NOT_JSON:
            shape.framing = "opaque" if answer.body.strip() else "json"
        else:
            shape.kind = _named(value)
            shape.add(value, "")
        return shape
    for event in events([(0.0, answer.body)], framing):
        data = event.data.strip()
        if data == "[DONE]":
            name, value = event.name or "[DONE]", None
        else:
            value = _json(data.encode())
            typed = _named(value)
            name = event.name or typed or ("data" if framing == "sse" else "line")
            if event.name and typed and typed != event.name:
                name = f"{event.name}:{typed}"
        shape.event(name)
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
    rec_ctype, live_ctype = recorded.header("content-type"), live.header("content-type")
    rec_type, live_type = media_type(rec_ctype), media_type(live_ctype)
    if rec_type != live_type:
        out.append(Difference(Kind.CONTENT_TYPE, "", rec_type, live_type))
    elif charset(rec_ctype) != charset(live_ctype):
        out.append(
            Difference(
                Kind.CONTENT_TYPE,
                "",
                f"{rec_type}; charset={charset(rec_ctype)}",
                f"{live_type}; charset={charset(live_ctype)}",
            )
        )
    for name in REQUEST_ID_HEADERS:
        if recorded.header(name) is not None and live.header(name) is None:
            out.append(Difference(Kind.HEADER, name, "sent", "absent"))
    before, after = shape_of(recorded), shape_of(live)
    if before.framing != after.framing:
        if rec_type == live_type:  # else the content-type line says it
            out.append(
                Difference(Kind.BODY, "", _FRAMINGS[before.framing], _FRAMINGS[after.framing])
            )
        return out
    if before.kind != after.kind and before.kind and after.kind:
        out.append(Difference(Kind.OBJECT, "", before.kind, after.kind))
    out += _event_differences(before, after, ignore)
    out += _path_differences(before, after, ignore)
    return out


_FRAMINGS = {"json": "JSON", "sse": "SSE", "ndjson": "NDJSON", "opaque": "not JSON"}


def stream_error(recorded: Answer, live: Answer) -> bool:
    """The live stream carried an error the recording did not: an `error` or
    `response.failed` event (Anthropic's `overloaded_error` mid-stream), or an event whose
    data is `{"error": {...}}` (OpenAI chat, Gemini). The provider failed, the API did not
    change."""
    return bool(_stream_errors(shape_of(live)) - _stream_errors(shape_of(recorded)))


def _stream_errors(shape: Shape) -> set[str]:
    named = {n for n in shape.events if n.split(":")[0] in STREAM_ERRORS}
    return named | {
        p
        for p, types in shape.types.items()
        if "object" in types and re.fullmatch(r"\[[^\]]*\]\.error", p)
    }


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


def _event_differences(before: Shape, after: Shape, ignore: Sequence[str]) -> list[Difference]:
    def counted(name: str, other: Shape) -> bool:
        if _ignored(f"[{name}]", ignore) or name in other.spans:
            return False
        if name not in CONTENT_EVENTS:
            return True
        family = name.rsplit(".", 1)[0]  # response.output_text.done: response.output_text
        return family.count(".") > 0 and any(
            e.startswith(f"{family}.") and e in before.spans for e in after.spans
        )

    out = [
        Difference(Kind.EVENT_GONE, n, "sent", "absent") for n in before.events if counted(n, after)
    ]
    out += [
        Difference(Kind.EVENT_NEW, n, "absent", "sent") for n in after.events if counted(n, before)
    ]
    common = [n for n in before.events if n in after.spans and not _ignored(f"[{n}]", ignore)]
    for i, a in enumerate(common):
        for b in common[i + 1 :]:
            for x, y in ((a, b), (b, a)):
                if (
                    before.spans[x][1] < before.spans[y][0]
                    and after.spans[y][1] < after.spans[x][0]
                ):
                    out.append(
                        Difference(Kind.EVENT_ORDER, "", f"{x} before {y}", f"{y} before {x}")
                    )
    return out


def _path_differences(before: Shape, after: Shape, ignore: Sequence[str]) -> list[Difference]:
    out: list[Difference] = []
    places = _ordered(before.variants, after.variants)
    variant_paths = {
        f"{p}@{v}" for p in places for s in (before, after) for v in s.variants.get(p, ())
    }
    for place in places:
        had, has = before.variants.get(place, set()), after.variants.get(place, set())
        had, has = had - has - KNOWN_VARIANTS, has - had - KNOWN_VARIANTS
        out += [
            Difference(Kind.GONE, f"{place}@{v}", "object", "absent")
            for v in sorted(had)
            if place in after.filled and not _ignored(f"{place}@{v}", ignore)
        ]
        out += [
            Difference(Kind.NEW, f"{place}@{v}", "absent", "object")
            for v in sorted(has)
            if place in before.filled and not _ignored(f"{place}@{v}", ignore)
        ]
    for path in _ordered(before.types, after.types):
        if path in variant_paths or _ignored(path, ignore):
            continue
        was, now = before.types.get(path), after.types.get(path)
        if was is not None and now is None:
            if before.parents[path] in after.filled and not _optional(path):
                out.append(Difference(Kind.GONE, path, _types(was), "absent"))
        elif was is None and now is not None:
            if after.parents[path] in before.filled and not _optional(path):
                out.append(Difference(Kind.NEW, path, "absent", _types(now)))
        elif was is not None and now is not None and _retyped(was, now):
            out.append(Difference(Kind.TYPE, path, _types(was), _types(now)))
    return out


def _optional(path: str) -> bool:
    """Whether `path` (after a stream's `[event].`) is one of OPTIONAL_FIELDS."""
    if path.startswith("["):
        path = path.partition("].")[2]
    return _ignored(path, OPTIONAL_FIELDS)


def _retyped(was: set[str], now: set[str]) -> bool:
    """No type in common, `null` aside (a field that is null on one side is not retyped)."""
    was, now = was - {"null"}, now - {"null"}
    return bool(was and now and not was & now)


def _ordered(*maps: dict[str, set[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for m in maps:
        seen.update(dict.fromkeys(m))
    return list(seen)


def _types(names: set[str]) -> str:
    return " or ".join(sorted(names))
