"""Forgetting closed upstream connections that mitmproxy would keep until the client leaves.

mitmproxy 12's HTTP layer (`proxy/layers/http/__init__.py`, `HttpLayer`) keeps every server
connection it opened for one client connection in `HttpLayer.connections`, with the layers
that drove it (for TLS an OpenSSL `SSL.Connection`, the peer's certificates, h11 buffers),
and never removes one: only the client's disconnect frees them. A client that keeps one
connection alive while the proxy opens upstream connection after connection therefore grows
the proxy by one connection's worth (about 75 KB over TLS) a request. That happens when:

- an HTTP/2 client gets streamed replays: mitmproxy never reuses an HTTP/1 connection for an
  HTTP/2 client, so each stream opens (and closes) its own connection to the chunk server;
- an upstream closes its connections (idle timeouts, `Connection: close`) while the client
  stays connected;
- the test rig pins every upstream connection to a fake (`tests/support/pin_hosts.py`): the
  rewritten address no longer matches the next request, so each request connects anew.

`forget_closed` drops one closed server connection from the HTTP layers of its client's
connection handler; the addon calls it from `server_disconnected`, which mitmproxy runs once
the connection's transport is gone, so no event for it can follow. Open connections, and
ones still waiting to be established, are never touched. The walk reads mitmproxy's private
layer tree: on a layout it does not recognise it finds nothing and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from mitmproxy import ctx
from mitmproxy.connection import Client, ConnectionState, Server
from mitmproxy.proxy.layer import Layer
from mitmproxy.proxy.layers.http import HttpLayer

logger = logging.getLogger("replay")

_MAX_LAYERS = 10_000
"""A bound on the walk of one client's layer tree (a few dozen layers in practice)."""


def http_layers(root: Layer) -> Iterator[HttpLayer]:
    """Every HttpLayer under `root`: children are found in layer attributes (`layer`,
    `child_layer`), in bound methods a layer delegates to (`HttpProxy._handle_event`), and in
    the values of an HttpLayer's `streams` (a CONNECT tunnel lives in its stream)."""
    seen: set[int] = set()
    todo: list[Layer] = [root]
    while todo and len(seen) < _MAX_LAYERS:
        layer = todo.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, HttpLayer):
            yield layer
            todo.extend(s for s in layer.streams.values() if isinstance(s, Layer))
        for value in vars(layer).values():
            child = getattr(value, "__self__", value)  # a bound method: its layer
            if isinstance(child, Layer) and child is not layer:
                todo.append(child)


def forget_closed(client: Client, server: Server) -> int:
    """Drop the closed `server` from the HTTP layers of `client`'s connection; how many
    layers held it (0 when it is still open, still being established, or not found)."""
    if server.state is not ConnectionState.CLOSED:
        return 0
    proxyserver: Any = ctx.master.addons.get("proxyserver")
    handler = getattr(proxyserver, "connections", {}).get(client.id)
    root = getattr(handler, "layer", None)
    if not isinstance(root, Layer):
        return 0
    dropped = 0
    for layer in http_layers(root):
        if server in layer.connections and server not in layer.waiting_for_establishment:
            del layer.connections[server]
            dropped += 1
    return dropped
