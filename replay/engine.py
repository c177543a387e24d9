"""Orchestration: one plan per request, and what is kept of each answer.

Owns the run: the per-run occurrence counters (a number an answer was not stored under is
given back), the rules file's say on each request, the plan (`plan`: serve a playback, make
an answer, forward with or without recording; plan.py holds the mode table; answers.py
makes the answers), the decision to record an answer as its head arrives (`tap`), and
`commit`, the one place where a recording becomes a stored interaction (through `redact`,
the only way to the store). Owns the report and the run's tally, record mode's clean-stop
clean-up, and `reconfigure`, which changes only what changed options affect. Knows nothing
of mitmproxy or sockets.
"""

from __future__ import annotations

import heapq
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from replay import __version__
from replay.answers import Maker, interruption, log_miss, with_rules
from replay.config import MissPolicy, Mode, Settings, check_namespace
from replay.control import OutcomeWindow
from replay.errors import BadNamespace, ConfigError
from replay.fingerprint import FINGERPRINT_VERSION, Fingerprint, FingerprintPolicy, fingerprint
from replay.models import (
    DEFAULT_NAMESPACE,
    Interaction,
    Key,
    Outcome,
    Provenance,
    Request,
    ResponseHead,
)
from replay.nearmiss import NearMissIndex
from replay.plan import Action, Forward, Made, Make, Plan, Serve, decide_action
from replay.player import Interruption, Planner
from replay.prepared import Prepared
from replay.providers.errors import NearMiss
from replay.recorder import Recording
from replay.redact import redact, redacted_url
from replay.report import NOTABLE, ReportLine, ReportWriter, Tally
from replay.rules import RuleSet, RulesFile, SyntheticPacing, Verdict
from replay.store import Store, WriteOutcome

logger = logging.getLogger(__name__)

NO_VERDICT = Verdict(answer=None, latency=None, fault=None, rules=())
"""No rules file, or no rule matched."""
INLINE_BODY = 256 * 1024
"""Requests with larger bodies are prepared and answered on a worker thread."""


@dataclass(frozen=True, slots=True)
class Taps:
    """What to do with a forwarded answer whose head just arrived."""

    recording: Recording | None
    """Tap the body into this (it will be committed), or None: not stored."""
    hold: float
    """Seconds to hold the head back (a rule's latency; never while recording)."""
    cut: Interruption | None
    """A rule's fault: withhold the body past its chunk count, then drop the connection."""


class Engine:
    """Plans each request and commits recordings; one per proxy run."""

    def __init__(
        self, settings: Settings, store: Store | None = None, rules: RulesFile | None = None
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else _store(settings)
        self._lock = threading.Lock()  # the counters, when plans are made off the loop
        self.settings = settings = self._checked(settings)
        if rules is None and settings.rules:
            rules = RulesFile(settings.rules)
        self.rules = rules
        self._ruleset: RuleSet | None = rules.current() if rules is not None else None
        self.policy = self._policy_for(settings, self._ruleset)
        self.maker = Maker(NearMissIndex(self.store, self.policy))
        self.planner = Planner(settings.speed)
        self.report = ReportWriter(settings.report) if settings.report else None
        self.tally = Tally()
        self.window = OutcomeWindow()  # the control endpoint's outcomes (see below)
        self._next: dict[tuple[str, str], int] = {}
        self._given_back: dict[tuple[str, str], list[int]] = {}
        self._rule_next: dict[tuple[str, str], int] = {}
        self._recorded: dict[tuple[str, str], int] = {}
        # Decoding and redacting a recording costs CPU (a few ms for a large body), and the
        # last chunk reaches the client only once the response hook returns: one worker
        # thread does it, in order, then hands the result to the store's writer.
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-commit")
        self.lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-lookup")
        """Plans whose lookups wait on a remote store (`Store.remote`), one at a time, in
        the order the requests came."""
        self.workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="replay-make")
        """Slow work (misses, long embedding batches, huge requests) is done here, off the
        event loop, and not in the loop's default executor (DNS lookups use it)."""

    # --- options ------------------------------------------------------------------------

    def reconfigure(self, settings: Settings, rules: RulesFile | None) -> None:
        """Take new options, rebuilding only what they affect: the occurrence counters,
        the stored Responses state and the tally stay (a run goes on), unless the store
        itself changes (its run ends: drained and cleaned up as at a stop)."""
        old = self.settings
        store = self.store
        if settings.dir != old.dir or settings.cache != old.cache:
            self._committer.submit(lambda: None).result()
            self._finish_store()
            self.store = _store(settings)
            self._next.clear()
            self._given_back.clear()
            self._recorded.clear()
        if settings.mode is Mode.AUTO and (old.mode is not Mode.AUTO or self.store is not store):
            settings = self._checked(settings)
        self.settings = settings
        self.store.max_body = settings.max_body
        self.store.claim_names = settings.mode is Mode.AUTO
        if settings.rules != old.rules:
            self.rules = rules
            self._ruleset = rules.current() if rules is not None else None
        self._adopt(self._ruleset, force=settings.dir != old.dir)
        if settings.speed != old.speed:
            self.planner = Planner(settings.speed)
        if settings.report != old.report:
            if self.report is not None:
                self.report.close()
            self.report = ReportWriter(settings.report) if settings.report else None

    def _checked(self, settings: Settings) -> Settings:
        """`settings`, with `auto` made `replay` if the store is read-only. Raises StoreError
        (one line naming the store) if it cannot enforce a claim (auto would overwrite)."""
        if settings.mode is Mode.AUTO and not self.store.check_claims():
            logger.warning("replay: the store is read-only: auto mode replays, records nothing")
            return replace(settings, mode=Mode.REPLAY)
        return settings

    def _policy_for(self, settings: Settings, ruleset: RuleSet | None) -> FingerprintPolicy:
        if ruleset is None:
            return FingerprintPolicy(ignore=settings.ignore)
        s = ruleset.settings
        return FingerprintPolicy(ignore=settings.ignore, normalize=s.normalize, redact=s.redact)

    def _adopt(self, ruleset: RuleSet | None, force: bool = False) -> None:
        """Take the fingerprint policy of the options and rules in force; a change of
        fingerprints in the middle of a run is logged (earlier requests keyed otherwise)."""
        self._ruleset = ruleset
        policy = self._policy_for(self.settings, ruleset)
        if policy != self.policy:
            logger.warning(
                "replay: fingerprints change from now on (replay_ignore or the rules file's "
                "normalize/redact settings changed): requests already seen this run were "
                "keyed otherwise"
            )
            self.policy = policy
            force = True
        if force:
            self.maker.nearmiss = NearMissIndex(self.store, self.policy)

    # --- planning -----------------------------------------------------------------------

    def namespace(self, requested: str | None) -> str:
        """The namespace for a request: its header, else `replay_cassette`, else default."""
        if requested is None:
            return self.settings.cassette or DEFAULT_NAMESPACE
        try:
            return check_namespace(requested.strip())
        except ConfigError as e:
            raise BadNamespace(f"x-replay-cassette: {e}") from None

    def realtime_refusal(self, request: Request) -> str | None:
        """Why a WebSocket upgrade (a realtime API) is refused, or None to let it through.

        Realtime traffic is not recorded: passthrough, record and auto forward it untouched;
        replay mode never contacts a provider, so it refuses, unless `replay_miss=forward`."""
        s = self.settings
        if s.mode is not Mode.REPLAY or s.miss is MissPolicy.FORWARD:
            return None
        return (
            f"replay: realtime (WebSocket) traffic to {request.host} is not recorded, and "
            "replay mode never contacts the provider; use replay_mode=passthrough, or "
            "replay_miss=forward to let it through"
        )

    def prepare(self, request: Request, namespace: str) -> tuple[Prepared, Fingerprint]:
        """Decode, parse and route the request, and key it (thread-safe: a large or
        content-encoded request is prepared on a worker thread). Raises BodyTooLarge past
        `replay_max_body` (decoded), JsonTooDeep for JSON no parser should recurse into."""
        prepared = Prepared(request, namespace, self.settings.max_body)
        return prepared, fingerprint(prepared.decoded, self.policy)

    def plan(self, prepared: Prepared, fp: Fingerprint) -> Plan:
        """Count the request's occurrence, look it up, apply the rules and the mode table.
        Runs on the event loop, or on a worker (a large request, a remote store's lookup):
        the counters are taken under a lock."""
        ruleset = self.rules.current() if self.rules is not None else None
        if ruleset is not self._ruleset:
            self._adopt(ruleset)
            fp = fingerprint(prepared.decoded, self.policy)
        namespace = prepared.namespace
        counter = (namespace, fp.hex)
        verdict = NO_VERDICT
        if ruleset is not None:
            verdict = ruleset.evaluate(prepared.decoded, namespace, prepared.body)
            if verdict.answer is not None:
                # Answers instead of the store or upstream, on its own count: a request a
                # rule answered (a 429 before the retry) does not shift the occurrence
                # numbers of those that reach the store or upstream.
                with self._lock:
                    occurrence = self._rule_next.get(counter, 0)
                    self._rule_next[counter] = occurrence + 1
                key = Key(namespace, fp.hex, occurrence)
                costly = prepared.resolved.costly or len(prepared.request.body) > INLINE_BODY
                if verdict.answer.error is not None:
                    costly = False
                return Make(prepared, key, fp, verdict, False, Action.SYNTHESIZE, costly)
        key = Key(namespace, fp.hex, self._allocate(counter))
        found = self._lookup(key)
        action, record = decide_action(self.settings.mode, self.settings.miss, found is not None)
        miss = found is None and self.settings.mode in (Mode.REPLAY, Mode.AUTO)
        if action is Action.SERVE:
            assert found is not None
            playback = self.planner(found, prepared.request.header("accept-encoding"))
            return Serve(prepared, key, fp, verdict, False, with_rules(playback, verdict))
        if action is Action.FORWARD:
            forward = Forward(prepared, key, fp, verdict, miss, record)
            if miss and self.settings.mode is Mode.REPLAY:
                self.workers.submit(self._log_forwarded_miss, forward)
            return forward
        # A miss: its nearest recording is looked up (the store is read) on a worker.
        return Make(prepared, key, fp, verdict, True, action, True)

    def _allocate(self, counter: tuple[str, str]) -> int:
        """The next occurrence number: the lowest given back, else a new one."""
        with self._lock:
            free = self._given_back.get(counter)
            if free:
                return heapq.heappop(free)
            occurrence = self._next.get(counter, 0)
            self._next[counter] = occurrence + 1
            return occurrence

    def _lookup(self, key: Key) -> Interaction | None:
        mode = self.settings.mode
        if mode is Mode.REPLAY:
            found = self.store.get_latest(key)
        elif mode is Mode.AUTO:
            found = self.store.get(key)
        else:
            return None
        if found is not None and not found.complete and not self._replay_incomplete:
            return None  # an interrupted recording is a miss unless asked for
        return found

    @property
    def _replay_incomplete(self) -> bool:
        return self._ruleset is not None and self._ruleset.settings.replay_incomplete

    @property
    def pacing(self) -> SyntheticPacing:
        """Time to first byte and gap between chunks of made-up streams (unscaled)."""
        return self._ruleset.settings.synthetic if self._ruleset else SyntheticPacing()

    # --- made-up and forwarded answers --------------------------------------------------

    def make(self, plan: Make) -> Made:
        """The answer of a `Make` plan, paced and modified, ready to send (may read the
        store: a miss looks for its nearest recording)."""
        return self.maker.make(plan, self.settings, self.pacing)

    def _log_forwarded_miss(self, plan: Forward) -> None:
        log_miss(plan, Outcome.FORWARDED, self.maker.nearest(plan))

    @staticmethod
    def _url(plan: Plan) -> str:
        return redacted_url(plan.prepared.request)

    def tap(self, plan: Forward, head: ResponseHead) -> Taps:
        """What to do with a forwarded answer whose head arrived: record it (auto keeps
        2xx unless `replay_record_errors`), hold it back, cut it."""
        record = plan.record and (
            self.settings.mode is not Mode.AUTO
            or 200 <= head.status < 300
            or self.settings.record_errors
        )
        if record and not self.store.may_write(plan.key.namespace):
            record = False  # another live proxy records this namespace (logged once)
        if plan.record and not record:
            self.give_back(plan)
        latency = plan.verdict.latency
        hold = latency.ttfb if latency is not None and latency.ttfb else 0.0
        if hold and record:
            # Chunks arriving during the hold would be tapped late, all at once: the hold
            # would be baked into the cassette. Recording keeps the real timing.
            logger.info(
                "replay: latency rule not applied to %s: it is being recorded", self._url(plan)
            )
            hold = 0.0
        recording = Recording(head) if record else None
        return Taps(recording, hold, interruption(plan.verdict.fault))

    def give_back(self, plan: Plan) -> None:
        """The answer to `plan` will not be stored: its occurrence number is free again."""
        counter = (plan.key.namespace, plan.key.fingerprint)
        with self._lock:
            heapq.heappush(self._given_back.setdefault(counter, []), plan.key.occurrence)

    def commit(self, plan: Forward, recording: Recording, ttfb: float) -> str | None:
        """Store a recording, redacted (marked incomplete when its answer did not end);
        returns at once (see `flush`). Returns why it is not stored, if it is not: a request
        and answer larger together than `replay_max_body` could never be read back."""
        assert recording.head is not None
        size = len(plan.prepared.decoded.body) + sum(len(c.data) for c in recording.chunks)
        if size > self.settings.max_body:
            self.give_back(plan)
            why = f"not stored: {size} bytes, more than replay_max_body ({self.settings.max_body})"
            logger.warning("replay: %s %s", self._url(plan), why)
            return why
        # The redaction patterns of the rules in force now (a reload is never read from the
        # commit thread).
        patterns = self._ruleset.settings.redact if self._ruleset is not None else ()
        try:
            self._committer.submit(self._commit, plan, recording, ttfb, patterns)
        except RuntimeError:  # closed: the proxy is stopping
            logger.warning("replay: %s not stored: the proxy is stopping", self._url(plan))
            return "not stored: the proxy is stopping"
        counter = (plan.key.namespace, plan.key.fingerprint)
        self._recorded[counter] = max(self._recorded.get(counter, -1), plan.key.occurrence)
        return None

    def _commit(
        self,
        plan: Forward,
        recording: Recording,
        ttfb: float,
        patterns: tuple[re.Pattern[str], ...],
    ) -> None:
        prepared, head = plan.prepared, recording.head
        assert head is not None
        try:
            provenance = Provenance(
                recorded_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                provider=prepared.provider,
                model=prepared.model,
                user_agent=prepared.request.header("user-agent"),
                upstream_status=head.status,
                tool_version=__version__,
            )
            interaction = Interaction(
                key=plan.key,
                fingerprint_version=FINGERPRINT_VERSION,
                ignore=self.policy.ignore,
                request=prepared.decoded,
                response=head,
                ttfb=max(ttfb, 0.0),
                chunks=recording.chunks,
                complete=recording.complete,
                provenance=provenance,
            )
            put = self.store.put(redact(interaction, patterns))
            put.add_done_callback(partial(self._claim_lost, plan))
        except Exception:
            logger.exception("replay: could not store %s", self._url(plan))

    def _claim_lost(self, plan: Forward, outcome: WriteOutcome) -> None:
        """On the writer thread: another proxy recorded this name first (`auto` on a shared
        store). Its answer is kept; the report says so in a line of its own (not counted)."""
        if outcome is not WriteOutcome.LOST or self.report is None:
            return
        key, request = plan.key, plan.prepared.request
        detail = "claim lost: another proxy recorded it first; its answer is kept"
        self.report.write(
            ReportLine(
                request.method,
                redacted_url(request),
                key.namespace,
                key.fingerprint,
                key.occurrence,
                Outcome.RECORDED.value,
                None,
                0.0,
                detail,
            )
        )

    # --- the control endpoint (issue #10: replay/control.py, used by the pytest plugin) --

    def reset_counters(self, namespace: str | None = None) -> int:
        """Occurrence counting starts again at 0 for `namespace` (every namespace if None):
        its next request of each kind is occurrence 0, as at the start of a run. Returns how
        many fingerprints had a count. Record mode's clean-up at a stop is not affected."""
        dropped: set[tuple[str, str]] = set()
        with self._lock:
            for counters in (self._next, self._given_back, self._rule_next):
                for counter in [c for c in counters if namespace is None or c[0] == namespace]:
                    del counters[counter]
                    dropped.add(counter)
        return len(dropped)

    def control_state(self) -> dict[str, Any]:
        """The settings a control client may want to see, and the namespace in force."""
        s = self.settings
        return {
            "namespace": s.cassette or DEFAULT_NAMESPACE,
            "mode": s.mode.value,
            "miss": s.miss.value,
            "dir": s.dir,
            "speed": s.speed,
            "rules": s.rules,
        }

    # --- the run ------------------------------------------------------------------------

    def settle(
        self,
        request: Request,
        namespace: str,
        plan: Plan | None,
        outcome: Outcome,
        status: int | None,
        started: float,
        detail: str | None = None,
        nearest: NearMiss | None = None,
    ) -> None:
        """An exchange ended: its report line, and its place in the run's tally."""
        if self.report is None and not self.window.watching and outcome.value not in NOTABLE:
            self.tally.count(outcome.value)  # a hit without a report: nothing to write
            return
        key = plan.key if plan is not None else None
        if plan is not None and plan.verdict.rules:
            applied = "rules: " + ", ".join(plan.verdict.rules)
            detail = f"{detail}; {applied}" if detail else applied
        line = ReportLine(
            method=request.method,
            url=redacted_url(request),
            namespace=namespace,
            fingerprint=key.fingerprint if key else "",
            occurrence=key.occurrence if key else -1,
            outcome=outcome.value,
            status=status,
            duration_ms=round((time.monotonic() - started) * 1000, 3),
            detail=detail,
            model=plan.prepared.model if plan is not None else None,
            nearest=_near(nearest),
        )
        self.tally.add(line)
        self.window.add(line, started)
        if self.report is not None:
            self.report.write(line)

    def flush(self) -> None:
        """Wait until every committed recording is written."""
        self._committer.submit(lambda: None).result()
        self.store.flush()

    def close(self) -> None:
        """A clean stop: drain the writer, clean up (record mode), log the run's summary."""
        self.workers.shutdown(wait=False, cancel_futures=True)
        self.lookups.shutdown(wait=False, cancel_futures=True)
        self._committer.shutdown(wait=True)
        self._finish_store()
        if self.report is not None:
            self.report.close()
        for line in self.tally.summary():
            logger.info(line)

    def _finish_store(self) -> None:
        self.store.flush()
        if self.settings.mode is Mode.RECORD:
            for (namespace, fp), highest in self._recorded.items():
                removed = self.store.remove_above(namespace, fp, highest)
                if removed:
                    logger.info("removed %d stale occurrence(s) of %s", removed, fp[:12])
        self.store.close()


def _store(settings: Settings) -> Store:
    return Store(
        settings.dir,
        max_body=settings.max_body,
        cache_dir=settings.cache,
        claim_names=settings.mode is Mode.AUTO,
    )


def _near(nearest: NearMiss | None) -> dict[str, object] | None:
    if nearest is None:
        return None
    return {
        "fingerprint": nearest.fingerprint,
        "occurrence": nearest.occurrence,
        "url": nearest.url,
        "field": nearest.field,
    }
