"""mitmproxy flow files (`mitmdump -w`) as exchanges, read by mitmproxy's own FlowReader.

Keeps each HTTP flow that has a response: the raw (still content-encoded) body and its
headers, the time to first byte and the body's duration from the flow's timestamps. Other
flows (TCP, DNS, WebSocket messages) are skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mitmproxy import http
from mitmproxy.exceptions import FlowReadException
from mitmproxy.io import FlowReader

from replay.importers import Exchange, ImportFormatError
from replay.mitm.adapt import head_from_response, request_from_flow


def read(path: Path) -> list[Exchange]:
    out = []
    with path.open("rb") as f:
        try:
            for flow in FlowReader(f).stream():
                if isinstance(flow, http.HTTPFlow) and flow.response is not None:
                    out.append(_exchange(flow))
        except FlowReadException as e:
            raise ImportFormatError(f"{path}: not a mitmproxy flow file: {e}") from None
    return out


def _exchange(flow: http.HTTPFlow) -> Exchange:
    req, resp = flow.request, flow.response
    assert resp is not None
    request = request_from_flow(flow)  # exactly as the addon sees a live request
    head = head_from_response(resp)
    end = req.timestamp_end or req.timestamp_start
    ttfb = max(0.0, resp.timestamp_start - end) if end else 0.0
    duration = max(0.0, (resp.timestamp_end or resp.timestamp_start) - resp.timestamp_start)
    return Exchange(
        request=request,
        status=head.status,
        reason=head.reason,
        headers=head.headers,
        body=resp.raw_content or b"",
        http_version=head.http_version,
        ttfb=ttfb,
        duration=duration,
        recorded_at=datetime.fromtimestamp(
            resp.timestamp_end or resp.timestamp_start, UTC
        ).isoformat(timespec="milliseconds"),
    )
