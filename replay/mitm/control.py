"""The control endpoint on mitmproxy's objects: `http://replay.control/...` through the proxy.

Owns recognising a control request (its host), refusing clients that are not on loopback
(403), applying option changes through mitmproxy's options (so `replay_cassette` and the
others show the values in force and the addon's `configure` rebuilds what they affect), and
waiting, bounded, for the window's requests still in flight before reading outcomes. What
each path does is `replay.control`'s.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from mitmproxy import ctx, exceptions, http

from replay.control import CONTROL_HOST, ControlAnswer, Controlled, handle
from replay.errors import ConfigError

IN_FLIGHT_WAIT = 2.0
"""Seconds `/outcomes` waits at most for the window's requests that have not ended."""


def is_control(flow: http.HTTPFlow) -> bool:
    """Whether `flow` asks the control endpoint (whatever its scheme and port)."""
    return flow.request.host.lower().rstrip(".") == CONTROL_HOST


def from_loopback(flow: http.HTTPFlow) -> bool:
    peer = flow.client_conn.peername
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def serve(
    flow: http.HTTPFlow, engine: Controlled | None, in_flight: Callable[[], Iterable[float]]
) -> Awaitable[None] | None:
    """Answer a control request on `flow`; `in_flight` gives the start times (monotonic) of
    the requests not yet ended."""
    if not from_loopback(flow):
        _respond(flow, ControlAnswer(403, {"error": "the control endpoint answers loopback only"}))
        return None
    if engine is None:
        _respond(flow, ControlAnswer(503, {"error": "the replay addon is not configured"}))
        return None
    path = flow.request.path
    if flow.request.method.upper() == "GET" and path.split("?", 1)[0].rstrip("/") == "/outcomes":
        return _outcomes_after(flow, engine, in_flight)
    _respond(flow, handle(engine, flow.request.method, path, flow.request.content or b"", _set))
    return None


async def _outcomes_after(
    flow: http.HTTPFlow, engine: Controlled, in_flight: Callable[[], Iterable[float]]
) -> None:
    """Let the window's requests that are still being answered end first (bounded): a test
    reading its outcomes right after a stream it abandoned still sees that request."""
    deadline = time.monotonic() + IN_FLIGHT_WAIT
    while time.monotonic() < deadline:
        if not any(started >= engine.window.started for started in in_flight()):
            break
        await asyncio.sleep(0.01)
    answer = handle(engine, flow.request.method, flow.request.path, b"", _set)
    answer.body["in_flight"] = sum(1 for s in in_flight() if s >= engine.window.started)
    _respond(flow, answer)


def _set(changes: dict[str, Any]) -> None:
    try:
        ctx.options.update(**changes)
    except exceptions.OptionsError as e:
        raise ConfigError(str(e)) from None


def _respond(flow: http.HTTPFlow, answer: ControlAnswer) -> None:
    flow.response = http.Response.make(
        answer.status,
        answer.encode(),
        {"content-type": "application/json", "cache-control": "no-store"},
    )
