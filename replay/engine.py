"""Orchestration: what to do with each request, and what to keep of each answer.

Owns the mode table (`decide_action`, a pure function over mode, miss policy and whether the
store has the request), the rules file's say on each request (an answer rule answers in every
mode), the per-run occurrence counters, made-up answers (`synthesize`: the responder for the
endpoint, or a provider-shaped miss naming the nearest recording), and `commit`, the one
place where a finished recording becomes a stored interaction (through `redact`, the only way
to the store). Owns record mode's clean-stop clean-up and the per-run state of stateful
synthetic surfaces. Knows nothing of mitmproxy or sockets.
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from replay import __version__
from replay.config import MissPolicy, Mode, Settings, check_namespace
from replay.errors import BadNamespace, ConfigError
from replay.fingerprint import (
    FINGERPRINT_VERSION,
    Fingerprint,
    FingerprintPolicy,
    decoded_request,
    fingerprint,
)
from replay.hosts import HostPolicy, model_of, provider_of
from replay.models import (
    DEFAULT_NAMESPACE,
    Chunk,
    Interaction,
    Key,
    Outcome,
    Provenance,
    Request,
    ResponseHead,
)
from replay.nearmiss import NearMissIndex
from replay.providers import router
from replay.providers.base import Answer, BadCall, Call, Session
from replay.providers.errors import (
    bad_request_answer,
    error_answer,
    error_provider,
    miss_answer,
)
from replay.redact import redact, redacted_url
from replay.rules import RuleSet, RulesFile, SyntheticPacing, Verdict
from replay.store import Store

logger = logging.getLogger(__name__)

NO_VERDICT = Verdict(answer=None, latency=None, fault=None, rules=())
_EMBEDDING_PATH = re.compile(r"(?:/embeddings|/api/embed|:embedContent|:batchEmbedContents)$")
"""No rules file, or no rule matched."""


class Action(StrEnum):
    SERVE = "serve"
    """Answer from the store."""
    FORWARD = "forward"
    """Send upstream (and record the answer if `Decision.record`)."""
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
class Decision:
    action: Action
    record: bool
    key: Key
    fingerprint: Fingerprint
    interaction: Interaction | None = None
    """The stored interaction to serve, for SERVE."""
    verdict: Verdict = NO_VERDICT
    """What the rules file says: an answer rule, latency and fault modifiers."""


class Engine:
    """Decides per request and commits recordings; one per proxy run and settings."""

    def __init__(
        self, settings: Settings, store: Store | None = None, rules: RulesFile | None = None
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else Store(settings.dir)
        self.policy = FingerprintPolicy(ignore=settings.ignore)
        self.hosts = HostPolicy(settings.hosts)
        if rules is None and settings.rules:
            rules = RulesFile(settings.rules)
        self.rules = rules
        self._policy_of: RuleSet | None = None
        if rules is not None:
            self._policy_of = rules.current()
            self.policy = self._policy_for(self._policy_of)
        self.session = Session()
        self.nearmiss = NearMissIndex(self.store, self.policy)
        if settings.mode is Mode.REPLAY and settings.miss is MissPolicy.ERROR:
            # Every miss names its nearest recording: index the namespace off the event loop
            # now rather than on the first miss.
            namespace = settings.cassette or DEFAULT_NAMESPACE
            threading.Thread(
                target=self._warm, args=(namespace,), name="replay-nearmiss", daemon=True
            ).start()
        self._occurrences: dict[tuple[str, str], int] = {}
        self._rule_occurrences: dict[tuple[str, str], int] = {}
        self._recorded: dict[tuple[str, str], int] = {}
        # Decoding and redacting a recording costs CPU (a few ms for a large body), and the
        # last chunk reaches the client only once the response hook returns: one worker
        # thread does it, in order, then hands the result to the store's writer.
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-commit")
        self.workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="replay-make")
        """Slow answers (misses, long embedding batches, huge requests) are made here, off
        the event loop, and not in the loop's default executor (DNS lookups use it)."""

    def _warm(self, namespace: str) -> None:
        try:
            self.nearmiss.warm(namespace)
        except Exception:
            logger.exception("replay: could not index %s for near-miss errors", namespace)

    def namespace(self, requested: str | None) -> str:
        """The namespace for a request: its header, else `replay_cassette`, else default."""
        if requested is None:
            return self.settings.cassette or DEFAULT_NAMESPACE
        try:
            return check_namespace(requested.strip())
        except ConfigError as e:
            raise BadNamespace(f"x-replay-cassette: {e}") from None

    def _policy_for(self, ruleset: RuleSet) -> FingerprintPolicy:
        normalize = tuple((n.pattern, n.replace) for n in ruleset.settings.normalize)
        return FingerprintPolicy(ignore=self.settings.ignore, normalize=normalize)

    def _adopt(self, ruleset: RuleSet) -> None:
        """Take a reloaded rules file's normalisers into the fingerprint policy."""
        self._policy_of = ruleset
        policy = self._policy_for(ruleset)
        if policy != self.policy:
            self.policy = policy
            self.nearmiss = NearMissIndex(self.store, policy)

    def fingerprint(self, request: Request) -> Fingerprint:
        """The request's key under the current policy (thread-safe: `decide` may be handed
        one computed on a worker thread for a large request)."""
        return fingerprint(request, self.policy)

    def decide(self, request: Request, namespace: str, fp: Fingerprint | None = None) -> Decision:
        """Fingerprint the request (unless `fp` is given), count its occurrence, look it
        up, apply the rules and the mode table. Runs on the event loop only."""
        ruleset = self.rules.current() if self.rules is not None else None
        if ruleset is not None and ruleset is not self._policy_of:
            self._adopt(ruleset)
        if fp is None:
            fp = fingerprint(request, self.policy)
        counter = (namespace, fp.hex)
        verdict = NO_VERDICT
        if ruleset is not None:
            verdict = ruleset.evaluate(decoded_request(request), namespace)
            if verdict.answer is not None:
                # Answers instead of the store or upstream, and on its own count: a request
                # a rule answered (a 429 before the retry) does not shift the occurrence
                # numbers of the ones that reach the store or upstream.
                occurrence = self._rule_occurrences.get(counter, 0)
                self._rule_occurrences[counter] = occurrence + 1
                key = Key(namespace, fp.hex, occurrence)
                return Decision(Action.SYNTHESIZE, False, key, fp, None, verdict)
        occurrence = self._occurrences.get(counter, 0)
        self._occurrences[counter] = occurrence + 1
        key = Key(namespace, fp.hex, occurrence)
        found: Interaction | None = None
        if self.settings.mode is Mode.REPLAY:
            found = self.store.get_latest(key)
        elif self.settings.mode is Mode.AUTO:
            found = self.store.get(key)
        if found is not None and not found.complete:
            found = None  # an interrupted recording is a miss
        action, record = decide_action(self.settings.mode, self.settings.miss, found is not None)
        served = found if action is Action.SERVE else None
        return Decision(action, record, key, fp, served, verdict)

    @property
    def pacing(self) -> SyntheticPacing:
        """Time to first byte and gap between chunks of made-up streams (unscaled)."""
        return self.rules.current().settings.synthetic if self.rules else SyntheticPacing()

    def cheap_answer(self, decision: Decision, request: Request) -> bool:
        """Whether making the answer is quick enough for the event loop: a responder or a
        rule's answer is; a miss (the nearest-recording search reads the store) is not."""
        if decision.action is not Action.SYNTHESIZE:
            return False
        answer = decision.verdict.answer
        if answer is not None and answer.error is not None:
            return True
        if router.find(request) is None:
            return False
        # An embedding costs a vector of thousands of floats per input: a batch of 500
        # takes most of a second.
        return not _EMBEDDING_PATH.search(request.path)

    def synthesize(self, decision: Decision, request: Request) -> tuple[Answer, Outcome]:
        """A made-up answer: the rule's canned reply or error, else the endpoint's responder;
        a provider-shaped miss (404, naming the nearest recording) when no responder knows
        the endpoint. A request the responder finds malformed gets the provider's 400."""
        decoded = decoded_request(request)
        rule = decision.verdict.answer
        found = router.find(decoded)
        provider = error_provider(decoded)
        if rule is not None and rule.error is not None:
            e = rule.error
            answer = error_answer(
                provider,
                e.status,
                e.message or f"replay: error {e.status} from rule {rule.name!r}",
                code=e.code,
                retry_after=e.retry_after,
                headers=e.headers,
            )
            return answer, Outcome.SYNTHETIC
        if found is None:
            return self.miss(decision, request, unknown_endpoint=True), Outcome.MISS
        route, params = found
        key = decision.key
        reply = rule.reply if rule is not None else None
        # A rule-answered request counts its occurrences apart (see `decide`): its ids and
        # text are seeded apart too, or a rule's answer and a later made-up one would share
        # ids (and a stored Responses object would be overwritten).
        seed = key.fingerprint if rule is None else f"{key.fingerprint}:rule"
        call = Call(
            decoded,
            seed,
            key.occurrence,
            reply,
            self.session,
            params,
            self.settings.synthetic_tools,
        )
        try:
            answer = route.respond(call)
        except BadCall as e:
            return bad_request_answer(provider, str(e)), Outcome.SYNTHETIC
        return answer, Outcome.SYNTHETIC

    def miss(self, decision: Decision, request: Request, unknown_endpoint: bool = False) -> Answer:
        """The provider-shaped 404 for a request nothing answers, naming the nearest
        recorded request of its namespace and the first field that differs."""
        nearest = None
        request = decoded_request(request)
        try:
            nearest = self.nearmiss.nearest(decision.key.namespace, request)
        except Exception:
            logger.exception("replay: near-miss search failed for %s", redacted_url(request))
        return miss_answer(
            request,
            decision.key,
            self.settings.mode,
            nearest,
            error_provider(request),
            unknown_endpoint=unknown_endpoint,
        )

    def should_store(self, decision: Decision, status: int) -> bool:
        """Whether a forwarded answer with `status` is kept (auto keeps 2xx unless told)."""
        if not decision.record:
            return False
        if self.settings.mode is Mode.AUTO and not 200 <= status < 300:
            return self.settings.record_errors
        return True

    def commit(
        self,
        decision: Decision,
        request: Request,
        head: ResponseHead,
        ttfb: float,
        chunks: tuple[Chunk, ...],
    ) -> None:
        """Store a complete recording, redacted; returns at once (see `flush`)."""
        # The redaction patterns of the rules in force now (a reload is never read from the
        # commit thread).
        patterns = self._policy_of.settings.redact if self._policy_of is not None else ()
        try:
            self._committer.submit(
                self._commit, decision.key, request, head, ttfb, chunks, patterns
            )
        except RuntimeError:  # closed: the options changed while this answer was in flight
            logger.warning("replay: %s not stored: the proxy was reconfigured", request.method)
            return
        counter = (decision.key.namespace, decision.key.fingerprint)
        self._recorded[counter] = max(self._recorded.get(counter, -1), decision.key.occurrence)

    def _commit(
        self,
        key: Key,
        request: Request,
        head: ResponseHead,
        ttfb: float,
        chunks: tuple[Chunk, ...],
        patterns: tuple[re.Pattern[str], ...],
    ) -> None:
        try:
            stored_request = decoded_request(request)
            provenance = Provenance(
                recorded_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                provider=provider_of(request),
                model=model_of(request, stored_request.body),
                user_agent=request.header("user-agent"),
                upstream_status=head.status,
                tool_version=__version__,
            )
            interaction = Interaction(
                key=key,
                fingerprint_version=FINGERPRINT_VERSION,
                ignore=self.policy.ignore,
                request=stored_request,
                response=head,
                ttfb=max(ttfb, 0.0),
                chunks=chunks,
                complete=True,
                provenance=provenance,
            )
            self.store.put(redact(interaction, patterns))
        except Exception:
            logger.exception("replay: could not store %s", redacted_url(request))

    def flush(self) -> None:
        """Wait until every committed recording is written."""
        self._committer.submit(lambda: None).result()
        self.store.flush()

    def close(self) -> None:
        """Drain the writer; in record mode drop stale occurrences above those recorded."""
        self.workers.shutdown(wait=False, cancel_futures=True)
        self._committer.shutdown(wait=True)
        self.store.flush()
        if self.settings.mode is Mode.RECORD:
            for (namespace, fp), highest in self._recorded.items():
                removed = self.store.remove_above(namespace, fp, highest)
                if removed:
                    logger.info("removed %d stale occurrence(s) of %s", removed, fp[:12])
        self.store.close()
