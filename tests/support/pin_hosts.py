"""Test-only mitmproxy addon (``-s``): sends every non-loopback upstream connection to the fake.

``--set pin_upstream=127.0.0.1:PORT`` rewrites the *socket address* in ``server_connect`` only, so
the flow's URL, the Host header and the SNI stay the provider's (``api.openai.com`` …). Loopback
destinations (the replay addon's own chunk server) are left alone. Use it with
``connection_strategy=lazy``: with eager connects the redirect happens at CONNECT time and the
flow URL becomes ``https://127.0.0.1:PORT/…`` (see shared/MITMPROXY.md §4).

The rewritten address no longer matches the next request's (``api.openai.com:443``), so
mitmproxy opens a new upstream connection per request, where a real upstream's connection
would be reused. ``--set pin_upstream_reuse=true`` gives a pinned connection its original
address back once it is connected (the socket stays on the pin), so that mitmproxy reuses it
as it would without pinning; the soak bench uses it to measure what users see.
"""

from __future__ import annotations

import ipaddress
import logging

from mitmproxy import ctx, exceptions
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy import server_hooks

logger = logging.getLogger(__name__)

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_pin(value: str) -> tuple[str, int] | None:
    """``"host:port"`` → ``(host, port)``; ``""`` → None (pinning off)."""
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise exceptions.OptionsError(f"pin_upstream must be host:port, got {value!r}")
    return host.strip("[]"), int(port)


class PinHosts:
    """Redirects upstream connections to ``pin_upstream`` (tests only)."""

    def __init__(self) -> None:
        self.pin: tuple[str, int] | None = None
        self.plain_pin: tuple[str, int] | None = None
        self.reuse = False
        self.original: dict[str, tuple[str, int]] = {}
        """Server connection id -> its address before pinning, until it is connected."""

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "pin_upstream",
            str,
            "",
            "Test only: connect every non-loopback upstream to this host:port instead.",
        )
        loader.add_option(
            "pin_upstream_plain",
            str,
            "",
            "Test only: where plain-HTTP (non-TLS) upstream connections go instead.",
        )
        loader.add_option(
            "pin_upstream_reuse",
            bool,
            False,
            "Test only: let mitmproxy reuse a pinned connection for its original host:port.",
        )

    def configure(self, updated: set[str]) -> None:
        if "pin_upstream_reuse" in updated:
            self.reuse = ctx.options.pin_upstream_reuse
        if "pin_upstream" in updated:
            self.pin = parse_pin(ctx.options.pin_upstream)
            if self.pin is not None:
                host, port = self.pin
                logger.info(f"pin_hosts: upstream connections pinned to {host}:{port}")
        if "pin_upstream_plain" in updated:
            self.plain_pin = parse_pin(ctx.options.pin_upstream_plain)

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        address = data.server.address
        if self.pin is None or address is None or is_loopback(str(address[0])):
            return
        pin = self.pin if data.server.tls or self.plain_pin is None else self.plain_pin
        logger.debug(f"pin_hosts: {address[0]}:{address[1]} -> {pin[0]}:{pin[1]}")
        if self.reuse:
            self.original[data.server.id] = (str(address[0]), int(address[1]))
        data.server.address = pin

    def server_connected(self, data: server_hooks.ServerConnectionHookData) -> None:
        original = self.original.pop(data.server.id, None)
        if original is not None:
            # Server.__setattr__ refuses a new address on an open connection; the socket is
            # connected already, and from now on only mitmproxy's reuse check reads it.
            data.server.__dict__["address"] = original

    def server_connect_error(self, data: server_hooks.ServerConnectionHookData) -> None:
        self.original.pop(data.server.id, None)


addons = [PinHosts()]
