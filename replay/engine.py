"""Orchestration: what to do with each request, and what to keep of each answer.

Owns the mode table (`decide_action`, a pure function over mode, miss policy and whether the
store has the request), the per-run occurrence counters, and `commit`, the one place where a
finished recording becomes a stored interaction (through `redact`, the only way to the store).
Owns record mode's clean-stop clean-up. Knows nothing of mitmproxy or sockets.
"""

from __future__ import annotations

import logging
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
    Provenance,
    Request,
    ResponseHead,
)
from replay.redact import redact, redacted_url
from replay.store import Store

logger = logging.getLogger(__name__)


class Action(StrEnum):
    SERVE = "serve"
    """Answer from the store."""
    FORWARD = "forward"
    """Send upstream (and record the answer if `Decision.record`)."""
    FAIL = "fail"
    """Answer with a provider-shaped miss error."""


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
            # TODO(#3): MissPolicy.SYNTHETIC answers like ERROR until responders land.
            return Action.FAIL, False


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    record: bool
    key: Key
    fingerprint: Fingerprint
    interaction: Interaction | None = None
    """The stored interaction to serve, for SERVE."""


class Engine:
    """Decides per request and commits recordings; one per proxy run and settings."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store if store is not None else Store(settings.dir)
        self.policy = FingerprintPolicy(ignore=settings.ignore)
        self.hosts = HostPolicy(settings.hosts)
        self._occurrences: dict[tuple[str, str], int] = {}
        self._recorded: dict[tuple[str, str], int] = {}
        # Decoding and redacting a recording costs CPU (a few ms for a large body), and the
        # last chunk reaches the client only once the response hook returns: one worker
        # thread does it, in order, then hands the result to the store's writer.
        self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-commit")

    def namespace(self, requested: str | None) -> str:
        """The namespace for a request: its header, else `replay_cassette`, else default."""
        if requested is None:
            return self.settings.cassette or DEFAULT_NAMESPACE
        try:
            return check_namespace(requested.strip())
        except ConfigError as e:
            raise BadNamespace(f"x-replay-cassette: {e}") from None

    def decide(self, request: Request, namespace: str) -> Decision:
        """Fingerprint the request, count its occurrence, look it up, apply the mode table."""
        fp = fingerprint(request, self.policy)
        counter = (namespace, fp.hex)
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
        return Decision(action, record, key, fp, found if action is Action.SERVE else None)

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
        try:
            self._committer.submit(self._commit, decision.key, request, head, ttfb, chunks)
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
            self.store.put(redact(interaction))
        except Exception:
            logger.exception("replay: could not store %s", redacted_url(request))

    def flush(self) -> None:
        """Wait until every committed recording is written."""
        self._committer.submit(lambda: None).result()
        self.store.flush()

    def close(self) -> None:
        """Drain the writer; in record mode drop stale occurrences above those recorded."""
        self._committer.shutdown(wait=True)
        self.store.flush()
        if self.settings.mode is Mode.RECORD:
            for (namespace, fp), highest in self._recorded.items():
                removed = self.store.remove_above(namespace, fp, highest)
                if removed:
                    logger.info("removed %d stale occurrence(s) of %s", removed, fp[:12])
        self.store.close()
