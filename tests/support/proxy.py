"""Owns running mitmdump for tests and pointing clients at it.

- :func:`start_mitmdump` launches ``mitmdump`` as a subprocess on ``127.0.0.1:<OS port>``, drains
  its output, waits for readiness and returns a :class:`Proxy` (stop it, or use ``with``).
- :func:`ensure_mitm_ca`, :func:`ca_bundle`: the mitmproxy CA in a confdir, and a combined bundle.
- :func:`client_env`, :func:`subprocess_env`, :func:`apply_env`: the environment clients need.
- :func:`h2_first_context`: an SSL context that *prefers* h2 in ALPN (httpcore offers http/1.1
  first, and a lazy mitmproxy honours the client's order).
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import certifi
import pytest

from replay.launch import terminate

READY_PATTERN = re.compile(r"listening at 127\.0\.0\.1:(\d+)")
"""Matches mitmproxy's ``HTTP(S) proxy listening at 127.0.0.1:PORT.`` (and reverse mode's)."""

PROXY_VARS: tuple[str, ...] = (
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)
CA_VARS: tuple[str, ...] = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
)
SDK_VARS: tuple[str, ...] = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_GEMINI_BASE_URL",
)
"""SDK settings read from the environment; a developer's or CI's values must not leak into tests."""
MANAGED_VARS: tuple[str, ...] = PROXY_VARS + CA_VARS + SDK_VARS
"""Every variable the tests own: removed from the inherited environment, set only on purpose."""


class ProxyStartError(RuntimeError):
    """mitmdump exited or stayed silent before it was ready; the message holds its output."""


class Proxy:
    """A running mitmdump subprocess. ``port``/``url`` are known once it is ready."""

    def __init__(self, proc: subprocess.Popen[bytes], ready: re.Pattern[str]) -> None:
        self.proc = proc
        self.port = 0
        self._ready_pattern = ready
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._eof = threading.Event()
        self.returncode: int | None = None
        self._reader = threading.Thread(
            target=self._drain, name=f"mitmdump-{proc.pid}-output", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the value for HTTPS_PROXY, or a reverse-mode base URL."""
        return f"http://127.0.0.1:{self.port}"

    def _drain(self) -> None:
        stream: IO[bytes] | None = self.proc.stdout
        assert stream is not None
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._lock:
                    self._lines.append(line)
                if not self.port and (m := READY_PATTERN.search(line)):
                    self.port = int(m.group(1))
                if not self._ready.is_set() and (m := self._ready_pattern.search(line)):
                    if m.groups() and m.group(1).isdigit():
                        self.port = int(m.group(1))
                    self._ready.set()
        finally:
            self._eof.set()

    def output(self) -> str:
        """Everything mitmdump printed so far (stdout and stderr, interleaved)."""
        with self._lock:
            return "\n".join(self._lines)

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def wait_ready(self, timeout: float) -> None:
        """Block until the ready line (bounded); raise :class:`ProxyStartError` otherwise."""
        deadline = time.monotonic() + timeout
        while not self._ready.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                code = self.stop()
                raise ProxyStartError(
                    f"mitmdump not ready after {timeout:.0f}s (exit {code}):\n{self.output()}"
                )
            if self._eof.is_set() or self.proc.poll() is not None:
                self._eof.wait(2.0)  # let the reader collect the last lines
                code = self.stop()
                raise ProxyStartError(
                    f"mitmdump exited before ready (exit {code}):\n{self.output()}"
                )
            self._ready.wait(min(0.05, remaining))

    def wait_for_output(
        self, pattern: str | re.Pattern[str], timeout: float = 10.0
    ) -> re.Match[str]:
        """Wait (bounded) until a line matches ``pattern``; raise AssertionError with the output."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines():
                if m := regex.search(line):
                    return m
            if time.monotonic() >= deadline or self._eof.is_set():
                raise AssertionError(f"no line matching {regex.pattern!r}:\n{self.output()}")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait ``timeout`` s, then SIGKILL; returns the exit code. Idempotent."""
        if self.returncode is None:
            self.returncode = terminate(self.proc, timeout)
        self._reader.join(5.0)
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()
        return self.returncode

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def subprocess_env(
    overrides: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A full environment for a child: ``base`` (default ``os.environ``) without any of
    :data:`MANAGED_VARS`, plus ``overrides``."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in MANAGED_VARS}
    env.update(overrides or {})
    return env


def start_mitmdump(
    args: Sequence[str],
    confdir: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    ready: str | re.Pattern[str] | None = None,
    timeout: float = 20.0,
) -> Proxy:
    """Start ``mitmdump`` on 127.0.0.1 with an OS-chosen port and wait until it listens.

    ``env`` is added to the inherited environment, from which every proxy, CA and SDK variable is
    removed first. ``ready`` replaces :data:`READY_PATTERN` as the readiness line (the port is
    still taken from mitmproxy's "listening at" line, or from ``ready``'s group 1 if numeric).
    """
    cmd = [
        sys.executable,
        "-c",
        "from mitmproxy.tools.main import mitmdump; mitmdump()",
        "--set",
        f"confdir={confdir}",
        "--listen-host",
        "127.0.0.1",
        "-p",
        "0",
        *args,
    ]
    child_env = subprocess_env({"PYTHONUNBUFFERED": "1", **(env or {})})
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    proxy = Proxy(proc, re.compile(ready) if ready is not None else READY_PATTERN)
    try:
        proxy.wait_ready(timeout)
    except BaseException:
        proxy.stop()
        raise
    return proxy


def ensure_mitm_ca(confdir: Path) -> Path:
    """Create mitmproxy's CA in ``confdir`` if missing (as mitmdump would); return the cert path."""
    from mitmproxy.certs import CertStore

    confdir.mkdir(parents=True, exist_ok=True)
    cert = confdir / "mitmproxy-ca-cert.pem"
    if not cert.exists():
        CertStore.from_store(confdir, "mitmproxy", 2048)
    return cert


def ca_bundle(
    confdir: Path, extra_ca: Path | Iterable[Path] | None = None, dest: Path | None = None
) -> Path:
    """Write certifi's roots + mitmproxy's CA (+ ``extra_ca``) to one PEM file and return it.

    ``SSL_CERT_FILE`` *replaces* a client's trust store, so clients need the combined bundle.
    Default ``dest``: ``confdir/test-ca-bundle.pem``.
    """
    extras = [extra_ca] if isinstance(extra_ca, Path) else list(extra_ca or [])
    parts = [Path(certifi.where()).read_bytes(), ensure_mitm_ca(confdir).read_bytes()]
    parts += [p.read_bytes() for p in extras]
    out = dest or confdir / "test-ca-bundle.pem"
    out.write_bytes(b"\n".join(p.rstrip(b"\n") + b"\n" for p in parts))
    return out


def client_env(proxy: Proxy | str | None, bundle: Path) -> dict[str, str]:
    """The variables a client needs: proxy (upper and lower case) and CA, all set explicitly.

    ``proxy`` is a :class:`Proxy`, a proxy URL, or None. Pass None for reverse mode: the client
    then talks to the proxy's URL directly, and an HTTP(S)_PROXY pointing at the same proxy would
    be wrong (the request would arrive in absolute form). With a proxy, NO_PROXY is empty so
    nothing (not even 127.0.0.1) bypasses it. SSL_CERT_DIR is an empty directory beside the
    bundle, so only the bundle is trusted. Keys of :data:`MANAGED_VARS` missing here
    (ALL_PROXY, …) must be *removed*: use :func:`apply_env` or :func:`subprocess_env`.
    """
    empty_dir = bundle.parent / "empty-cert-dir"
    empty_dir.mkdir(exist_ok=True)
    env = {
        "SSL_CERT_FILE": str(bundle),
        "SSL_CERT_DIR": str(empty_dir),
        "REQUESTS_CA_BUNDLE": str(bundle),
        "CURL_CA_BUNDLE": str(bundle),
        "NODE_EXTRA_CA_CERTS": str(bundle),
    }
    if proxy is not None:
        url = proxy.url if isinstance(proxy, Proxy) else proxy
        for name in ("HTTPS_PROXY", "HTTP_PROXY"):
            env[name] = env[name.lower()] = url
        env["NO_PROXY"] = env["no_proxy"] = ""
    return env


def apply_env(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    """Make ``os.environ`` hold exactly ``env`` for the :data:`MANAGED_VARS` (undone at teardown).

    SDK clients read the environment when they are constructed: build them after this call.
    """
    for name in MANAGED_VARS:
        if name not in env:
            monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


class _H2FirstContext(ssl.SSLContext):
    """An SSLContext whose ALPN offer always lists ``h2`` first."""

    def set_alpn_protocols(self, alpn_protocols: Iterable[str]) -> None:
        protocols = list(alpn_protocols)
        if "h2" in protocols:
            protocols.remove("h2")
            protocols.insert(0, "h2")
        super().set_alpn_protocols(protocols)


def h2_first_context(cafile: Path) -> ssl.SSLContext:
    """A verifying client context trusting ``cafile`` that offers h2 first (for httpx)."""
    context = _H2FirstContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(cafile))
    return context


PIN_HOSTS_SCRIPT = Path(__file__).resolve().with_name("pin_hosts.py")


class ProxyFactory:
    """Starts mitmdump processes for one test and stops them all in :meth:`stop_all`.

    Every proxy gets ``-s pin_hosts.py --set pin_upstream=127.0.0.1:<upstream_port>``,
    ``ssl_verify_upstream_trusted_ca=<test CA>`` and ``connection_strategy=lazy`` before the
    caller's ``args`` (so a later ``--set`` from the caller wins). ``upstream_port=None`` leaves
    pinning off (offline replay: any real upstream connection then fails to resolve).
    """

    def __init__(self, confdir: Path, test_ca: Path, cwd: Path | None = None) -> None:
        self.confdir = confdir
        self.test_ca = test_ca
        self.cwd = cwd
        self.started: list[Proxy] = []

    def base_args(self, upstream_port: int | None) -> list[str]:
        pin = "" if upstream_port is None else f"127.0.0.1:{upstream_port}"
        return [
            "-s",
            str(PIN_HOSTS_SCRIPT),
            "--set",
            f"pin_upstream={pin}",
            "--set",
            f"ssl_verify_upstream_trusted_ca={self.test_ca}",
            "--set",
            "connection_strategy=lazy",
        ]

    def __call__(
        self,
        *args: str,
        upstream_port: int | None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        ready: str | re.Pattern[str] | None = None,
        timeout: float = 20.0,
    ) -> Proxy:
        proxy = start_mitmdump(
            [*self.base_args(upstream_port), *args],
            self.confdir,
            cwd=cwd or self.cwd,
            env=env,
            ready=ready,
            timeout=timeout,
        )
        self.started.append(proxy)
        return proxy

    def stop_all(self) -> None:
        """Stop every proxy (newest first) and print its output (pytest shows it on failure)."""
        while self.started:
            proxy = self.started.pop()
            code = proxy.stop()
            print(f"--- mitmdump pid {proxy.pid} port {proxy.port} exit {code} ---")
            print(proxy.output())
