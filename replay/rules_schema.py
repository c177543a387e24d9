"""The rules file's values: what a rules file holds, as frozen dataclasses, and RulesError.

Owns `Rule` and its parts (`Match`, `TextMatch`, `HttpError`, `Latency`, `Fault`), the
`settings:` section (`RuleSettings`, `SyntheticPacing`; `Normalizer` is fingerprint.py's) and
`RulesError`.
Reading and checking a file is rules_parse.py's; what rules do to a request is rules.py's
(which re-exports these names). docs/rules.md is the user's reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from replay.errors import ConfigError
from replay.fingerprint import Normalizer
from replay.providers.base import Reply


class RulesError(ConfigError):
    """A rules file that cannot be used; the message names the file, rule and field."""


@dataclass(frozen=True, slots=True)
class TextMatch:
    """A condition on the last user message; every given part must hold."""

    exact: str | None = None
    contains: str | None = None
    """Case-sensitive substring."""
    regex: re.Pattern[str] | None = None
    """Searched anywhere in the text (anchor it with ^ and $ to match the whole)."""

    def matches(self, text: str | None) -> bool:
        """Whether `text` satisfies every part; a request without user text never does."""
        if text is None:
            return False
        if self.exact is not None and text != self.exact:
            return False
        if self.contains is not None and self.contains not in text:
            return False
        return self.regex is None or self.regex.search(text) is not None


@dataclass(frozen=True, slots=True)
class Match:
    """What a request must look like for a rule to apply; None fields match anything."""

    host: str | None = None
    """Glob on the host name, case-insensitive (with a `:`, on `host:port`)."""
    path: str | None = None
    """Glob on the path without its query string; `*` also matches `/`."""
    method: str | None = None
    """Upper case."""
    model: str | None = None
    """Glob on the request's model (body `model`, else the Gemini path or Azure deployment),
    case-insensitive; a request without a model never matches."""
    last_user: TextMatch | None = None
    tool_result: bool | None = None
    """True: the conversation's last turn carries a tool result; False: it does not."""
    namespace: str | None = None
    """Glob on the cassette namespace."""


@dataclass(frozen=True, slots=True)
class HttpError:
    """An error answer: a status and a provider-shaped error body."""

    status: int
    message: str | None = None
    code: str | None = None
    retry_after: float | None = None
    """Seconds; sent as `retry-after` (and `retry-after-ms`)."""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Latency:
    """Time to the response headers and between body chunks, in seconds; never scaled by
    `replay_speed` (a rule's latency is meant as written)."""

    ttfb: float | None = None
    chunk: float | None = None


@dataclass(frozen=True, slots=True)
class Fault:
    """A broken answer: the connection is dropped after `cut_after` body chunks (0: right
    after the headers), or sending stops after `stall_after` chunks and the connection is
    held `stall` seconds (None: until the client gives up), then dropped."""

    cut_after: int | None = None
    stall_after: int | None = None
    stall: float | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of the rules file: a match and its actions."""

    name: str
    """As given, else `rule N` (N counts from 1 in file order)."""
    match: Match = field(default_factory=Match)
    reply: Reply | None = None
    """A canned reply: text and/or tool calls (arguments None: made up from the schema)."""
    error: HttpError | None = None
    latency: Latency | None = None
    fault: Fault | None = None
    times: int | None = None
    """Apply to the first N requests this rule applies to in a run, then never again."""

    @property
    def answers(self) -> bool:
        """Whether the rule answers (a reply or an error) rather than only modifies."""
        return self.reply is not None or self.error is not None

    @property
    def modifies(self) -> bool:
        return self.latency is not None or self.fault is not None


@dataclass(frozen=True, slots=True)
class SyntheticPacing:
    """How made-up streams are paced, in seconds, before `replay_speed` scales them."""

    ttfb: float = 0.03
    chunk: float = 0.005


@dataclass(frozen=True, slots=True)
class RuleSettings:
    """The rules file's `settings:` section."""

    synthetic: SyntheticPacing = field(default_factory=SyntheticPacing)
    redact: tuple[re.Pattern[str], ...] = ()
    """User redaction patterns: matches are replaced before anything is written."""
    verify_allow: tuple[re.Pattern[str], ...] = ()
    """`replay verify` does not report a finding whose text one of these matches."""
    replay_incomplete: bool = False
    """Replay interrupted recordings as they happened instead of treating them as misses."""
    normalize: tuple[Normalizer, ...] = ()
    """Applied to request string values before hashing."""
