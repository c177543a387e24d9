"""The mitmproxy addon: the hooks, and the wiring of engine and chunk server.

Owns the hook sequence of a handled flow (request → responseheaders → response | error),
the table of per-flow state (keyed by flow id, not `flow.metadata`, which `-w` would
serialise), building and reconfiguring the engine from the options (their registration and
tidying are options.py's), forcing `connection_strategy=lazy`, and carrying a request's plan
out: a playback served inline or through the chunk server, an answer made off the loop when
it is costly, a refusal (400, 413, 501, 502). An answer the upstream sends is forwarded.py's.
Every decision is the engine's, timing is the player's and the chunk server's.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any

from mitmproxy import ctx, exceptions, http
from mitmproxy.proxy import server_hooks

from replay.answers import error_playback
from replay.chunkserver import JOB_HEADER, ChunkServer
from replay.config import OPTION_NAMES, Settings
from replay.engine import INLINE_BODY, Engine
from replay.errors import BadNamespace, BodyTooLarge, ConfigError, RequestRefused, StoreError
from replay.hosts import HostPolicy
from replay.mitm import adapt, conns, control, forwarded, options
from replay.mitm.forwarded import FlowState
from replay.models import Outcome, Request
from replay.plan import Make, Plan, Serve
from replay.player import Playback
from replay.redact import redacted_url
from replay.rules import RulesFile

logger = logging.getLogger("replay")


def _exit_failing() -> None:
    """mitmdump always exits 0 after a clean stop: `replay_strict` makes it 1, once every
    other addon has finished and the output is flushed."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


class ReplayAddon:
    """Record and replay LLM provider traffic (see SPEC.md)."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.hosts = HostPolicy()
        self.pacer: ChunkServer | None = None
        self.flows: dict[str, FlowState] = {}
        self.responses = adapt.InlineResponses()
        self.refused: str | None = None
        """Why the addon must not run (conflicting options): every request gets a 502."""
        self._conns_warned = False

    # --- lifecycle -------------------------------------------------------------------

    def load(self, loader: Any) -> None:
        options.register(loader)
        problems = options.tidy_deferred()
        for problem in problems:
            logger.error("replay: %s; stopping", problem)
        if problems:  # logged during startup: mitmdump exits 1 (its errorcheck)
            self.refused = "; ".join(problems)

    def configure(self, updated: set[str]) -> None:
        if not updated & OPTION_NAMES and self.engine is not None:
            return
        try:
            settings = Settings.from_options({n: getattr(ctx.options, n) for n in OPTION_NAMES})
        except ConfigError as e:
            raise exceptions.OptionsError(str(e)) from None
        if "connection_strategy" in updated and not options.user_set_connection_strategy():
            # Replay must never touch upstream: no connect at CONNECT time (SPEC.md).
            ctx.options.update(connection_strategy="lazy")
            logger.info("replay: connection_strategy set to lazy")
        engine = self.engine
        if engine is not None and settings == engine.settings:
            return
        rules = None
        if settings.rules and (engine is None or settings.rules != engine.settings.rules):
            try:  # an invalid rules file stops startup (or this change), naming the problem
                rules = RulesFile(settings.rules)
            except ConfigError as e:
                raise exceptions.OptionsError(f"replay_rules: {e}") from None
        try:  # an auto-mode store that cannot enforce claims stops startup, naming it
            if engine is None:
                self.engine = Engine(settings, rules=rules)
            else:
                engine.reconfigure(settings, rules if settings.rules else None)
        except StoreError as e:
            raise exceptions.OptionsError(f"replay_dir: {e}") from None
        self.hosts = HostPolicy(settings.hosts)
        self.responses = adapt.InlineResponses()
        if self.pacer is None or self.pacer.size != settings.pacer_ports:
            if self.pacer is not None:
                self.pacer.close()
            self.pacer = ChunkServer(settings.pacer_ports)

    def running(self) -> None:
        unknown = options.unknown()
        for name in unknown:
            logger.error(
                "replay: unknown option %s (known: %s)", name, ", ".join(sorted(OPTION_NAMES))
            )
        if self.engine is None:
            logger.error("replay: the addon was loaded but never configured; stopping")
            ctx.master.shutdown()
        elif not unknown:
            s = self.engine.settings
            logger.info(
                "replay: ready: mode=%s miss=%s dir=%s speed=%g", s.mode, s.miss, s.dir, s.speed
            )

    def done(self) -> None:
        if self.engine is not None:
            engine, self.engine = self.engine, None  # a later configure builds anew
            engine.close()
            notable = engine.tally.notable_count()
            if engine.settings.strict and notable:
                logger.error(
                    "replay: strict: %d request(s) were not answered from the cassettes "
                    "(listed above); exiting 1",
                    notable,
                )
                atexit.register(_exit_failing)
        if self.pacer is not None:
            self.pacer.close()
            self.pacer = None

    # --- the request -----------------------------------------------------------------

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        # Sync, returning an awaitable only when the answer has to wait: mitmproxy awaits
        # what a hook returns, and a hit at speed 0 then costs no coroutine. Any failure
        # answers 502: mitmproxy would otherwise send the request upstream, keys and all.
        try:
            if control.is_control(flow):  # http://replay.control/ (replay/mitm/control.py)
                return control.serve(
                    flow, self.engine, lambda: [s.started for s in self.flows.values()]
                )
            return self._request(flow)
        except Exception as e:
            self._fail(flow, e)
            return None

    def _request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response is not None or flow.id in self.flows:
            return None
        r = flow.request
        if not self.hosts.handles(r.host, r.path.split("?", 1)[0]):
            return None
        engine = self.engine
        if engine is None or self.refused:  # never forward what the addon did not decide
            raise RuntimeError(self.refused or "the replay addon is not configured")
        request = adapt.request_from_flow(flow)
        realtime = (request.header("upgrade") or "").lower() == "websocket"
        refusal = engine.realtime_refusal(request) if realtime else None
        if realtime and refusal is None:
            return None  # realtime APIs pass through untouched, unrecorded
        requested = request.header(adapt.CASSETTE_HEADER)
        if requested is not None:  # chooses the namespace; never forwarded nor stored
            r.headers.pop(adapt.CASSETTE_HEADER, None)
            request = adapt.request_from_flow(flow)
        state = self.flows[flow.id] = FlowState(request, "", engine)
        if refusal is not None:
            state.detail = refusal
            self._answer(flow, state, error_playback(request, 501, refusal))
            return None
        try:
            state.namespace = engine.namespace(requested)
        except BadNamespace as e:
            state.detail = str(e)
            self._answer(flow, state, error_playback(request, 400, str(e)))
            return None
        if engine.store.remote:  # a lookup may wait on the network: off the loop, in order
            work = partial(self._planned, engine, request, state.namespace)
            then = partial(self._carry_out, flow, state)
            return self._off_loop(flow, work, then, engine.lookups)
        if len(request.body) > INLINE_BODY or request.header("content-encoding"):
            # Decoding and keying a body of megabytes (a vision prompt) takes tens of ms;
            # a compressed one may inflate up to replay_max_body.
            work = partial(self._planned, engine, request, state.namespace)
            return self._off_loop(flow, work, partial(self._carry_out, flow, state))
        return self._carry_out(flow, state, self._planned(engine, request, state.namespace))

    @staticmethod
    def _planned(engine: Engine, request: Request, namespace: str) -> Plan:
        return engine.plan(*engine.prepare(request, namespace))

    async def _off_loop[T](
        self,
        flow: http.HTTPFlow,
        work: Callable[[], T],
        then: Callable[[T], Awaitable[None] | None],
        executor: Executor | None = None,
    ) -> None:
        """Do `work` on the engine's worker threads (or `executor`), then `then` with its
        result on the event loop; a failure answers 502 (or the refusal's status)."""
        try:
            assert self.engine is not None
            pool = executor or self.engine.workers
            result = await asyncio.get_running_loop().run_in_executor(pool, work)
            pending = then(result)
            if pending is not None:
                await pending
        except Exception as e:
            self._fail(flow, e)

    def _carry_out(
        self, flow: http.HTTPFlow, state: FlowState, plan: Plan
    ) -> Awaitable[None] | None:
        state.plan = plan
        match plan:
            case Serve():
                state.outcome = Outcome.HIT
                return self._deliver(flow, state, plan.playback)
            case Make() if plan.costly:
                work = partial(self._made, state, plan)
                return self._off_loop(flow, work, partial(self._deliver, flow, state))
            case Make():
                return self._deliver(flow, state, self._made(state, plan))
            case _:
                state.outcome = Outcome.FORWARDED  # the answer's head may make it RECORDED
                return None

    def _made(self, state: FlowState, plan: Make) -> Playback:
        made = state.engine.make(plan)
        state.outcome, state.nearest = made.outcome, made.nearest
        return made.playback

    def _deliver(
        self, flow: http.HTTPFlow, state: FlowState, playback: Playback
    ) -> Awaitable[None] | None:
        """Send a playback: through the chunk server when it has several chunks or a fault,
        else inline after its time to first byte."""
        if playback.streamed and self.pacer is not None:
            state.faulted = playback.interruption is not None  # the chunk server drops it
            return self._stream(flow, state, playback)
        if playback.ttfb > 0:
            return self._answer_after(flow, state, playback)
        self._answer(flow, state, playback)
        return None

    async def _stream(self, flow: http.HTTPFlow, state: FlowState, playback: Playback) -> None:
        """Hand a playback of several chunks to the chunk server and point the flow at it."""
        t_request = asyncio.get_running_loop().time()
        try:
            pacer = self.pacer
            assert pacer is not None
            await pacer.start()
            state.job = pacer.register(playback, t_request)
            h2 = flow.request.http_version.startswith("HTTP/2")
            port = pacer.port_for(None if h2 else flow.client_conn.id)
            state.target = adapt.route_to_loopback(flow, port, JOB_HEADER, state.job)
        except Exception as e:
            self._fail(flow, e)

    async def _answer_after(
        self, flow: http.HTTPFlow, state: FlowState, playback: Playback
    ) -> None:
        await asyncio.sleep(playback.ttfb)
        try:
            self._answer(flow, state, playback)
        except Exception as e:
            self._fail(flow, e)

    def _answer(self, flow: http.HTTPFlow, state: FlowState, playback: Playback) -> None:
        """Answer inline: mitmproxy sends the response in one piece."""
        plan = state.plan
        fingerprint = plan.key.fingerprint if plan is not None else None
        version = flow.request.http_version
        if state.outcome is Outcome.HIT and plan is not None and plan.plain:
            flow.response = self.responses(playback, version, plan.key.fingerprint)
        else:
            flow.response = adapt.inline_response(playback, version)
            adapt.mark(flow.response, state.outcome, fingerprint)

    def _fail(self, flow: http.HTTPFlow, error: Exception) -> None:
        """The addon could not answer, or refuses a request it will not process as sent
        (413, 400): never a fall-through to the real upstream, never stored. Should the
        provider-shaped error itself fail, a plain 502 still keeps the request here."""
        try:
            self._refuse(flow, error)
        except Exception:
            logger.exception("replay: cannot answer a request to %s", flow.request.host)
            flow.response = http.Response.make(502, b"replay failed\n", {"x-replay": "error"})

    def _refuse(self, flow: http.HTTPFlow, error: Exception) -> None:
        state = self.flows.get(flow.id)
        request = state.request if state is not None else adapt.request_from_flow(flow)
        if isinstance(error, RequestRefused):
            status, message = 413 if isinstance(error, BodyTooLarge) else 400, str(error)
            logger.warning("replay: refused %s: %s", redacted_url(request), message)
        else:
            status, message = 502, f"replay failed: {error}"
            logger.error("replay: cannot serve %s: %r", redacted_url(request), error)
        if state is None and self.engine is not None:  # reported by the response hook
            state = self.flows[flow.id] = FlowState(request, "", self.engine)
        if state is not None:
            state.outcome, state.detail = Outcome.ERROR, message
        playback = error_playback(request, status, message)
        flow.response = adapt.inline_response(playback, flow.request.http_version)
        fingerprint = state.plan.key.fingerprint if state and state.plan else None
        adapt.mark(flow.response, Outcome.ERROR, fingerprint)

    # --- answers from the upstream (replay/mitm/forwarded.py) -------------------------

    def responseheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        state = self.flows.get(flow.id)
        if state is None or flow.response is None:
            return None
        plan = state.plan
        if state.target is not None and plan is not None:  # a stream from our chunk server
            flow.response.stream = True
            adapt.mark(flow.response, state.outcome, plan.key.fingerprint)
            return None
        return forwarded.head(flow, state)

    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        state = self.flows.pop(flow.id, None)
        if state is None:
            return None
        self._release(flow, state)
        detail, pending = forwarded.end(flow, state)
        self._settle(state, flow.response.status_code if flow.response else None, detail)
        return pending

    def error(self, flow: http.HTTPFlow) -> None:
        state = self.flows.pop(flow.id, None)
        if state is None:
            return
        self._release(flow, state)
        reason = forwarded.broken(flow, state)
        status = flow.response.status_code if flow.response else None
        self._settle(state, status, state.detail or reason)

    # --- connections -----------------------------------------------------------------

    def server_disconnected(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Let mitmproxy free a closed upstream connection now, not when the client leaves
        (see replay/mitm/conns.py: one per streamed replay to an HTTP/2 client)."""
        try:
            conns.forget_closed(data.client, data.server)
        except Exception:  # mitmproxy's private layout changed: keep serving, say so once
            if not self._conns_warned:
                self._conns_warned = True
                logger.warning("replay: cannot release closed connections", exc_info=True)

    # --- helpers ---------------------------------------------------------------------

    def _release(self, flow: http.HTTPFlow, state: FlowState) -> None:
        if state.target is not None:
            adapt.restore(flow, state.target, JOB_HEADER)
        if state.job is not None and self.pacer is not None:
            self.pacer.cancel(state.job)

    def _settle(self, state: FlowState, status: int | None, detail: str | None) -> None:
        state.engine.settle(
            state.request,
            state.namespace,
            state.plan,
            state.outcome,
            status,
            state.started,
            detail,
            state.nearest,
        )
