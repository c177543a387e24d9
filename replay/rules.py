"""What the rules file says about a request: which rule answers, and which modify the answer.

Owns `RuleSet.evaluate` (the match of every rule against a request, first answer wins, every
matching modifier applies, `times` counted per rule set and thread-safe), `Verdict`,
`load_rules`, and `RulesFile`, which reloads a changed file (at most every `interval`
seconds, by stat) and keeps the previous rules when a change is invalid or the file is gone.
The values live in rules_schema.py (re-exported here), reading and checking a file in
rules_parse.py; docs/rules.md is the user's reference. Knows nothing of mitmproxy, the
store or the responders.

Evaluation is cheap when no rule looks at the body: the request body is parsed (once) only
when a rule that got that far needs the model, the last user message or tool results.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replay.conversation import has_tool_result, last_user_text
from replay.fingerprint import Normalizer
from replay.hosts import model_of
from replay.models import Request
from replay.rules_parse import parse_document, read_document
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

__all__ = [
    "EMPTY",
    "NOTHING",
    "Fault",
    "HttpError",
    "Latency",
    "Match",
    "Normalizer",
    "Rule",
    "RuleSet",
    "RuleSettings",
    "RulesError",
    "RulesFile",
    "SyntheticPacing",
    "TextMatch",
    "Verdict",
    "load_rules",
]

logger = logging.getLogger(__name__)

_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the rules say about one request."""

    answer: Rule | None
    """The first applying rule with a reply or an error; it answers instead of the store
    or upstream."""
    latency: Latency | None
    """Every applying rule's latency, field by field: a later rule's field overrides."""
    fault: Fault | None
    """The fault that strikes first among the applying rules (one action, never two)."""
    rules: tuple[str, ...]
    """The names of every rule that applied, in file order (for logs and the report)."""


NOTHING = Verdict(None, None, None, ())
"""No rule applied."""


class _View:
    """A request as rules see it: the body parsed at most once, and only when asked."""

    __slots__ = ("_body", "_model", "_parsed", "_tool_result", "_user", "namespace", "request")

    def __init__(self, request: Request, namespace: str, body: object = _UNSET) -> None:
        self.request = request
        self.namespace = namespace
        self._parsed = body is not _UNSET
        self._body: object = None if body is _UNSET else body
        self._model: str | None = _UNSET
        self._user: str | None = _UNSET
        self._tool_result: bool | None = None

    @property
    def body(self) -> object:
        if not self._parsed:
            self._parsed = True
            data = self.request.body.lstrip()
            if data[:1] in (b"{", b"["):
                try:
                    self._body = json.loads(data)
                except (ValueError, RecursionError):
                    self._body = None
        return self._body

    @property
    def model(self) -> str | None:
        if self._model is _UNSET:
            body = self.body
            value = body.get("model") if isinstance(body, dict) else None
            # The path's model (Gemini, Azure deployments); b"": no second parse of the body.
            self._model = value if isinstance(value, str) else model_of(self.request, b"")
        return self._model

    @property
    def last_user(self) -> str | None:
        if self._user is _UNSET:
            self._user = last_user_text(self.body)
        return self._user

    @property
    def tool_result(self) -> bool:
        if self._tool_result is None:
            self._tool_result = has_tool_result(self.body)
        return self._tool_result


class _Matcher:
    """A `Match` with its globs compiled; cheap conditions are tested first."""

    __slots__ = ("host", "host_port", "last_user", "method", "model", "namespace", "path", "tool")

    def __init__(self, match: Match) -> None:
        self.method = match.method
        self.host = _compile(match.host, re.IGNORECASE)
        self.host_port = match.host is not None and ":" in match.host
        self.path = _compile(match.path, 0)
        self.namespace = _compile(match.namespace, 0)
        self.model = _compile(match.model, re.IGNORECASE)
        self.last_user = match.last_user
        self.tool = match.tool_result

    def matches(self, view: _View) -> bool:
        request = view.request
        if self.method is not None and request.method.upper() != self.method:
            return False
        if self.host is not None:
            host = request.host.rstrip(".")
            if self.host_port:
                host = f"{host}:{request.port}"
            if not self.host.match(host):
                return False
        if self.path is not None and not self.path.match(request.path):
            return False
        if self.namespace is not None and not self.namespace.match(view.namespace):
            return False
        if self.model is not None:
            model = view.model
            if model is None or not self.model.match(model):
                return False
        if self.last_user is not None and not self.last_user.matches(view.last_user):
            return False
        return self.tool is None or view.tool_result == self.tool


def _compile(glob: str | None, flags: int) -> re.Pattern[str] | None:
    return None if glob is None else re.compile(fnmatch.translate(glob), flags)


class RuleSet:
    """An ordered list of rules and the file's settings; `times` counters live here, so a
    reloaded file starts them afresh."""

    def __init__(self, rules: Iterable[Rule] = (), settings: RuleSettings | None = None) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.settings = settings if settings is not None else RuleSettings()
        self._matchers = tuple(_Matcher(rule.match) for rule in self.rules)
        self._used = [0] * len(self.rules)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RuleSet({len(self.rules)} rules)"

    def evaluate(self, request: Request, namespace: str, body: object = _UNSET) -> Verdict:
        """What the rules say about `request` (its body already content-decoded; `body`,
        when given, is its JSON already parsed: None for a body that is not JSON).

        A rule applies when it matches, is not spent (`times`), and contributes: it is the
        first matching answer rule, or it carries latency or a fault. An answer rule that an
        earlier one shadows, and that carries no modifier, does not apply and is not counted.
        """
        if not self.rules:
            return NOTHING
        view = _View(request, namespace, body)
        matched = [i for i, m in enumerate(self._matchers) if m.matches(view)]
        if not matched:
            return NOTHING
        if any(self.rules[i].times is not None for i in matched):
            with self._lock:  # the check and the count of `times` are one step
                return self._verdict(matched, counted=True)
        return self._verdict(matched, counted=False)

    def _verdict(self, matched: list[int], *, counted: bool) -> Verdict:
        answer: Rule | None = None
        latencies: list[Latency] = []
        faults: list[Fault] = []
        names: list[str] = []
        for index in matched:
            rule = self.rules[index]
            answers = rule.answers and answer is None
            if not answers and not rule.modifies:
                continue
            if counted and rule.times is not None:
                if self._used[index] >= rule.times:
                    continue
                self._used[index] += 1
            if answers:
                answer = rule
            if rule.latency is not None:
                latencies.append(rule.latency)
            if rule.fault is not None:
                faults.append(rule.fault)
            names.append(rule.name)
        if not names:
            return NOTHING
        return Verdict(answer, _latency(latencies), _fault(faults), tuple(names))


def _latency(latencies: list[Latency]) -> Latency | None:
    if not latencies:
        return None
    ttfb = chunk = None
    for latency in latencies:
        ttfb = latency.ttfb if latency.ttfb is not None else ttfb
        chunk = latency.chunk if latency.chunk is not None else chunk
    return Latency(ttfb, chunk)


def _fault(faults: list[Fault]) -> Fault | None:
    """The fault that acts first: the fewest chunks sent; at equal counts a cut (it drops
    the connection at once) beats a stall, and a shorter stall beats a longer one."""

    def rank(fault: Fault) -> tuple[int, int, float]:
        if fault.cut_after is not None:
            return (fault.cut_after, 0, 0.0)
        assert fault.stall_after is not None
        return (fault.stall_after, 1, fault.stall if fault.stall is not None else float("inf"))

    return min(faults, key=rank) if faults else None


EMPTY = RuleSet()
"""No rules, default settings."""


def load_rules(path: str | Path) -> RuleSet:
    """The rules file at `path` (JSON for `.json`, else YAML); RulesError on any problem."""
    path = Path(path)
    try:
        rules, settings = parse_document(read_document(path), str(path))
    except RulesError:
        raise
    except RecursionError:
        raise RulesError(f"{path}: nested too deeply") from None
    except Exception as e:  # a YAML library error we did not foresee: still a clean message
        raise RulesError(f"{path}: cannot be read as rules: {e}") from None
    return RuleSet(rules, settings)


_Stamp = tuple[int, int, int]


class RulesFile:
    """A rules file kept current: `current()` reloads it when it changed on disk.

    Loads at once (a RulesError propagates: an invalid file stops startup). Afterwards, at
    most every `interval` seconds of `clock`, the file is stat'ed (mtime, size, inode); a
    change is loaded, and a change that does not load is logged and the previous rules
    stay (until the file changes again). A deleted file keeps the previous rules (logged
    once); when it comes back it is loaded.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 0.5,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._rules = load_rules(self.path)
        self._checked = clock()

    def _stat(self) -> _Stamp | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> RuleSet:
        """The rules in force, reloaded first if the file changed since the last look."""
        now = self._clock()
        if now - self._checked < self._interval:
            return self._rules
        with self._lock:
            if now - self._checked >= self._interval:
                self._checked = now
                self._refresh()
            return self._rules

    def _refresh(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        if stamp is None:
            logger.warning(
                "replay: rules file %s is gone; keeping the %d rules loaded before",
                self.path,
                len(self._rules.rules),
            )
            return
        try:
            rules = load_rules(self.path)
        except Exception as e:  # never into a request: the previous rules stay
            logger.warning("replay: rules file not reloaded, the previous rules stay: %s", e)
            return
        self._rules = rules
        logger.info("replay: rules file %s reloaded: %d rules", self.path, len(rules.rules))
