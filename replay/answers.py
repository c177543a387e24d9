"""Made-up answers: what a `Make` plan sends, and what a miss says about itself.

Owns `Maker`: a rule's canned reply or error, the endpoint's responder (with the per-run
state of stateful surfaces, `Session`), the provider's 400 for a request a responder cannot
make sense of, and the 404 of a miss; each in the shape of the request's one route
(`Prepared.provider`), paced (`settings.synthetic`, scaled by `replay_speed`) and carrying
the rules' latency and faults. A miss is looked up in the near-miss index and logged with
its nearest recording and first differing field. Also owns the proxy's own errors
(`error_playback`). Knows nothing of mitmproxy, the store's files or the run's counters.
"""

from __future__ import annotations

import logging

from replay.config import Settings
from replay.models import Outcome, Request
from replay.nearmiss import NearMissIndex
from replay.plan import Action, Made, Make, Plan
from replay.player import Interruption, Playback, modified, paced
from replay.providers.base import Answer, BadCall, Call, Session
from replay.providers.errors import NearMiss, bad_request_answer, error_answer, miss_answer
from replay.providers.router import resolve
from replay.redact import redacted_url
from replay.rules import Fault, SyntheticPacing, Verdict

logger = logging.getLogger("replay.engine")


def interruption(fault: Fault | None) -> Interruption | None:
    """A rule's fault as the player's interruption."""
    if fault is None:
        return None
    if fault.stall_after is not None:
        return Interruption(fault.stall_after, fault.stall, hold=fault.stall is None)
    if fault.cut_after is not None:
        return Interruption(fault.cut_after)
    return None


def with_rules(playback: Playback, verdict: Verdict) -> Playback:
    """`playback` with the rules' latency and fault, if any applies."""
    latency, cut = verdict.latency, interruption(verdict.fault)
    if latency is None and cut is None:
        return playback
    ttfb, chunk = (latency.ttfb, latency.chunk) if latency is not None else (None, None)
    return modified(playback, ttfb, chunk, cut)


def error_playback(request: Request, status: int, message: str) -> Playback:
    """The proxy's own error (a 400 for a bad namespace, a 502 when it failed) in the shape
    of the request's provider, without a body for HEAD."""
    answer = error_answer(resolve(request).provider, status, message, code="replay_error")
    return _paced(answer, request.method.upper() == "HEAD")


def _paced(
    answer: Answer, head: bool, ttfb: float = 0.0, gap: float = 0.0, speed: float = 1.0
) -> Playback:
    return paced(
        answer.status, answer.headers, answer.frames, answer.stream, ttfb, gap, speed, head
    )


class Maker:
    """Makes the answers of `Make` plans; one per run (it holds the Responses state)."""

    def __init__(self, nearmiss: NearMissIndex) -> None:
        self.nearmiss = nearmiss
        self.session = Session()

    def make(self, plan: Make, settings: Settings, pacing: SyntheticPacing) -> Made:
        """The answer of `plan`, paced and modified, ready to send."""
        nearest = self.nearest(plan) if plan.miss else None
        if plan.action is Action.FAIL:
            answer, outcome = self._miss(plan, settings, nearest), Outcome.MISS
            ttfb = gap = 0.0
        else:
            answer, outcome = self._synthesize(plan, settings, nearest)
            ttfb, gap = pacing.ttfb, pacing.chunk
        playback = _paced(answer, plan.prepared.head, ttfb, gap, settings.speed)
        if plan.miss:
            log_miss(plan, outcome, nearest)
        return Made(with_rules(playback, plan.verdict), outcome, nearest)

    def _synthesize(
        self, plan: Make, settings: Settings, nearest: NearMiss | None
    ) -> tuple[Answer, Outcome]:
        """The rule's canned reply or error, else the endpoint's responder; a miss (404)
        when no responder knows the endpoint; the provider's 400 for a malformed request."""
        prepared, key = plan.prepared, plan.key
        rule = plan.verdict.answer
        provider = prepared.provider
        if rule is not None and rule.error is not None:
            e = rule.error
            message = e.message or f"replay: error {e.status} from rule {rule.name!r}"
            answer = error_answer(
                provider,
                e.status,
                message,
                code=e.code,
                retry_after=e.retry_after,
                headers=e.headers,
            )
            return answer, Outcome.SYNTHETIC
        route = prepared.resolved.route
        if route is None:
            return self._miss(plan, settings, nearest, unknown_endpoint=True), Outcome.MISS
        # A rule-answered request counts its occurrences apart (see `Engine.plan`): its ids
        # and text are seeded apart too, or a rule's answer and a later made-up one would
        # share ids (and a stored Responses object would be overwritten).
        seed = key.fingerprint if rule is None else f"{key.fingerprint}:rule"
        reply = rule.reply if rule is not None else None
        params = prepared.resolved.params
        call = Call(
            prepared.decoded,
            seed,
            key.occurrence,
            reply,
            self.session,
            params,
            prepared.body,
            settings.synthetic_tools,
        )
        try:
            return route.respond(call), Outcome.SYNTHETIC
        except BadCall as e:
            return bad_request_answer(provider, str(e)), Outcome.SYNTHETIC

    def _miss(
        self,
        plan: Plan,
        settings: Settings,
        nearest: NearMiss | None,
        unknown_endpoint: bool = False,
    ) -> Answer:
        return miss_answer(
            plan.key,
            settings.mode,
            nearest,
            plan.prepared.provider,
            unknown_endpoint=unknown_endpoint,
        )

    def nearest(self, plan: Plan) -> NearMiss | None:
        """The recording of the plan's namespace most like its request (reads the store)."""
        try:
            return self.nearmiss.nearest(plan.key.namespace, plan.prepared.decoded)
        except Exception:
            url = redacted_url(plan.prepared.request)
            logger.exception("replay: near-miss search failed for %s", url)
            return None


def log_miss(plan: Plan, outcome: Outcome, nearest: NearMiss | None) -> None:
    """A warning naming a miss, how it was answered, and its nearest recording."""
    key = plan.key
    where = f"{key.namespace}/{key.fingerprint[:12]}#{key.occurrence}"
    if nearest is None:
        near = "nothing is recorded in this namespace"
    else:
        field = nearest.field or "none (another replay_ignore or an incomplete recording)"
        near = f"nearest {nearest.fingerprint[:12]}#{nearest.occurrence} {nearest.url}, "
        near += f"first difference: {field}"
    logger.warning(
        "replay: miss answered %s: %s %s (%s); %s",
        "by forwarding" if outcome is Outcome.FORWARDED else f"as {outcome.value}",
        plan.prepared.request.method,
        redacted_url(plan.prepared.request),
        where,
        near,
    )
