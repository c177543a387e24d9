"""Test-only mitmproxy addon (``-s``): reports the upstream connections mitmproxy holds.

A request to ``http://conn-probe.test/`` through the proxy is answered here, never forwarded,
with JSON: ``held`` (server connections kept in the HTTP layers of live client connections)
and ``closed`` (those among them that are already closed: mitmproxy keeps them until their
client leaves unless replay's addon lets them go, see replay/mitm/conns.py).
"""

from __future__ import annotations

import gc
import json

from mitmproxy import http
from mitmproxy.connection import ConnectionState, Server
from mitmproxy.proxy.layers.http import HttpLayer

PROBE_HOST = "conn-probe.test"


def held_connections() -> dict[str, int]:
    """Server connections in every live HttpLayer, and how many of them are closed."""
    layers = [o for o in gc.get_objects() if isinstance(o, HttpLayer)]
    # a connection may be listed by two layers (a CONNECT tunnel's and the proxy's own)
    servers = {c.id: c for layer in layers for c in layer.connections if isinstance(c, Server)}
    closed = sum(1 for s in servers.values() if s.state is ConnectionState.CLOSED)
    return {"layers": len(layers), "held": len(servers), "closed": closed}


class ConnProbe:
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.pretty_host == PROBE_HOST:
            body = json.dumps(held_connections()).encode()
            flow.response = http.Response.make(200, body, {"content-type": "application/json"})


addons = [ConnProbe()]
