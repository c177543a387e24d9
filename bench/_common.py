"""Shared plumbing of the end-to-end benches (bench_replay.py, bench_throughput.py).

Owns: the test PKI, mitmproxy confdir and CA bundle of one bench run (a `Rig`), starting
mitmdump quietly (`-q`) on a port of ours and stopping it by its pid, a CONNECT + TLS tunnel
for the raw clients, the CPU time of a process from /proc, percentiles, the summary table and
the JSON results file. The fake upstream, the pinning addon, the CA helpers and the mitmproxy
process wrapper come from tests/support (put on sys.path here), not copies of them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
ADDON_SCRIPT = REPO_ROOT / "addons" / "replay.py"
if str(REPO_ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "tests"))
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from support import rawclient  # noqa: E402
from support.certs import TestCerts, make_certs  # noqa: E402
from support.proxy import (  # noqa: E402
    PIN_HOSTS_SCRIPT,
    Proxy,
    ca_bundle,
    ensure_mitm_ca,
    subprocess_env,
)

CHAT_URL = "https://api.openai.com/v1/chat/completions"
API_HOST = "api.openai.com"
_NEVER = re.compile(r"(?!x)x")  # a ready pattern that never matches: readiness is a connect


@dataclass(frozen=True)
class Rig:
    """Everything a bench run writes to disk lives under `root` (removed at the end)."""

    root: Path
    certs: TestCerts
    confdir: Path
    bundle: Path
    """certifi + mitmproxy CA + test CA: what the clients trust."""


@contextlib.contextmanager
def rig(keep: bool = False) -> Iterator[Rig]:
    root = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    try:
        certs = make_certs(root / "certs")
        confdir = root / "confdir"
        ensure_mitm_ca(confdir)
        bundle = ca_bundle(confdir, certs.ca_cert, dest=root / "bundle.pem")
        yield Rig(root, certs, confdir, bundle)
    finally:
        if keep:
            print(f"(kept {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin_args(r: Rig, upstream_port: int | None) -> list[str]:
    """The test addon that sends upstream connections to the fake (None: pinning off)."""
    pin = "" if upstream_port is None else f"127.0.0.1:{upstream_port}"
    return [
        "-s",
        str(PIN_HOSTS_SCRIPT),
        "--set",
        f"pin_upstream={pin}",
        "--set",
        f"ssl_verify_upstream_trusted_ca={r.certs.ca_cert}",
    ]


_PROFILED = (
    "import cProfile, sys\n"
    "from mitmproxy.tools.main import mitmdump\n"
    "profile = cProfile.Profile()\n"
    "profile.enable()\n"
    "try:\n"
    "    mitmdump()\n"
    "finally:\n"
    "    profile.disable()\n"
    "    profile.dump_stats({out!r})\n"
)


def start_quiet_mitmdump(
    args: Sequence[str],
    r: Rig,
    timeout: float = 20.0,
    profile: Path | None = None,
    strategy: str = "lazy",
) -> Proxy:
    """`mitmdump -q` on 127.0.0.1:<a free port>, ready once the port accepts a connection.

    support.proxy.start_mitmdump waits for mitmproxy's "listening at" line, which `-q`
    suppresses, so the port is chosen here and polled. Scripts load before mitmproxy listens.
    With `profile`, mitmdump runs under cProfile and writes its stats there when stopped
    (SIGTERM is a clean exit); cProfile slows Python code about 2x, so read shares, not times.
    `strategy` is mitmproxy's connection_strategy (given once: mitmdump refuses two values).
    """
    port = free_port()
    code = "from mitmproxy.tools.main import mitmdump; mitmdump()"
    if profile is not None:
        code = _PROFILED.format(out=str(profile))
    cmd = [
        sys.executable,
        "-c",
        code,
        "-q",
        "--set",
        f"confdir={r.confdir}",
        "--listen-host",
        "127.0.0.1",
        "-p",
        str(port),
        "--set",
        f"connection_strategy={strategy}",
        *args,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=subprocess_env({"PYTHONUNBUFFERED": "1"}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    proxy = Proxy(proc, _NEVER)
    proxy.port = port
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mitmdump exited ({proc.returncode}):\n{proxy.output()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return proxy
            if time.monotonic() > deadline:
                raise RuntimeError(f"mitmdump not listening after {timeout}s:\n{proxy.output()}")
            time.sleep(0.05)
    except BaseException:
        proxy.stop()
        raise


def client_context(cafile: Path, alpn: Sequence[str]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.set_alpn_protocols(list(alpn))
    return ctx


def tunnel(
    proxy_port: int, ctx: ssl.SSLContext, host: str = API_HOST, timeout: float = 15.0
) -> ssl.SSLSocket:
    """A kept-alive TLS socket to `host:443` through the proxy's CONNECT (the concurrent
    clients' own ALPN in `ctx`); rawclient owns the CONNECT handshake."""
    return rawclient.tunnel(proxy_port, ctx, host, 443, timeout)


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of `pid` (all its threads) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick  # fields 14 and 15 of proc(5)


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid`: statistical (10 ms ticks), exact enough over many requests."""
    return sum(cpu_times(pid))


def percentile(values: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    import mitmproxy.version

    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "mitmproxy": mitmproxy.version.VERSION,
        "platform": platform.platform(),
    }


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, columns right-aligned except the first."""
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        pairs = enumerate(zip(r, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def print_profile(path: Path, limit: int = 25) -> None:
    """The functions with the most cumulative and own time in a cProfile dump."""
    import pstats

    stats = pstats.Stats(str(path))
    stats.sort_stats("cumulative").print_stats(limit)
    stats.sort_stats("tottime").print_stats(limit)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
