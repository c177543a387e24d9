"""Running mitmdump with the replay addon as a child process, for `replay run`.

Owns the command line (the same interpreter, so the same mitmproxy and replay), readiness
(mitmproxy's own "listening at 127.0.0.1:PORT" line, read from the log file the child
writes), and a clean stop (SIGTERM, so the addon drains its writer; SIGKILL only after a
bounded wait). The proxy runs in its own session: a Ctrl-C at the terminal reaches the
wrapped command, never the proxy, which the caller stops after the command has ended.
Knows nothing of replay's options beyond passing them on.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from replay.errors import ReplayError

MITMDUMP = ("-c", "from mitmproxy.tools.main import mitmdump; mitmdump()")
ADDON_SCRIPT = Path(__file__).resolve().parent / "mitm" / "script.py"
"""The addon entry of the installed package (what `replay addon` prints)."""
_LISTENING = re.compile(rb"listening at (?:[a-z]+://)?127\.0\.0\.1:(\d+)")
_READY = re.compile(rb"replay: ready")
"""The addon's line once its options are valid and the proxy listens."""
_FAILED = re.compile(rb"Error logged during startup|replay: unknown option")


class ProxyStartError(ReplayError):
    """mitmdump exited, or stayed silent, before it listened; the message says why."""


def _last_error(log: Path) -> str:
    """The line of the log that best says why mitmdump stopped."""
    try:
        lines = [ln.strip() for ln in log.read_text("utf-8", "replace").splitlines()]
    except OSError:
        return "no output"
    lines = [ln for ln in lines if ln and not ln.startswith("Error logged during startup")]
    errors = [ln for ln in lines if "error" in ln.lower()]
    line = (errors or lines or ["no output"])[-1]
    return re.sub(r"^(\[[0-9:.]+\] )?([a-z_.]+\.)?[A-Za-z]*Error: ", "", line)


def terminate(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Stop `proc` by its pid: SIGTERM, then SIGKILL after `timeout` s; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode


@dataclass
class ProxyProcess:
    """A running mitmdump; `port` is where it listens on 127.0.0.1."""

    proc: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls,
        args: list[str],
        log: Path,
        *,
        port: int = 0,
        env: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> ProxyProcess:
        """Start mitmdump on 127.0.0.1:`port` (0: any free port) with `args`; return once it
        listens and the addon said it is ready; ProxyStartError with mitmdump's reason if not."""
        cmd = [sys.executable, *MITMDUMP, "--listen-host", "127.0.0.1", "-p", str(port), *args]
        child_env = {**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            output = log.read_bytes()
            found = _LISTENING.search(output)
            if found and _READY.search(output):
                return cls(proc, log, int(found[1]))
            if proc.poll() is not None or _FAILED.search(output):
                cls(proc, log, 0).stop()
                raise ProxyStartError(f"the proxy did not start: {_last_error(log)}")
            if time.monotonic() > deadline:
                cls(proc, log, 0).stop()
                raise ProxyStartError(f"the proxy did not listen within {timeout:.0f}s")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the addon drains its writes), then SIGKILL after `timeout`; the exit code."""
        return terminate(self.proc, timeout)

    def last_error(self) -> str:
        return _last_error(self.log)
