"""An answer that comes from the upstream, on mitmproxy's flow: recorded, held, cut or kept.

Owns the per-flow state the addon's hooks share (`FlowState`) and the three moments of a
forwarded answer: its head arrives (`head`: the engine's `tap` says record, hold or cut by a
rule's fault), it ends (`end`: the recording is committed, whole or marked incomplete; a
faulted answer's connection is dropped), or its connection breaks (`broken`: what was
recorded is judged whole or not, an occurrence number nothing was stored under is given
back). Every decision is the engine's; this module applies it to mitmproxy's objects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from mitmproxy import http

from replay.engine import Engine
from replay.mitm import adapt
from replay.models import Outcome, Request
from replay.plan import Forward, Plan
from replay.player import Interruption, Withheld
from replay.providers.errors import NearMiss
from replay.recorder import Recording
from replay.redact import redacted_url

logger = logging.getLogger("replay")

UPSTREAM_HOLD = 300.0
"""How long a held stall keeps a forwarded answer's client waiting (upstream is done)."""


@dataclass(slots=True)
class FlowState:
    """What the hooks of one handled flow share, from its request to its report line."""

    request: Request
    namespace: str
    engine: Engine
    plan: Plan | None = None
    outcome: Outcome = Outcome.ERROR
    started: float = field(default_factory=time.monotonic)
    detail: str | None = None
    nearest: NearMiss | None = None
    job: str | None = None
    target: adapt.Target | None = None
    recording: Recording | None = None
    ttfb: float = 0.0
    cut: Interruption | None = None
    """A rule's fault on a forwarded answer (`Withheld` counts the chunks)."""
    faulted: bool = False
    """The chunk server drops this answer (a rule's fault): a connection error is its own."""


def head(flow: http.HTTPFlow, state: FlowState) -> Awaitable[None] | None:
    """The upstream's answer head arrived: record it as it streams, forward it as it
    arrives, or withhold it after a rule's cut; a hold is what the hook must await."""
    plan, response = state.plan, flow.response
    if not isinstance(plan, Forward) or response is None:
        return None
    if flow.request.timestamp_end is not None and response.timestamp_start is not None:
        state.ttfb = response.timestamp_start - flow.request.timestamp_end
    taps = state.engine.tap(plan, adapt.head_from_response(response))
    state.recording = taps.recording
    if taps.recording is not None:
        state.outcome = Outcome.RECORDED
        response.stream = taps.recording.tap
    else:
        response.stream = True  # forward as it arrives, never buffer
    adapt.mark(response, state.outcome, plan.key.fingerprint)
    if taps.cut is not None:
        state.cut = taps.cut
        response.stream = Withheld(response.stream, taps.cut.after)
        if flow.request.http_version.startswith("HTTP/1"):
            # A body with a content-length, cut after its last chunk, would look whole:
            # chunked framing without its terminator shows the break.
            response.headers.pop("content-length", None)
            response.headers["transfer-encoding"] = "chunked"
    return asyncio.sleep(taps.hold) if taps.hold else None


def end(flow: http.HTTPFlow, state: FlowState) -> tuple[str | None, Awaitable[None] | None]:
    """The answer ended: commit its recording. Returns the report's detail, and for a
    rule's fault the drop of the connection, which the hook must await."""
    recording, response = state.recording, flow.response
    if recording is not None and response is not None:
        if not recording.chunks and recording.abort_reason is None:
            # mitmproxy streams no body that ends with its headers (204, 304, an answer
            # to HEAD, content-length 0): the tap never ran, the answer is complete.
            if response.raw_content:
                recording.tap(response.raw_content)
            recording.tap(b"")
        keep(state, recording)
    stream = response.stream if response is not None else None
    if state.cut is not None and isinstance(stream, Withheld):  # a rule's fault
        return "fault: connection dropped", _drop(flow, state.cut, stream.cut_at)
    return state.detail, None


async def _drop(flow: http.HTTPFlow, cut: Interruption, cut_at: float | None) -> None:
    """End an upstream answer withheld by a fault: stall if asked (counted from the cut),
    then kill the flow (the client sees the connection drop before the body ends).

    mitmproxy looks at a kill only between hooks, so the drop comes once the upstream
    has finished; the client saw nothing past the cut meanwhile."""
    if cut.hold or cut.stall:
        wanted = UPSTREAM_HOLD if cut.hold else (cut.stall or 0.0)
        elapsed = time.monotonic() - cut_at if cut_at is not None else 0.0
        if wanted > elapsed:
            await asyncio.sleep(wanted - elapsed)
    if flow.killable:
        flow.kill()  # after the response hook: no error hook follows, the report is written


def broken(flow: http.HTTPFlow, state: FlowState) -> str:
    """The connection broke (client or upstream): keep what was recorded, judged whole or
    not, and settle the outcome. Returns the reason for the report."""
    reason = str(flow.error) if flow.error else "connection error"
    plan = state.plan
    if state.recording is not None:
        state.recording.abort(reason)
        keep(state, state.recording, reason)
    elif isinstance(plan, Forward) and plan.record and flow.response is None:
        state.engine.give_back(plan)  # no answer came: its occurrence number is free
    if state.faulted and state.recording is None:
        reason = f"fault: {reason}"  # the proxy dropped it: the answer keeps its outcome
    elif state.outcome not in (Outcome.HIT, Outcome.RECORDED):
        state.outcome = Outcome.ERROR
    return reason


def keep(state: FlowState, recording: Recording, reason: str | None = None) -> None:
    """Commit a recording: whole (the client may have left after the end), or marked
    incomplete, which replays as a miss (the report says `error`)."""
    assert isinstance(state.plan, Forward)
    refused = state.engine.commit(state.plan, recording, state.ttfb)
    if refused is not None:
        state.outcome, state.detail = Outcome.FORWARDED, refused
    elif recording.complete:
        if reason is not None:
            state.detail = f"complete; then {reason}"
    else:
        state.outcome = Outcome.ERROR
        state.detail = f"stored as incomplete: {reason or 'the stream did not end'}"
        logger.warning("replay: %s %s", redacted_url(state.request), state.detail)
