"""Light measuring clients for replayed streams: when does each chunk reach the client?

Owns `StreamTiming` (one response as a client saw it: times from sending the request to the
head and to each chunk), `run_h1_concurrent` (N kept-alive HTTP/1.1 connections, one thread,
non-blocking sockets and a selector, chunked framing parsed by hand) and `run_h2` (N streams
on one HTTP/2 connection, the `h2` state machine over one blocking socket). Arrival times are
taken when `select`/`recv` returns, before any parsing, so the client's own work delays a
measurement as little as it can on a shared 2-core box.
"""

from __future__ import annotations

import selectors
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings


@dataclass
class StreamTiming:
    t_send: float
    """perf_counter() when the request was written."""
    status: int = 0
    t_headers: float = float("nan")
    """Seconds from t_send to the response head."""
    times: list[float] = field(default_factory=list)
    """Seconds from t_send to each body chunk (HTTP/1.1 chunk or HTTP/2 DATA frame)."""
    sizes: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    """The response head, names lower-cased (last value wins)."""
    done: bool = False
    error: str | None = None


# --- HTTP/1.1: N connections, one selector ----------------------------------------------


class _H1Conn:
    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.state = "idle"
        self.need = 0
        self.timing: StreamTiming | None = None

    def send(self, request: bytes) -> StreamTiming:
        self.sock.settimeout(5.0)
        t = time.perf_counter()
        self.sock.sendall(request)
        self.sock.setblocking(False)
        self.timing = StreamTiming(t)
        self.state = "head"
        return self.timing

    def readable(self, now: float) -> bool:
        """Drain the socket and parse; True once the response is complete."""
        while True:
            try:
                data = self.sock.recv(262144)
            except (ssl.SSLWantReadError, BlockingIOError):
                break
            if not data:
                raise ConnectionError("proxy closed the connection")
            self.buf += data
        return self._parse(now)

    def _parse(self, now: float) -> bool:
        t = self.timing
        assert t is not None
        buf = self.buf
        while True:
            if self.state == "head":
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    return False
                lines = bytes(buf[:i]).decode("latin-1").split("\r\n")
                del buf[: i + 4]
                t.status = int(lines[0].split(" ", 2)[1])
                t.t_headers = now - t.t_send
                headers = t.headers
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    self.state = "size"
                else:
                    self.need = int(headers.get("content-length", "0"))
                    self.state = "body"
            elif self.state == "size":
                i = buf.find(b"\r\n")
                if i < 0:
                    return False
                size = int(bytes(buf[:i]).split(b";")[0].strip(), 16)
                del buf[: i + 2]
                if size == 0:
                    self.state = "trailer"
                else:
                    self.need = size + 2
                    self.state = "data"
            elif self.state == "data":
                if len(buf) < self.need:
                    return False
                t.times.append(now - t.t_send)
                t.sizes.append(self.need - 2)
                del buf[: self.need]
                self.state = "size"
            elif self.state == "trailer":
                i = buf.find(b"\r\n")
                if i < 0:
                    return False
                empty = i == 0
                del buf[: i + 2]
                if empty:
                    return self._finish()
            elif self.state == "body":
                if len(buf) < self.need:
                    return False
                t.times.append(now - t.t_send)
                t.sizes.append(self.need)
                del buf[: self.need]
                return self._finish()
            else:
                return False

    def _finish(self) -> bool:
        assert self.timing is not None
        self.timing.done = True
        self.state = "idle"
        return True


def run_h1_concurrent(
    socks: Sequence[ssl.SSLSocket],
    request: bytes,
    *,
    stagger: float = 0.0,
    timeout: float = 30.0,
) -> list[StreamTiming]:
    """One request on each kept-alive socket; returns each response's timing.

    The requests go out together (`stagger` 0), or spread evenly over `stagger` seconds.
    """
    conns = [_H1Conn(s) for s in socks]
    sel = selectors.DefaultSelector()
    timings: list[StreamTiming] = []
    try:
        start = time.perf_counter()
        due = [start + stagger * i / len(conns) for i in range(len(conns))]
        next_send = 0
        open_count = 0
        deadline = start + timeout
        while next_send < len(conns) or open_count:
            now = time.perf_counter()
            while next_send < len(conns) and due[next_send] <= now:
                conn = conns[next_send]
                timings.append(conn.send(request))
                sel.register(conn.sock, selectors.EVENT_READ, conn)
                next_send += 1
                open_count += 1
            if now > deadline:
                for t in timings:
                    if not t.done:
                        t.error = "timeout"
                break
            wait = due[next_send] - now if next_send < len(conns) else deadline - now
            for key, _ in sel.select(max(wait, 0.0)):
                now = time.perf_counter()
                conn = key.data
                if conn.readable(now):
                    sel.unregister(conn.sock)
                    open_count -= 1
        return timings
    finally:
        sel.close()
        for s in socks:
            s.settimeout(15.0)


def h1_request(body: bytes, headers: dict[str, str], host: str, path: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- HTTP/2: N streams, one connection -----------------------------------------------------


class H2Client:
    """One HTTP/2 connection (over an already negotiated TLS socket) sending POSTs."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        if sock.selected_alpn_protocol() != "h2":
            raise ConnectionError(f"ALPN gave {sock.selected_alpn_protocol()!r}, not h2")
        self.sock = sock
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        window = 1 << 24
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.conn.increment_flow_control_window(window)
        self.sock.sendall(self.conn.data_to_send())

    def run(
        self,
        n: int,
        authority: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        *,
        stagger: float = 0.0,
        timeout: float = 30.0,
    ) -> list[StreamTiming]:
        """`n` POSTs, sent together (or spread over `stagger` s); returns their timings."""
        hdrs = [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", authority),
            (":path", path),
            ("content-length", str(len(body))),
            *headers.items(),
        ]
        timings: dict[int, StreamTiming] = {}
        order: list[int] = []
        start = time.perf_counter()
        due = [start + stagger * i / n for i in range(n)]
        sent = 0
        open_count = 0
        deadline = start + timeout
        self.sock.settimeout(0.5)
        while sent < n or open_count:
            now = time.perf_counter()
            while sent < n and due[sent] <= now:
                sid = self.conn.get_next_available_stream_id()
                self.conn.send_headers(sid, hdrs)
                self.conn.send_data(sid, body, end_stream=True)
                self.sock.sendall(self.conn.data_to_send())
                timings[sid] = StreamTiming(time.perf_counter())
                order.append(sid)
                sent += 1
                open_count += 1
            if now > deadline:
                for t in timings.values():
                    if not t.done:
                        t.error = "timeout"
                break
            wait = due[sent] - now if sent < n else deadline - now
            self.sock.settimeout(min(max(wait, 0.0005), 0.5))
            try:
                data = self.sock.recv(262144)
            except (TimeoutError, ssl.SSLWantReadError):
                continue
            now = time.perf_counter()
            if not data:
                raise ConnectionError("proxy closed the HTTP/2 connection")
            for event in self.conn.receive_data(data):
                found = timings.get(getattr(event, "stream_id", 0) or 0)
                if found is None:
                    continue
                t = found
                if isinstance(event, h2.events.ResponseReceived):
                    t.t_headers = now - t.t_send
                    t.headers = {str(k): str(v) for k, v in event.headers}
                    t.status = int(t.headers.get(":status", "0"))
                elif isinstance(event, h2.events.DataReceived):
                    if event.data:
                        t.times.append(now - t.t_send)
                        t.sizes.append(len(event.data))
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
                elif isinstance(event, h2.events.StreamEnded):
                    t.done = True
                    open_count -= 1
                elif isinstance(event, h2.events.StreamReset):
                    t.error = f"reset {event.error_code!r}"
                    open_count -= 1
            pending = self.conn.data_to_send()
            if pending:
                self.sock.sendall(pending)
        return [timings[sid] for sid in order]

    def close(self) -> None:
        try:
            self.conn.close_connection()
            self.sock.sendall(self.conn.data_to_send())
        except (OSError, h2.exceptions.ProtocolError):
            pass
        self.sock.close()


# --- closed loop: N kept-alive connections, one request in flight on each -----------------


@dataclass
class LoadResult:
    ok: int
    """Responses with status 200 completed inside the measured window."""
    other: int
    """Non-200 responses inside the window."""
    seconds: float
    latencies: list[float]
    """Seconds per 200 response inside the window."""
    errors: list[str]
    probes: list[float] = field(default_factory=list)
    """`probe()` at the start and at the end of the measured window."""


def run_closed_loop(
    socks: Sequence[ssl.SSLSocket],
    request: bytes,
    warmup: float,
    seconds: float,
    probe: Callable[[], float] | None = None,
) -> LoadResult:
    """Each socket sends `request` again as soon as its answer is complete; one thread.

    Counts responses that complete in [start + warmup, start + warmup + seconds), and calls
    `probe` (e.g. the proxy's CPU time) as the loop crosses the window's start and end.
    """
    conns = [_H1Conn(s) for s in socks]
    sel = selectors.DefaultSelector()
    result = LoadResult(0, 0, seconds, [], [])
    marks = [warmup, warmup + seconds]
    try:
        start = time.perf_counter()
        t_from, t_to = start + warmup, start + warmup + seconds
        for conn in conns:
            conn.send(request)
            sel.register(conn.sock, selectors.EVENT_READ, conn)
        live = len(conns)
        while live:
            for key, _ in sel.select(1.0):
                now = time.perf_counter()
                if marks and now >= start + marks[0]:
                    marks.pop(0)
                    if probe is not None:
                        result.probes.append(probe())
                conn = key.data
                try:
                    finished = conn.readable(now)
                except (OSError, ValueError) as e:
                    result.errors.append(repr(e))
                    sel.unregister(conn.sock)
                    live -= 1
                    continue
                if not finished:
                    continue
                timing = conn.timing
                assert timing is not None
                if t_from <= now < t_to:
                    if timing.status == 200:
                        result.ok += 1
                        result.latencies.append(now - timing.t_send)
                    else:
                        result.other += 1
                if now < t_to:
                    conn.send(request)
                else:
                    sel.unregister(conn.sock)
                    live -= 1
            if time.perf_counter() > t_to + 10:
                result.errors.append(f"{live} connections still busy 10 s after the window")
                break
        return result
    finally:
        sel.close()
        for s in socks:
            s.settimeout(15.0)


__all__ = [
    "H2Client",
    "LoadResult",
    "StreamTiming",
    "h1_request",
    "run_closed_loop",
    "run_h1_concurrent",
]
