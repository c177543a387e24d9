"""The mitmproxy addon: options, hooks, and the wiring of engine, store and chunk server.

Owns the hook sequence of a handled flow (request → responseheaders → response | error),
the per-flow state (kept in a dict keyed by flow id, not in `flow.metadata`, which `-w`
would serialise), option registration from OPTION_SPECS and their validation, forcing
`connection_strategy=lazy`, and the unknown-`replay_*`-option check. Decisions live in the
engine, timing in the player and chunk server; this module only wires them to mitmproxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitmproxy import ctx, exceptions, http

from replay.chunkserver import JOB_HEADER, ChunkServer
from replay.config import OPTION_NAMES, OPTION_SPECS, Settings
from replay.engine import Action, Decision, Engine
from replay.errors import BadNamespace, ConfigError
from replay.fingerprint import Fingerprint
from replay.mitm import adapt
from replay.models import Outcome, Request, ResponseHead
from replay.player import Interruption, Planner, Playback, modified, paced
from replay.recorder import Recording
from replay.redact import redacted_url
from replay.report import ReportLine, ReportWriter
from replay.rules import Fault, RulesFile

logger = logging.getLogger("replay")


@dataclass(slots=True)
class _FlowState:
    request: Request
    namespace: str
    decision: Decision | None
    outcome: Outcome
    engine: Engine | None = None
    """The engine that decided: a recording is committed through it even if options
    changed meanwhile."""
    started: float = field(default_factory=time.monotonic)
    job: str | None = None
    target: adapt.Target | None = None
    recording: Recording | None = None
    head: ResponseHead | None = None
    ttfb: float = 0.0
    fault: Interruption | None = None
    """A rule's fault on a forwarded answer: chunks past `after` are withheld."""
    faulted: bool = False
    """The proxy itself drops this answer (a rule's fault): a connection error is its own."""


INLINE_BODY = 256 * 1024
"""Requests with larger bodies are answered from a worker thread (made-up answers)."""
UPSTREAM_HOLD = 300.0
"""How long a held stall keeps a forwarded answer's client waiting (upstream is done)."""


def _interruption(fault: Fault | None) -> Interruption | None:
    """A rule's fault as the player's interruption."""
    if fault is None:
        return None
    if fault.stall_after is not None:
        return Interruption(fault.stall_after, fault.stall, hold=fault.stall is None)
    if fault.cut_after is not None:
        return Interruption(fault.cut_after)
    return None


class _Withheld:
    """A response stream function that passes the first `after` chunks (through `inner`,
    the recording tap or nothing) and withholds the rest from the client."""

    def __init__(self, inner: object, after: int) -> None:
        self.inner = inner if callable(inner) else None
        self.left = after
        self.cut_at: float | None = time.monotonic() if after <= 0 else None
        """When the last chunk the client gets went by (monotonic)."""

    def __call__(self, data: bytes) -> bytes | list[bytes]:
        if self.inner is not None:
            data = self.inner(data)
        if not data:
            return data
        if self.left <= 0:
            return []  # not b"": an empty chunk would end a chunked body cleanly
        self.left -= 1
        if self.left == 0:
            self.cut_at = time.monotonic()
        return data


def _user_set_connection_strategy() -> bool:
    """Whether the user chose `connection_strategy`, even its default (`eager`).

    mitmproxy keeps no record of which options were set explicitly, and a script loads
    after the command line was applied, so the command line and config.yaml are read.
    """
    if ctx.options.has_changed("connection_strategy"):
        return True
    if any("connection_strategy" in arg for arg in sys.argv[1:]):
        return True
    confdir = Path(os.path.expanduser(ctx.options.confdir))
    for name in ("config.yaml", "config.yml"):
        with contextlib.suppress(OSError):
            if "connection_strategy" in (confdir / name).read_text(errors="replace"):
                return True
    return False


class ReplayAddon:
    """Record and replay LLM provider traffic (see SPEC.md)."""

    def __init__(self) -> None:
        self.settings: Settings | None = None
        self.engine: Engine | None = None
        self.report: ReportWriter | None = None
        self.pacer: ChunkServer | None = None
        self.flows: dict[str, _FlowState] = {}
        self.planner = Planner(1.0)
        self.responses = adapt.InlineResponses()

    # --- lifecycle -------------------------------------------------------------------

    def load(self, loader: Any) -> None:
        for spec in OPTION_SPECS:
            loader.add_option(
                spec.name,
                spec.typespec,
                spec.default,
                spec.help,
                choices=list(spec.choices) if spec.choices else None,
            )

    def configure(self, updated: set[str]) -> None:
        if not updated & OPTION_NAMES and self.engine is not None:
            return
        try:
            settings = Settings.from_options({n: getattr(ctx.options, n) for n in OPTION_NAMES})
        except ConfigError as e:
            raise exceptions.OptionsError(str(e)) from None
        if "connection_strategy" in updated and not _user_set_connection_strategy():
            # Replay must never touch upstream: no connect at CONNECT time (SPEC.md).
            ctx.options.update(connection_strategy="lazy")
            logger.info("replay: connection_strategy set to lazy")
        if settings != self.settings:
            try:  # an invalid rules file stops startup (or this change), naming the problem
                rules = RulesFile(settings.rules) if settings.rules else None
            except ConfigError as e:
                raise exceptions.OptionsError(f"replay_rules: {e}") from None
            self._close_engine()
            self.settings = settings
            self.engine = Engine(settings, rules=rules)
            self.planner = Planner(settings.speed)
            self.responses = adapt.InlineResponses()
            self.report = ReportWriter(settings.report) if settings.report else None
            if self.pacer is None or self.pacer.size != settings.pacer_ports:
                if self.pacer is not None:
                    self.pacer.close()
                self.pacer = ChunkServer(settings.pacer_ports)

    def running(self) -> None:
        unknown = sorted(n for n in ctx.options.deferred if n.startswith("replay_"))
        for name in unknown:
            logger.error(
                "replay: unknown option %s (known: %s)", name, ", ".join(sorted(OPTION_NAMES))
            )
        if self.settings is not None and not unknown:
            s = self.settings
            logger.info(
                "replay: ready: mode=%s miss=%s dir=%s speed=%g", s.mode, s.miss, s.dir, s.speed
            )

    def done(self) -> None:
        self._close_engine()
        self.settings = None  # a later configure (the addon added again) builds anew
        if self.pacer is not None:
            self.pacer.close()
            self.pacer = None

    def _close_engine(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self.report is not None:
            self.report.close()
            self.report = None

    # --- hooks -----------------------------------------------------------------------

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        # Sync, returning an awaitable only when the answer has to wait (a recorded time to
        # first byte, the chunk server's start): mitmproxy awaits what a hook returns, and a
        # hit at speed 0 then costs no coroutine.
        try:
            return self._request(flow)
        except Exception as e:
            # mitmproxy would log the exception and send the request upstream, credentials
            # and all, even in replay mode: answer 502 instead.
            state = self.flows.get(flow.id)
            if state is None:
                state = _FlowState(adapt.request_from_flow(flow), "", None, Outcome.ERROR)
            self._fail(flow, state, e)
            return None

    def _request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        engine = self.engine
        if engine is None or flow.response is not None or flow.id in self.flows:
            return None
        r = flow.request
        if not engine.hosts.handles(r.host, r.path.split("?", 1)[0]):
            return None
        request = adapt.request_from_flow(flow)
        if (request.header("upgrade") or "").lower() == "websocket":
            return None  # realtime APIs pass through untouched, unrecorded
        requested = request.header(adapt.CASSETTE_HEADER)
        if requested is not None:  # chooses the namespace; never forwarded nor stored
            r.headers.pop(adapt.CASSETTE_HEADER, None)
            request = adapt.request_from_flow(flow)
        try:
            namespace = engine.namespace(requested)
        except BadNamespace as e:
            self._answer_error(flow, request, "", 400, str(e))
            return None
        if len(request.body) > INLINE_BODY:
            # Fingerprinting (decoding, parsing, scrubbing) a request of megabytes (a
            # vision prompt) takes tens of ms: off the event loop, then decided on it.
            return self._handle_off_loop(flow, engine, request, namespace)
        return self._handle(flow, engine, request, namespace, None)

    async def _handle_off_loop(
        self, flow: http.HTTPFlow, engine: Engine, request: Request, namespace: str
    ) -> None:
        try:
            loop = asyncio.get_running_loop()
            fp = await loop.run_in_executor(engine.workers, engine.fingerprint, request)
            pending = self._handle(flow, engine, request, namespace, fp)
            if pending is not None:
                await pending
        except Exception as e:
            state = self.flows.get(flow.id) or _FlowState(request, namespace, None, Outcome.ERROR)
            self._fail(flow, state, e)

    def _handle(
        self,
        flow: http.HTTPFlow,
        engine: Engine,
        request: Request,
        namespace: str,
        fp: Fingerprint | None,
    ) -> Awaitable[None] | None:
        """Decide, then serve, make up, or let the request go upstream."""
        r = flow.request
        try:
            decision = engine.decide(request, namespace, fp)
        except Exception as e:
            logger.exception("replay: cannot handle %s %s", r.method, redacted_url(request))
            self._answer_error(flow, request, namespace, 502, f"replay failed: {e}")
            return None
        state = _FlowState(request, namespace, decision, Outcome.FORWARDED, engine)
        self.flows[flow.id] = state
        match decision.action:
            case Action.SERVE:
                assert decision.interaction is not None
                state.outcome = Outcome.HIT
                accept = request.header("accept-encoding")
                return self._deliver(flow, state, self.planner(decision.interaction, accept))
            case Action.SYNTHESIZE | Action.FAIL:
                if len(request.body) > INLINE_BODY or not engine.cheap_answer(decision, request):
                    # A miss searches the store for the nearest recording; embeddings of a
                    # long batch, or a huge request, take a while: off the event loop.
                    return self._make_off_loop(flow, state, engine)
                return self._make(flow, state, engine)
            case _:
                return None  # forwarded: modifiers apply when the answer comes

    def _make(
        self, flow: http.HTTPFlow, state: _FlowState, engine: Engine
    ) -> Awaitable[None] | None:
        """Make up the answer (a synthetic one, or a miss) and send it."""
        return self._deliver(flow, state, self._made(state, engine))

    async def _make_off_loop(self, flow: http.HTTPFlow, state: _FlowState, engine: Engine) -> None:
        try:
            loop = asyncio.get_running_loop()
            playback = await loop.run_in_executor(engine.workers, self._made, state, engine)
            pending = self._deliver(flow, state, playback)
            if pending is not None:
                await pending
        except Exception as e:
            self._fail(flow, state, e)

    def _made(self, state: _FlowState, engine: Engine) -> Playback:
        decision, request = state.decision, state.request
        assert decision is not None
        if decision.action is Action.SYNTHESIZE:
            answer, state.outcome = engine.synthesize(decision, request)
            ttfb, gap = engine.pacing.ttfb, engine.pacing.chunk
        else:
            state.outcome = Outcome.MISS
            answer, ttfb, gap = engine.miss(decision, request), 0.0, 0.0
        return paced(
            answer.status,
            answer.headers,
            answer.frames,
            answer.stream,
            ttfb,
            gap,
            engine.settings.speed,
            omit_body=request.method.upper() == "HEAD",
        )

    def _deliver(
        self, flow: http.HTTPFlow, state: _FlowState, playback: Playback
    ) -> Awaitable[None] | None:
        """Send a playback (a hit, a made-up answer, a miss) with the rules' modifiers:
        through the chunk server when it has several chunks or a fault, else inline after
        its time to first byte."""
        assert state.decision is not None
        verdict = state.decision.verdict
        if verdict.latency is not None or verdict.fault is not None:
            latency = verdict.latency
            playback = modified(
                playback,
                latency.ttfb if latency else None,
                latency.chunk if latency else None,
                _interruption(verdict.fault),
            )
        if playback.streamed and self.pacer is not None:
            state.faulted = playback.interruption is not None  # the chunk server will drop it
            return self._stream(flow, state, playback, asyncio.get_running_loop().time())
        if playback.ttfb > 0:
            return self._answer_after(playback.ttfb, flow, state, playback)
        self._answer(flow, playback, state)
        return None

    async def _stream(
        self, flow: http.HTTPFlow, state: _FlowState, playback: Playback, t_request: float
    ) -> None:
        """Hand a playback of several chunks to the chunk server and point the flow at it."""
        pacer = self.pacer
        try:
            assert pacer is not None
            await pacer.start()
            state.job = pacer.register(playback, t_request)
            h2 = flow.request.http_version.startswith("HTTP/2")
            port = pacer.port_for(None if h2 else flow.client_conn.id)
            state.target = adapt.route_to_loopback(flow, port, JOB_HEADER, state.job)
        except Exception as e:
            self._fail(flow, state, e)

    async def _answer_after(
        self, delay: float, flow: http.HTTPFlow, state: _FlowState, playback: Playback
    ) -> None:
        await asyncio.sleep(delay)
        try:
            self._answer(flow, playback, state)
        except Exception as e:
            self._fail(flow, state, e)

    def _answer(self, flow: http.HTTPFlow, playback: Playback, state: _FlowState) -> None:
        """Answer inline: mitmproxy sends the response in one piece."""
        assert state.decision is not None
        fingerprint = state.decision.key.fingerprint
        version = flow.request.http_version
        if state.outcome is Outcome.HIT and not state.decision.verdict.rules:
            flow.response = self.responses(playback, version, fingerprint)
        else:
            flow.response = adapt.inline_response(playback, version)
            adapt.mark(flow.response, state.outcome, fingerprint)

    def _fail(self, flow: http.HTTPFlow, state: _FlowState, error: Exception) -> None:
        """The addon could not answer: a 502, never a fall-through to the real upstream."""
        logger.error("replay: cannot serve %s: %r", redacted_url(state.request), error)
        state.outcome = Outcome.ERROR
        body = json.dumps({"error": {"message": f"replay failed: {error}"}}).encode()
        if flow.request.method.upper() == "HEAD":
            body = b""
        flow.response = adapt.simple_response(502, [("content-type", "application/json")], body)
        fingerprint = state.decision.key.fingerprint if state.decision else None
        adapt.mark(flow.response, Outcome.ERROR, fingerprint)

    def responseheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        state = self.flows.get(flow.id)
        if state is None or state.decision is None or flow.response is None:
            return None
        decision = state.decision
        if state.target is not None:  # a stream from our chunk server
            flow.response.stream = True
            adapt.mark(flow.response, state.outcome, decision.key.fingerprint)
            return None
        if decision.action is not Action.FORWARD or state.engine is None:
            return None
        state.head = adapt.head_from_response(flow.response)
        if flow.request.timestamp_end is not None and flow.response.timestamp_start is not None:
            state.ttfb = flow.response.timestamp_start - flow.request.timestamp_end
        if state.engine.should_store(decision, flow.response.status_code):
            state.recording = Recording()
            state.outcome = Outcome.RECORDED
            flow.response.stream = state.recording.tap
        else:
            flow.response.stream = True  # forward as it arrives, never buffer
        adapt.mark(flow.response, state.outcome, decision.key.fingerprint)
        verdict = decision.verdict
        if verdict.fault is not None:
            cut = _interruption(verdict.fault)
            assert cut is not None
            state.fault = cut
            flow.response.stream = _Withheld(flow.response.stream, cut.after)
            if flow.request.http_version.startswith("HTTP/1"):
                # A body with a content-length, cut after its last chunk, would look whole:
                # chunked framing without its terminator shows the break.
                flow.response.headers.pop("content-length", None)
                flow.response.headers["transfer-encoding"] = "chunked"
        if verdict.latency is not None and verdict.latency.ttfb:
            if state.recording is not None:
                # Chunks arriving during the hold would be tapped late, all at once: the
                # hold would be baked into the cassette. Recording keeps the real timing.
                logger.info(
                    "replay: latency rule not applied to %s: it is being recorded",
                    redacted_url(state.request),
                )
                return None
            return asyncio.sleep(verdict.latency.ttfb)  # holds the headers back
        return None

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        state = self.flows.pop(flow.id, None)
        if state is None:
            return None
        self._release(flow, state)
        recording = state.recording
        if recording is not None and state.head is not None and state.decision is not None:
            if not recording.chunks and recording.abort_reason is None and flow.response:
                # mitmproxy streams no body that ends with its headers (204, 304, an answer
                # to HEAD, content-length 0): the tap never ran, the answer is complete.
                if flow.response.raw_content:
                    recording.tap(flow.response.raw_content)
                recording.tap(b"")
            if recording.complete and state.engine is not None:
                state.engine.commit(
                    state.decision, state.request, state.head, state.ttfb, recording.chunks
                )
            else:
                state.outcome = Outcome.FORWARDED
                logger.warning(
                    "replay: %s not stored: the stream did not end", redacted_url(state.request)
                )
        status = flow.response.status_code if flow.response else None
        if state.fault is not None and isinstance(
            flow.response and flow.response.stream, _Withheld
        ):
            # A rule's fault on an upstream answer.
            self._report(state, status, "fault: connection dropped")
            assert flow.response is not None and isinstance(flow.response.stream, _Withheld)
            return self._drop(flow, state.fault, flow.response.stream.cut_at)
        self._report(state, status)
        return None

    async def _drop(self, flow: http.HTTPFlow, cut: Interruption, cut_at: float | None) -> None:
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

    def error(self, flow: http.HTTPFlow) -> None:
        state = self.flows.pop(flow.id, None)
        if state is None:
            return
        self._release(flow, state)
        reason = str(flow.error) if flow.error else "connection error"
        if state.recording is not None:
            state.recording.abort(reason)
            logger.warning("replay: %s not stored: %s", redacted_url(state.request), reason)
        if state.faulted and state.recording is None:
            reason = f"fault: {reason}"  # the proxy dropped it: the answer keeps its outcome
        elif state.outcome is not Outcome.HIT:
            state.outcome = Outcome.ERROR
        status = flow.response.status_code if flow.response else None
        self._report(state, status, reason)

    # --- helpers ---------------------------------------------------------------------

    def _release(self, flow: http.HTTPFlow, state: _FlowState) -> None:
        if state.target is not None:
            adapt.restore(flow, state.target, JOB_HEADER)
        if state.job is not None and self.pacer is not None:
            self.pacer.cancel(state.job)

    def _answer_error(
        self, flow: http.HTTPFlow, request: Request, namespace: str, status: int, message: str
    ) -> None:
        body = json.dumps({"error": {"message": message, "type": "replay_error"}}).encode()
        if request.method.upper() == "HEAD":
            body = b""
        flow.response = adapt.simple_response(status, [("content-type", "application/json")], body)
        adapt.mark(flow.response, Outcome.ERROR, None)
        state = _FlowState(request, namespace, None, Outcome.ERROR)
        self._report(state, status, message)

    def _report(self, state: _FlowState, status: int | None, detail: str | None = None) -> None:
        if self.report is None:
            return
        r = state.request
        key = state.decision.key if state.decision else None
        url = redacted_url(r)
        if state.decision is not None and state.decision.verdict.rules:
            applied = "rules: " + ", ".join(state.decision.verdict.rules)
            detail = f"{detail}; {applied}" if detail else applied
        self.report.write(
            ReportLine(
                method=r.method,
                url=url,
                namespace=state.namespace,
                fingerprint=key.fingerprint if key else "",
                occurrence=key.occurrence if key else -1,
                outcome=state.outcome.value,
                status=status,
                duration_ms=round((time.monotonic() - state.started) * 1000, 3),
                detail=detail,
            )
        )
