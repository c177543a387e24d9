"""The control endpoint's protocol: what `http://replay.control/...` asks and answers.

Owns the endpoint's paths, their parameters and their JSON answers, and `OutcomeWindow`, the
report lines of the requests made since the last switch. A request to the control host is
served by the proxy itself (never forwarded, never recorded, never in the report):

    GET  /            the proxy's state: namespace, mode, miss policy, store root
    POST /switch      namespace=NAME (absent or empty: back to the option's namespace),
                      reset=true|false (default true: that namespace's occurrence counters
                      start at 0 again), and any of mode / miss / rules / speed: the
                      following requests use them; the outcome window starts anew
    POST /reset       namespace=NAME, or none for every namespace: occurrence counters at 0
    GET  /outcomes    the report lines (outcome, fingerprint, url, nearest...) of the
                      requests that started since the last switch

Parameters come from the query string or a JSON object body (the body wins). Every answer
is a JSON object; a bad request is a 400 whose `error` says why. Reaching it only from
loopback clients is the glue's job (`replay.mitm.control`), as is applying option changes.
Knows nothing of mitmproxy.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl

from replay.config import check_namespace
from replay.errors import ConfigError
from replay.report import ReportLine

CONTROL_HOST = "replay.control"
"""The host name of the control endpoint (it never resolves: the proxy answers it)."""
SWITCHED_OPTIONS = {
    "mode": "replay_mode",
    "miss": "replay_miss",
    "rules": "replay_rules",
    "speed": "replay_speed",
}
"""`/switch` parameters that set a proxy option, and the option each one sets."""
WINDOW_MAX = 10_000
"""Report lines kept per window; past it the oldest are dropped (and counted)."""


class OutcomeWindow:
    """The report lines of the requests that started since `start()` (thread-safe)."""

    def __init__(self, limit: int = WINDOW_MAX) -> None:
        self._lock = threading.Lock()
        self._lines: deque[ReportLine] = deque(maxlen=limit)
        self.started = time.monotonic()
        self.dropped = 0
        self.watching = False
        """True once a control client switched: until then no line is wanted (and the
        engine builds none for a hit without a report)."""

    def start(self) -> None:
        """Begin a new window: earlier lines are forgotten."""
        with self._lock:
            self._lines.clear()
            self.started = time.monotonic()
            self.dropped = 0
            self.watching = True

    def add(self, line: ReportLine, started: float) -> None:
        """Keep `line` if its request (begun at monotonic time `started`) is of this window:
        a request still in flight at a switch belongs to the window it began in."""
        with self._lock:
            if started < self.started:
                return
            if len(self._lines) == self._lines.maxlen:
                self.dropped += 1
            self._lines.append(line)

    def lines(self) -> list[ReportLine]:
        with self._lock:
            return list(self._lines)


class Controlled(Protocol):
    """What the endpoint needs of the engine."""

    @property
    def window(self) -> OutcomeWindow: ...

    def reset_counters(self, namespace: str | None = None) -> int: ...

    def control_state(self) -> dict[str, Any]: ...


SetOptions = Callable[[dict[str, Any]], None]
"""Applies proxy options (`{"replay_cassette": ...}`); raises ConfigError if one is bad."""


@dataclass(frozen=True, slots=True)
class ControlAnswer:
    status: int
    body: dict[str, Any]

    def encode(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()


class BadControl(Exception):
    """A control request that cannot be carried out; the message says why (answered 400)."""


def handle(
    engine: Controlled, method: str, path: str, body: bytes, set_options: SetOptions
) -> ControlAnswer:
    """Carry out one control request (`path` with its query string) and answer it."""
    route, _, query = path.partition("?")
    route = "/" + route.strip("/")
    routes: dict[str, tuple[str, Callable[[Controlled, dict[str, Any], SetOptions], Any]]] = {
        "/": ("GET", _state),
        "/switch": ("POST", _switch),
        "/reset": ("POST", _reset),
        "/outcomes": ("GET", _outcomes),
    }
    if route not in routes:
        known = ", ".join(f"{m} {p}" for p, (m, _) in routes.items())
        return ControlAnswer(404, {"error": f"no control endpoint {route} (known: {known})"})
    wanted, action = routes[route]
    if method.upper() != wanted:
        return ControlAnswer(405, {"error": f"{route} takes {wanted}, not {method}"})
    try:
        params = _params(query, body)
        return ControlAnswer(200, action(engine, params, set_options))
    except (BadControl, ConfigError) as e:
        return ControlAnswer(400, {"error": str(e)})


def _params(query: str, body: bytes) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if body.strip():
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadControl(f"the body is not JSON: {e}") from None
        if not isinstance(parsed, dict):
            raise BadControl("the body must be a JSON object")
        params.update(parsed)
    return params


def _flag(params: Mapping[str, Any], name: str, default: bool) -> bool:
    value = params.get(name, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
        return value.lower() in ("1", "true", "yes")
    raise BadControl(f"{name}: {value!r} is not true or false")


def _namespace(params: Mapping[str, Any]) -> str | None:
    value = params.get("namespace")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadControl(f"namespace: {value!r} is not a string")
    return check_namespace(value)


def _no_other(params: Mapping[str, Any], known: set[str]) -> None:
    unknown = set(params) - known
    if unknown:
        raise BadControl(f"unknown parameter(s): {', '.join(sorted(unknown))}")


def _state(engine: Controlled, params: dict[str, Any], set_options: SetOptions) -> Any:
    return engine.control_state()


def _switch(engine: Controlled, params: dict[str, Any], set_options: SetOptions) -> Any:
    namespace = _namespace(params)
    reset = _flag(params, "reset", True)
    _no_other(params, {"namespace", "reset", *SWITCHED_OPTIONS})
    changes: dict[str, Any] = {"replay_cassette": namespace}
    for name, option in SWITCHED_OPTIONS.items():
        if name in params:
            value = params[name]
            if value is not None and not isinstance(value, str | int | float):
                raise BadControl(f"{name}: {value!r} is not a string")
            changes[option] = None if value in (None, "") and name == "rules" else str(value)
    set_options(changes)
    engine.window.start()
    state = engine.control_state()
    state["reset"] = engine.reset_counters(state["namespace"]) if reset else 0
    return state


def _reset(engine: Controlled, params: dict[str, Any], set_options: SetOptions) -> Any:
    _no_other(params, {"namespace"})
    namespace = _namespace(params)
    return {"namespace": namespace, "reset": engine.reset_counters(namespace)}


def _outcomes(engine: Controlled, params: dict[str, Any], set_options: SetOptions) -> Any:
    window = engine.window
    return {"outcomes": [asdict(line) for line in window.lines()], "dropped": window.dropped}
