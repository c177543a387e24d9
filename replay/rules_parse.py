"""Reading a rules file and checking it: a document becomes rules and settings, or a
RulesError that says exactly where and what is wrong.

Owns `read_document` (JSON for `.json`, else YAML through ruamel's round-trip loader, which
keeps line numbers and constructs no Python objects) and `parse_document`: every key known
(an unknown one is named, with the closest known key), every value of its type and range,
regexes compiled, YAML scalars turned into plain JSON values. Messages name the file, the
line when known (YAML), the rule (its number, from 1, and its name) and the dotted field.

Does not own the values themselves (rules_schema.py) nor what they do (rules.py).
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from replay.fingerprint import Normalizer
from replay.providers.base import Reply, ToolCall
from replay.rules_schema import (
    Fault,
    HttpError,
    Latency,
    Match,
    Rule,
    RulesError,
    RuleSettings,
    SyntheticPacing,
    TextMatch,
)

_T = TypeVar("_T")

# -- reading a file ------------------------------------------------------------------------


def read_document(path: Path) -> Any:
    """The decoded document: JSON for a `.json` suffix, else YAML; RulesError if unreadable."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RulesError(f"{source}: cannot read the rules file: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RulesError(f"{source}: not UTF-8 text (byte {e.start})") from None
    if path.suffix.lower() == ".json":
        if not text.strip():
            return None
        try:
            return json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise RulesError(f"{source}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
        except _DuplicateKey as e:
            raise RulesError(f"{source}: not valid JSON: duplicate key {e.args[0]!r}") from None
        except RecursionError:
            raise RulesError(f"{source}: not valid JSON: nested too deeply") from None
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = e.problem or e.context or "syntax error"
        raise RulesError(f"{where}: not valid YAML: {problem}") from None
    except (YAMLError, RecursionError) as e:
        raise RulesError(f"{source}: not valid YAML: {e}") from None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


# -- checking a document -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a value sits, for error messages: file, line, rule, dotted field."""

    source: str
    rule: str | None = None
    field: str = ""
    line: int | None = None

    def key(self, container: object, key: str) -> _Place:
        path = f"{self.field}.{key}" if self.field else key
        return replace(self, field=path, line=_line(container, key) or self.line)

    def item(self, container: object, index: int) -> _Place:
        return replace(
            self, field=f"{self.field}[{index}]", line=_line(container, index) or self.line
        )

    def error(self, problem: str) -> RulesError:
        parts = [f"{self.source}:{self.line}" if self.line else self.source]
        if self.rule:
            parts.append(self.rule)
        if self.field:
            parts.append(self.field)
        return RulesError(": ".join([*parts, problem]))


def _line(container: object, key: str | int) -> int | None:
    """The 1-based line of a key or item in a YAML container (None for JSON)."""
    lc = getattr(container, "lc", None)
    try:
        if isinstance(key, int):
            return int(lc.item(key)[0]) + 1  # type: ignore[union-attr]
        return int(lc.key(key)[0]) + 1  # type: ignore[union-attr]
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def _show(value: object) -> str:
    """A value as an error message shows it."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dt.date):
        return f"{value} (a YAML date)"
    if isinstance(value, int | float):
        return str(value)
    return type(value).__name__


_Reader = Callable[[object, _Place], _T]


class _Fields:
    """A mapping whose keys are all known, read key by key, each with its own place."""

    def __init__(self, value: object, place: _Place, known: Sequence[str]) -> None:
        if not isinstance(value, Mapping):
            raise place.error(f"must be a mapping (keys: {', '.join(known)}), not {_show(value)}")
        for key in value:
            if not isinstance(key, str) or key not in known:
                close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
                raise place.key(value, str(key)).error(f"unknown key {key!r}; {hint}")
        self.data: Mapping[str, Any] = value
        self.where = place

    def __bool__(self) -> bool:
        return bool(self.data)

    def place(self, key: str) -> _Place:
        return self.where.key(self.data, key)

    def get(self, key: str, read: _Reader[_T]) -> _T | None:
        """`read` of the value at `key`; None when the key is absent."""
        return read(self.data[key], self.place(key)) if key in self.data else None

    def each(self, key: str, read: _Reader[_T]) -> tuple[_T, ...]:
        """`read` of every item of the list at `key` (absent or empty: none)."""
        place = self.place(key)
        items = _list(self.data.get(key), place)
        return tuple(read(item, place.item(items, i)) for i, item in enumerate(items))

    def duration(self, name: str) -> float | None:
        """A duration given as `name` (seconds) or `name_ms` (milliseconds), in seconds."""
        ms = f"{name}_ms"
        if name in self.data and ms in self.data:
            raise self.place(ms).error(f"give {name} (seconds) or {ms}, not both")
        if ms in self.data:
            return _seconds(self.data[ms], self.place(ms)) / 1000
        return self.get(name, _seconds)


def _list(value: object, place: _Place) -> list[Any]:
    """A YAML/JSON list as is (nothing: empty)."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise place.error(f"must be a list, not {_show(value)}")
    return value if isinstance(value, list) else list(value)


def _string(value: object, place: _Place) -> str:
    if not isinstance(value, str):
        hint = " (quote it)" if isinstance(value, int | float | dt.date) else ""
        raise place.error(f"must be a string, not {_show(value)}{hint}")
    return str(value)


def _name(value: object, place: _Place) -> str:
    """A non-empty string: names, globs, ids."""
    text = _string(value, place)
    if not text:
        raise place.error("must not be empty")
    return text


def _regex(value: object, place: _Place) -> re.Pattern[str]:
    try:
        return re.compile(_name(value, place))
    except re.error as e:
        raise place.error(f"not a valid regular expression: {e}") from None


def _replacing_regex(value: object, place: _Place) -> re.Pattern[str]:
    """A regex whose matches are replaced: one that matches nothing at all is refused."""
    pattern = _regex(value, place)
    if pattern.search("") is not None:
        raise place.error(f"{pattern.pattern!r} matches the empty string")
    return pattern


def _bool(value: object, place: _Place) -> bool:
    if not isinstance(value, bool):
        raise place.error(f"must be true or false, not {_show(value)}")
    return value


def _count(value: object, place: _Place) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise place.error(f"must be a whole number >= 0, not {_show(value)}")
    return int(value)


def _seconds(value: object, place: _Place) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise place.error(f"must be a number >= 0, not {_show(value)}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise place.error(f"must be a finite number >= 0, not {_show(value)}")
    return number


def _json_value(value: object, place: _Place) -> object:
    """A plain JSON value (YAML's own scalar and container types unwrapped)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise place.error(f"{value} is not a JSON number")
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dt.datetime):
        raise place.error(f"{value} is a YAML timestamp; quote it to keep it text")
    if isinstance(value, dt.date):
        return value.isoformat()  # the text as written
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise place.error(f"key {_show(key)} must be a string (quote it)")
            out[str(key)] = _json_value(item, place.key(value, str(key)))
        return out
    if isinstance(value, list | tuple):
        return [_json_value(item, place.item(value, i)) for i, item in enumerate(value)]
    raise place.error(f"{_show(value)} is not a JSON value")


# -- the sections --------------------------------------------------------------------------

_TOP = ("rules", "settings")
_RULE = ("name", "match", "reply", "error", "latency", "fault", "times")
_MATCH = ("host", "path", "method", "model", "last_user_message", "tool_result", "namespace")
_TEXT = ("exact", "contains", "regex")
_REPLY = ("text", "tool_calls")
_TOOL_CALL = ("name", "arguments", "id")
_ERROR = ("status", "message", "code", "retry_after", "retry_after_ms", "headers")
_LATENCY = ("ttfb", "ttfb_ms", "chunk", "chunk_ms")
_FAULT = ("cut_after", "stall_after", "stall", "stall_ms")
_SETTINGS = ("synthetic", "redact", "verify_allow", "replay_incomplete", "normalize")
_NORMALIZER = ("pattern", "replace")

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FRAMING = frozenset({"content-length", "transfer-encoding"})


def parse_document(data: object, source: str) -> tuple[tuple[Rule, ...], RuleSettings]:
    """The rules and settings of a decoded document; RulesError naming the place."""
    top = _Place(source)
    if data is None:
        return (), RuleSettings()
    if isinstance(data, list | tuple):
        return _rules(data, top), RuleSettings()
    if not isinstance(data, Mapping):
        raise top.error(
            "the top level must be a mapping with rules: (and settings:) or a list of "
            f"rules, not {_show(data)}"
        )
    doc = _Fields(data, top, _TOP)
    return doc.get("rules", _rules) or (), doc.get("settings", _settings) or RuleSettings()


def _rules(value: object, place: _Place) -> tuple[Rule, ...]:
    items = _list(value, place)
    return tuple(_rule(item, place.item(items, i), i + 1) for i, item in enumerate(items))


def _rule(value: object, place: _Place, number: int) -> Rule:
    given = value.get("name") if isinstance(value, Mapping) else None
    label = f'rule {number} "{given}"' if isinstance(given, str) and given else f"rule {number}"
    f = _Fields(value, replace(place, rule=label, field=""), _RULE)
    place = f.where
    rule = Rule(
        name=f.get("name", _name) or f"rule {number}",
        match=f.get("match", _match) or Match(),
        reply=f.get("reply", _reply),
        error=f.get("error", _error),
        latency=f.get("latency", _latency),
        fault=f.get("fault", _fault),
        times=f.get("times", _count),
    )
    if rule.reply is not None and rule.error is not None:
        raise place.error("a rule answers with a reply or an error, not both")
    if not rule.answers and not rule.modifies:
        raise place.error("has no action: give reply, error, latency or fault")
    return rule


def _match(value: object, place: _Place) -> Match:
    if value is None:
        return Match()
    f = _Fields(value, place, _MATCH)
    method = f.get("method", _name)
    if method is not None and not _TOKEN.fullmatch(method):
        raise f.place("method").error(f"{method!r} is not an HTTP method")
    return Match(
        host=f.get("host", _name),
        path=f.get("path", _name),
        method=method.upper() if method else None,
        model=f.get("model", _name),
        last_user=f.get("last_user_message", _text_match),
        tool_result=f.get("tool_result", _bool),
        namespace=f.get("namespace", _name),
    )


def _text_match(value: object, place: _Place) -> TextMatch:
    if isinstance(value, str):
        return TextMatch(exact=str(value))
    if not isinstance(value, Mapping):
        raise place.error(
            "must be a string (the exact text) or a mapping of exact, contains, regex, "
            f"not {_show(value)}"
        )
    f = _Fields(value, place, _TEXT)
    if not f:
        raise place.error("give at least one of exact, contains, regex")
    return TextMatch(f.get("exact", _string), f.get("contains", _name), f.get("regex", _regex))


def _reply(value: object, place: _Place) -> Reply:
    if isinstance(value, str):
        return Reply(text=str(value))
    f = _Fields(value, place, _REPLY)
    reply = Reply(f.get("text", _string), f.each("tool_calls", _tool_call))
    if reply.text is None and not reply.tool_calls:
        raise place.error("give text or tool_calls (or both)")
    return reply


def _tool_call(value: object, place: _Place) -> ToolCall:
    f = _Fields(value, place, _TOOL_CALL)
    name = f.get("name", _name)
    if name is None:
        raise place.error("a tool call needs a name")
    return ToolCall(name, f.get("arguments", _arguments), f.get("id", _name))


def _arguments(value: object, place: _Place) -> object:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise place.error(
            f"must be a mapping (the tool's arguments), not {_show(value)}; leave it out "
            "to have them made up from the tool's schema"
        )
    return _json_value(value, place)


def _error(value: object, place: _Place) -> HttpError:
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"status": value}
    f = _Fields(value, place, _ERROR)
    status = f.get("status", _status)
    if status is None:
        raise place.error("an error needs a status")
    return HttpError(
        status=status,
        message=f.get("message", _string),
        code=f.get("code", _code),
        retry_after=f.duration("retry_after"),
        headers=f.get("headers", _headers) or (),
    )


def _status(value: object, place: _Place) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise place.error(f"must be an HTTP error status, 400 to 599, not {_show(value)}")
    return int(value)


def _code(value: object, place: _Place) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _name(value, place)


def _headers(value: object, place: _Place) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise place.error(f"must be a mapping of header names to values, not {_show(value)}")
    out: list[tuple[str, str]] = []
    for name, raw in value.items():
        where = place.key(value, str(name))
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise where.error(f"{_show(name)} is not a header name")
        if name.lower() in _FRAMING:
            raise where.error("the proxy frames the body itself; leave this header out")
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise where.error(f"must be a string, not {_show(raw)}")
        text = str(raw)
        if "\r" in text or "\n" in text:
            raise where.error("a header value cannot hold a line break")
        out.append((str(name), text))
    return tuple(out)


def _latency(value: object, place: _Place) -> Latency:
    f = _Fields(value, place, _LATENCY)
    latency = Latency(f.duration("ttfb"), f.duration("chunk"))
    if latency.ttfb is None and latency.chunk is None:
        raise place.error("give ttfb or chunk (seconds), or ttfb_ms or chunk_ms")
    return latency


def _fault(value: object, place: _Place) -> Fault:
    f = _Fields(value, place, _FAULT)
    fault = Fault(f.get("cut_after", _count), f.get("stall_after", _count), f.duration("stall"))
    if fault.cut_after is not None and fault.stall_after is not None:
        raise place.error("give cut_after or stall_after, not both")
    if fault.cut_after is None and fault.stall_after is None:
        raise place.error("give cut_after or stall_after")
    if fault.stall is not None and fault.stall_after is None:
        raise place.error("stall (how long a stall lasts) needs stall_after")
    return fault


def _settings(value: object, place: _Place) -> RuleSettings:
    if value is None:
        return RuleSettings()
    f = _Fields(value, replace(place, rule="settings", field=""), _SETTINGS)
    return RuleSettings(
        synthetic=f.get("synthetic", _pacing) or SyntheticPacing(),
        redact=f.each("redact", _replacing_regex),
        verify_allow=f.each("verify_allow", _regex),
        replay_incomplete=bool(f.get("replay_incomplete", _bool)),
        normalize=f.each("normalize", _normalizer),
    )


def _pacing(value: object, place: _Place) -> SyntheticPacing:
    f = _Fields(value, place, _LATENCY)
    default = SyntheticPacing()
    ttfb, chunk = f.duration("ttfb"), f.duration("chunk")
    return SyntheticPacing(
        default.ttfb if ttfb is None else ttfb, default.chunk if chunk is None else chunk
    )


def _normalizer(value: object, place: _Place) -> Normalizer:
    f = _Fields(value, place, _NORMALIZER)
    pattern = f.get("pattern", _replacing_regex)
    if pattern is None:
        raise place.error("a normalizer needs a pattern")
    return Normalizer(pattern, f.get("replace", _string) or "")
