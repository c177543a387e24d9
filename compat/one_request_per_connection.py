"""mitmdump script of the matrix's record pass: ends every client connection after its
response (`connection: close`).

The record pass pins the recorder's upstream connections to a local stand-in with
tests/support/pin_hosts.py, which rewrites each connection's address; mitmproxy then opens
a new upstream connection for every request of a kept-alive client connection, and the
sixth request on one client connection waits until an earlier upstream connection closes
(never, when the stand-in is a mitmdump). One request per client connection avoids it. Not
needed, nor loaded, outside that pass.
"""

from __future__ import annotations

from mitmproxy import http


def responseheaders(flow: http.HTTPFlow) -> None:
    if flow.response is not None and flow.request.http_version == "HTTP/1.1":
        flow.response.headers["connection"] = "close"
