"""Owns the test object stores: moto's S3 server as a subprocess on 127.0.0.1, and a small
HTTP relay in front of it that can drop `If-None-Match` (a store that ignores conditional
puts), answer 503, stall, or be switched off.

`MotoServer` starts `python -m moto.server` on a free loopback port, waits until it answers
and stops it by its own pid. `Relay` forwards every request to an upstream address and back,
byte for byte apart from what its knobs change. `s3_env` is the environment a boto3 client
(or a proxy) needs to reach either: dummy credentials, a region, `AWS_ENDPOINT_URL`.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import boto3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def s3_env(endpoint: str, key: str = "testing", secret: str = "testing") -> dict[str, str]:
    """What boto3 needs to reach `endpoint` (moto accepts any credentials)."""
    return {
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


class MotoServer:
    """moto's S3 API server in its own process (see the module docstring)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not start within 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def client(self) -> Any:
        env = s3_env(self.endpoint)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Relay:
    """An HTTP relay to `upstream_port` with knobs (attributes, changeable at any time):
    `drop_if_none_match`, `fail_with` (a status answered instead of relaying; 0: relay),
    `fail_next` (that many requests answered 503, then relayed), `delay` (seconds before
    relaying), `deny_writes` (PUT and DELETE answered 403 AccessDenied: read-only
    credentials), `lose_next_put_answer` (the next PUT is relayed, its answer dropped with
    the connection). `requests` counts what it received, by method."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.drop_if_none_match = False
        self.fail_with = 0
        self.fail_next = 0
        self.lose_next_put_answer = False
        self.delay = 0.0
        self.deny_writes = False
        self.requests: dict[str, int] = {}
        self._count_lock = threading.Lock()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with relay._count_lock:
                    relay.requests[self.command] = relay.requests.get(self.command, 0) + 1
                if relay.delay:
                    time.sleep(relay.delay)
                with relay._count_lock:
                    failing = relay.fail_next > 0
                    relay.fail_next -= failing
                    lose = relay.lose_next_put_answer and self.command == "PUT"
                    relay.lose_next_put_answer &= not lose
                if relay.fail_with or failing:
                    status = relay.fail_with or 503
                    self._answer(status, b"<Error><Code>ServiceUnavailable</Code></Error>")
                    return
                if relay.deny_writes and self.command in ("PUT", "DELETE", "POST"):
                    self._answer(403, b"<Error><Code>AccessDenied</Code></Error>")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                if relay.drop_if_none_match:
                    headers = {k: v for k, v in headers.items() if k.lower() != "if-none-match"}
                upstream = http.client.HTTPConnection("127.0.0.1", relay.upstream_port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    if lose:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.send_response(answer.status)
                    for k, v in answer.getheaders():
                        if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                            self.send_header(k, v)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    upstream.close()

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/xml")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: from now on a connection is refused (idempotent)."""
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join(10)
        self.server.server_close()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
