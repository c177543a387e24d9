"""What the proxy will do with one request: the mode table and the plans it leads to.

Owns `decide_action` (a pure function over mode, miss policy and whether the store has the
request; tested as a full table) and the plan the engine hands the addon for each request:
- `Serve`: a playback ready to send (a hit, the rules' modifiers applied);
- `Make`: an answer still to be made (a synthetic one, a rule's, or a miss naming its
  nearest recording), and whether making it is slow enough for a worker thread;
- `Forward`: send it upstream, recording the answer or not.
Every plan carries the prepared request (its route decides every shape), the key, the
fingerprint and the rules' verdict. Knows nothing of mitmproxy, files or sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from replay.config import MissPolicy, Mode
from replay.fingerprint import Fingerprint
from replay.models import Key, Outcome
from replay.player import Playback
from replay.prepared import Prepared
from replay.providers.errors import NearMiss
from replay.rules import Verdict


class Action(StrEnum):
    SERVE = "serve"
    """Answer from the store."""
    FORWARD = "forward"
    """Send upstream (and record the answer if asked)."""
    FAIL = "fail"
    """Answer with a provider-shaped miss error."""
    SYNTHESIZE = "synthesize"
    """Answer with a made-up response (a responder, or a rule's canned answer)."""


def decide_action(mode: Mode, miss: MissPolicy, stored: bool) -> tuple[Action, bool]:
    """The mode table: (what to do, whether to record the answer)."""
    match mode:
        case Mode.RECORD:
            return Action.FORWARD, True
        case Mode.PASSTHROUGH:
            return Action.FORWARD, False
        case Mode.AUTO:
            return (Action.SERVE, False) if stored else (Action.FORWARD, True)
        case Mode.REPLAY:
            if stored:
                return Action.SERVE, False
            if miss is MissPolicy.FORWARD:
                return Action.FORWARD, False
            if miss is MissPolicy.SYNTHETIC:
                return Action.SYNTHESIZE, False
            return Action.FAIL, False


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one request; see the subclasses."""

    prepared: Prepared
    key: Key
    fingerprint: Fingerprint
    verdict: Verdict
    miss: bool
    """Nothing stored answers this request (in replay or auto mode): the summary and the
    log name it with its nearest recording."""

    @property
    def plain(self) -> bool:
        """No rule applies (a hit can then be answered from a memoised response)."""
        return not self.verdict.rules


@dataclass(frozen=True, slots=True)
class Serve(Plan):
    """Send `playback` (scaled, the rules' modifiers applied): a hit."""

    playback: Playback


@dataclass(frozen=True, slots=True)
class Make(Plan):
    """Make an answer (`Engine.make`), then send it like a hit."""

    action: Action
    """SYNTHESIZE (a responder or a rule's answer) or FAIL (the miss error)."""
    costly: bool
    """Making it may take long (the nearest-recording search, embeddings, a huge
    request): a worker thread makes it."""


@dataclass(frozen=True, slots=True)
class Forward(Plan):
    """Send upstream; `record`: keep the answer (if `Engine.tap` agrees with its status)."""

    record: bool


@dataclass(frozen=True, slots=True)
class Made:
    """An answer made for a `Make` plan."""

    playback: Playback
    outcome: Outcome
    nearest: NearMiss | None = None
