"""Owns a minimal HTTP/1.1 client that sees what a client really receives, chunk by chunk.

SDKs and httpx hide transfer framing; to check that a replay sends the same status line,
headers (order and case), body bytes and number of HTTP chunks as the recording, and when
each chunk arrives, tests and benches read the response themselves: through the proxy with
CONNECT + TLS (forward mode), or straight to the proxy in plain HTTP (reverse mode).
Also owns `ConnectionCounter`, a listener that only counts the connections it is offered.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status_line: str
    headers: list[tuple[str, str]]
    chunks: list[bytes] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """Seconds from the request being sent to each chunk being fully read."""
    t_headers: float = 0.0
    complete: bool = True
    """False when the connection closed before the body ended (a cut stream)."""

    @property
    def status(self) -> int:
        return int(self.status_line.split()[1])

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def headers_without_replay(self) -> list[tuple[str, str]]:
        return [(k, v) for k, v in self.headers if not k.lower().startswith("x-replay")]


def tunnel(
    proxy_port: int, ctx: ssl.SSLContext, host: str, port: int = 443, timeout: float = 15.0
) -> ssl.SSLSocket:
    """A blocking TLS socket to `host:port` through the proxy's CONNECT, TCP_NODELAY set."""
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        reply = b""
        while b"\r\n\r\n" not in reply and len(reply) < 65536:
            data = sock.recv(4096)
            if not data:
                raise ConnectionError("proxy closed the CONNECT")
            reply += data
        if b" 200 " not in reply.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"CONNECT refused: {reply[:200]!r}")
        return ctx.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def _open(url: str, proxy_port: int | None, cafile: Path | None, timeout: float) -> socket.socket:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if proxy_port is None:
        return socket.create_connection((host, port), timeout=timeout)
    ctx = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    ctx.set_alpn_protocols(["http/1.1"])
    return tunnel(proxy_port, ctx, host, port, timeout)


def fetch(
    url: str,
    *,
    proxy_port: int | None,
    cafile: Path | None = None,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 15.0,
) -> RawResponse:
    """One request with `Connection: close`; the response read chunk by chunk.

    `proxy_port` None means: talk to the URL's host directly (reverse mode, plain HTTP).
    """
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [
        f"{method} {target} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Connection: close",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    sock = _open(url, proxy_port, cafile, timeout)
    with sock, sock.makefile("rb") as reader:
        t0 = time.monotonic()
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return _read_response(reader, t0)


def _read_response(reader: BinaryIO, t0: float) -> RawResponse:
    status_line = reader.readline().decode("latin-1").rstrip("\r\n")
    headers: list[tuple[str, str]] = []
    for _ in range(1000):
        line = reader.readline().decode("latin-1").rstrip("\r\n")
        if not line:
            break
        name, _, value = line.partition(":")
        headers.append((name, value.strip()))
    resp = RawResponse(status_line, headers, t_headers=time.monotonic() - t0)
    if "chunked" in (resp.header("transfer-encoding") or "").lower():
        for _ in range(1_000_000):
            size_line = reader.readline()
            if not size_line.endswith(b"\n"):  # the connection closed mid-body
                resp.complete = False
                break
            size = int(size_line.split(b";")[0].strip(), 16)
            data = reader.read(size + 2)
            if size == 0:
                break
            resp.chunks.append(data[:-2])
            resp.times.append(time.monotonic() - t0)
    elif (length := resp.header("content-length")) is not None:
        data = reader.read(int(length))
        resp.complete = len(data) == int(length)
        resp.chunks.append(data)
        resp.times.append(time.monotonic() - t0)
    else:
        resp.chunks.append(reader.read())
        resp.times.append(time.monotonic() - t0)
    return resp


class ConnectionCounter:
    """Listens on 127.0.0.1:`port` and counts connection attempts (it never answers)."""

    def __init__(self, port: int) -> None:
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(64)
        self._sock.setblocking(False)
        self.port: int = self._sock.getsockname()[1]  # port 0: one the OS chose
        self._count = 0

    def count(self) -> int:
        for _ in range(1000):
            try:
                conn, _ = self._sock.accept()
            except BlockingIOError:
                break
            conn.close()
            self._count += 1
        return self._count

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> ConnectionCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
