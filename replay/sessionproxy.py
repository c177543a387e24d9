"""The proxy of a test session: started or attached, its clients' environment, its control.

Owns what the pytest plugin does that is not pytest: starting mitmdump with the addon on a
free port (`replay.launch`, as `replay run` does) or attaching to a running one
(`--replay-proxy`), the variables its clients need (`replay.clientenv`: proxy, NO_PROXY, a
combined CA bundle), calling the addon's control endpoint (switch a test in, read its
outcomes), the strict verdict on a test's outcomes and its message, and the clean-up of a
re-recorded namespace. Knows nothing of pytest.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from replay.clientenv import proxy_env, write_bundle
from replay.control import CONTROL_HOST
from replay.errors import ReplayError
from replay.launch import ADDON_SCRIPT, ProxyProcess
from replay.report import ReportLine, describe
from replay.store import Store

logger = logging.getLogger(__name__)

STRICT_OUTCOMES = ("miss", "synthetic", "forwarded", "error")
"""What `--replay-strict` fails a test for: anything not replayed from (or recorded into)
its cassette."""
CA_CERT = "mitmproxy-ca-cert.pem"
CONTROL_TIMEOUT = 30.0
CA_WAIT = 10.0
"""Seconds to wait for mitmdump to write the CA of a new confdir."""


class SessionProxyError(ReplayError):
    """The session's proxy cannot be started, reached or driven; the message says why."""


@dataclass(frozen=True, slots=True)
class TestSettings:
    """What one test asks of the proxy (its marker over the session's options)."""

    namespace: str
    mode: str
    miss: str
    rules: str
    """A path, or "" for no rules file."""


@dataclass
class SessionProxy:
    """A proxy for one pytest process, and the environment its tests run with."""

    url: str
    env: dict[str, str]
    process: ProxyProcess | None = None
    workdir: Path | None = None
    """A directory of ours (log, CA bundle), removed at `close`."""
    _saved: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        options: Mapping[str, str],
        scripts: Sequence[str] = (),
        extra: Sequence[tuple[str, str]] = (),
        timeout: float = 30.0,
    ) -> SessionProxy:
        """Start mitmdump with the addon and `options` (`replay_*` name → value), extra
        addon `scripts` and further options `extra` (they win over `options`)."""
        workdir = Path(tempfile.mkdtemp(prefix="replay-pytest-"))
        args = ["-s", str(ADDON_SCRIPT)]
        for script in scripts:
            args += ["-s", script]
        # One --set per option: mitmproxy refuses an option given twice (and, for an addon's
        # option, says nothing and never starts).
        for name, value in {**options, "flow_detail": "0", **dict(extra)}.items():
            args += ["--set", f"{name}={value}"]
        try:
            process = ProxyProcess.start(args, workdir / "mitmdump.log", timeout=timeout)
        except ReplayError as e:
            shutil.rmtree(workdir, ignore_errors=True)
            raise SessionProxyError(str(e)) from None
        confdir = dict(extra).get("confdir", "~/.mitmproxy")
        ca = Path(os.path.expanduser(confdir)) / CA_CERT
        # A new confdir gets its CA while mitmdump starts, and the file may land just
        # after the proxy said it is ready.
        deadline = time.monotonic() + CA_WAIT
        while not ca.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            bundle = write_bundle(workdir, ca)
        except OSError as e:
            process.stop()
            shutil.rmtree(workdir, ignore_errors=True)
            raise SessionProxyError(f"cannot read mitmproxy's CA {ca}: {e.strerror}") from None
        return cls(process.url, proxy_env(process.url, bundle), process, workdir)

    @classmethod
    def attach(cls, url: str, ca: Path) -> SessionProxy:
        """Use the proxy running at `url`, whose CA certificate is `ca`."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
            raise SessionProxyError(f"--replay-proxy {url!r}: expected http://host:port")
        workdir = Path(tempfile.mkdtemp(prefix="replay-pytest-"))
        try:
            bundle = write_bundle(workdir, ca)
        except OSError as e:
            shutil.rmtree(workdir, ignore_errors=True)
            raise SessionProxyError(f"--replay-ca {ca}: {e.strerror}") from None
        proxy = cls(url.rstrip("/"), proxy_env(url.rstrip("/"), bundle), None, workdir)
        try:
            proxy.control("GET", "/")  # fails early, with a clear line, if it is not there
        except SessionProxyError:
            proxy.close()
            raise
        return proxy

    # --- the environment ----------------------------------------------------------------

    def export(self) -> None:
        """Put the client variables into `os.environ` (undone by `restore`)."""
        for name, value in self.env.items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()

    # --- the control endpoint -----------------------------------------------------------

    def control(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call `http://replay.control{path}` through the proxy; the JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://{CONTROL_HOST}{path}", data=data, method=method)
        if data is not None:
            request.add_header("content-type", "application/json")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": self.url}))
        try:
            with opener.open(request, timeout=CONTROL_TIMEOUT) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as e:
            reason = _error_of(e.read())
            raise SessionProxyError(
                f"the replay proxy at {self.url} refused {method} {path}: {e.code} {reason}"
            ) from None
        except (OSError, ValueError) as e:
            raise SessionProxyError(
                f"the replay proxy at {self.url} did not answer {method} {path}: {e}"
            ) from None

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.control("GET", "/")
        return state

    def switch(self, test: TestSettings) -> None:
        """Send the following requests to `test.namespace`, counting from 0, with the
        test's mode, miss policy and rules; its outcomes start here."""
        body = {"namespace": test.namespace, "reset": True, "mode": test.mode, "miss": test.miss}
        self.control("POST", "/switch", {**body, "rules": test.rules})

    def outcomes(self) -> list[ReportLine]:
        """The report lines of the requests made since the last switch."""
        answer = self.control("GET", "/outcomes")
        fields = set(ReportLine.__dataclass_fields__)
        return [
            ReportLine(**{k: v for k, v in line.items() if k in fields})
            for line in answer.get("outcomes", [])
        ]

    # --- the end ------------------------------------------------------------------------

    def close(self) -> int | None:
        """Stop a proxy we started (SIGTERM: the addon drains its writes) and remove our
        files; the proxy's exit code, None for an attached proxy."""
        self.restore()
        code = self.process.stop() if self.process is not None else None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return code

    def log_tail(self, lines: int = 20) -> str:
        """The end of the started proxy's output (for an error message)."""
        if self.process is None:
            return ""
        try:
            text = self.process.log.read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _error_of(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace")


def strict_failures(lines: Iterable[ReportLine]) -> list[ReportLine]:
    """The requests `--replay-strict` fails a test for."""
    return [line for line in lines if line.outcome in STRICT_OUTCOMES]


def strict_message(namespace: str, failures: Sequence[ReportLine]) -> str:
    """Why a strict test failed: each request not replayed, its nearest recording and the
    first field that differs, and how to record it."""
    lines = [
        f"replay strict: {len(failures)} request(s) of this test were not replayed from its "
        f"cassette (namespace {namespace!r}):"
    ]
    lines += [f"  {describe(line)}" for line in failures]
    lines.append(
        "Record them with --replay-mode=record (or auto), or see docs/matching.md for "
        "why a request misses."
    )
    return "\n".join(lines)


def prune(root: Path, namespace: str, keep: Iterable[tuple[str, int]]) -> int:
    """Delete the interaction files of `namespace` (not those nested in it) whose
    (fingerprint, occurrence) is not in `keep`: a test recorded again keeps only what it
    recorded this time. Run it when no proxy writes the namespace; the count deleted."""
    wanted = set(keep)
    removed = 0
    for path, key in list(Store(root).entries(namespace)):
        if (key.fingerprint, key.occurrence) in wanted:
            continue
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as e:
            logger.error("cannot remove stale cassette %s: %s", path, e.strerror)
    return removed
