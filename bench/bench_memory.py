"""Memory of a forwarding mitmdump per request, by proxy setup: which setups grow, and why.

Run from the repo root: .venv/bin/python bench/bench_memory.py [--requests 1000] [--only a,b]

One mitmdump at a time against the fake TLS upstream of tests/support (in this process).
--workers httpx clients (HTTP/1.1 keep-alive, one connection each, unless the setup says
otherwise) send streamed chat requests (8 SSE events, 5 ms apart) in a closed loop until
--requests are done; then, with every client still connected, tests/support/conn_probe.py
in the proxy reports the upstream connections mitmproxy holds for them and how many of those
are closed (mitmproxy keeps them until the client leaves: replay/mitm/conns.py). Reported
per setup: wall time, resident memory (VmRSS) after the first tenth of the requests and at
the end, the growth per request in between, and the probe's counts.

Setups (SETUPS below): a bare mitmdump as a regular proxy straight to https://127.0.0.1:PORT
(no pinning), the same with connection_strategy=eager, in reverse mode, with the tests'
pinning addon (lazy; eager; a new client connection per request; pin_upstream_reuse), and
the replay addon recording (unpinned, pinned) and replaying streamed hits to HTTP/2
clients (each stream a connection to the chunk server). --addon runs the replay-addon setups
with another checkout's addons/replay.py (A/B). Summary on stdout, details in
bench/results/bench_memory-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common
import httpx
from bench_soak import PROBE_SCRIPT, PROBE_URL, memory, probe
from support.fake_upstream import FakeUpstream
from support.proxy import h2_first_context

KNOBS = {"content-type": "application/json", "x-fake-chunks": "8", "x-fake-gap-ms": "5"}


@dataclass(frozen=True)
class Setup:
    pinned: bool = False
    """URL api.openai.com, upstream connections pinned to the fake (else URL 127.0.0.1:PORT)."""
    reverse: bool = False
    strategy: str = "lazy"
    mode: str | None = None
    """replay_mode of the replay addon; None: no addon."""
    new_connection: bool = False
    """A new client (connection) per request."""
    http2: bool = False
    options: tuple[str, ...] = ()


SETUPS: dict[str, Setup] = {
    "regular": Setup(),
    "regular-eager": Setup(strategy="eager"),
    "reverse": Setup(reverse=True),
    "pinned": Setup(pinned=True),
    "pinned-eager": Setup(pinned=True, strategy="eager"),
    "pinned-new-conn": Setup(pinned=True, new_connection=True),
    "pinned-reuse": Setup(pinned=True, options=("pin_upstream_reuse=true",)),
    "record-regular": Setup(mode="record"),
    "record-pinned": Setup(pinned=True, mode="record"),
    "replay-h2": Setup(mode="replay", http2=True),
}


def body(i: int) -> bytes:
    messages = [{"role": "user", "content": f"memory {i}"}]
    return json.dumps({"model": "gpt-4o-mini", "stream": True, "messages": messages}).encode()


async def drive(
    proxy_url: str | None,
    url: str,
    context: ssl.SSLContext,
    setup: Setup,
    requests: int,
    workers: int,
    prompts: int,
    progress: Callable[[int], None],
    final: Callable[[], Awaitable[None]],
) -> list[str]:
    """Send `requests` in a closed loop; return the errors. `progress(n)` after each answer;
    every client stays connected until `final()` (the last measure and probe) has run."""
    done = 0
    errors: list[str] = []
    finished = asyncio.Event()
    remaining = workers

    def client() -> httpx.AsyncClient:
        return httpx.AsyncClient(proxy=proxy_url, verify=context, http2=setup.http2, timeout=60)

    async def worker() -> None:
        nonlocal done, remaining
        c = client()
        try:
            while done < requests:
                i = done
                done += 1
                try:
                    r = await c.post(url, content=body(i % prompts), headers=KNOBS)
                    if r.status_code != 200:
                        errors.append(f"status {r.status_code}")
                except httpx.HTTPError as e:
                    errors.append(repr(e))
                progress(done)
                if setup.new_connection:
                    await c.aclose()
                    c = client()
            remaining -= 1
            if remaining == 0:
                await final()
                finished.set()
            await finished.wait()
        finally:
            await c.aclose()

    await asyncio.gather(*(worker() for _ in range(workers)))
    return errors


def run_setup(
    name: str, setup: Setup, r: common.Rig, upstream: FakeUpstream, args: argparse.Namespace
) -> dict[str, Any]:
    cmd = ["-s", str(PROBE_SCRIPT)]
    url = f"https://127.0.0.1:{upstream.port}/v1/chat/completions"
    if setup.pinned:
        cmd += common.pin_args(r, upstream.port)
        url = common.CHAT_URL
    else:
        cmd += ["--set", f"ssl_verify_upstream_trusted_ca={r.certs.ca_cert}"]
    if setup.reverse:
        cmd += ["--mode", f"reverse:https://127.0.0.1:{upstream.port}"]
    store = r.root / f"store-{name}"
    prompts = 200
    if setup.mode is not None:
        addon = ["-s", str(args.addon.resolve()), "--set", f"replay_dir={store}"]
        if setup.mode == "replay":  # 20 streamed answers to replay, recorded first
            prompts = 20
            seed = common.start_quiet_mitmdump([*cmd, *addon, "--set", "replay_mode=record"], r)
            try:
                verify = ssl.create_default_context(cafile=str(r.bundle))
                with httpx.Client(proxy=seed.url, verify=verify, timeout=30) as c:
                    for i in range(prompts):
                        c.post(url, content=body(i), headers=KNOBS)
            finally:
                seed.stop()
        cmd += [*addon, "--set", f"replay_mode={setup.mode}"]
    for option in setup.options:
        cmd += ["--set", option]
    proxy = common.start_quiet_mitmdump(cmd, r, strategy=setup.strategy)
    proxy_url: str | None = proxy.url
    if setup.reverse:
        url, proxy_url = f"https://127.0.0.1:{proxy.port}/v1/chat/completions", None
    context = (
        h2_first_context(r.bundle)
        if setup.http2
        else ssl.create_default_context(cafile=str(r.bundle))
    )
    warm_at = max(1, args.requests // 10)
    marks: dict[str, Any] = {}

    def progress(done: int) -> None:
        if done == warm_at:
            marks["warm"] = memory(proxy.pid)["VmRSS"]
            marks["t_warm"] = time.monotonic()

    async def final() -> None:
        marks["end"] = memory(proxy.pid)["VmRSS"]
        marks["t_end"] = time.monotonic()
        # the probe goes through the proxy itself, so never in reverse mode
        marks["held"] = None if setup.reverse else await probe(proxy)

    try:
        errors = asyncio.run(
            drive(
                proxy_url,
                url,
                context,
                setup,
                args.requests,
                args.workers,
                prompts,
                progress,
                final,
            )
        )
    finally:
        code = proxy.stop()
    held = marks.get("held") or {}
    growth = (marks["end"] - marks["warm"]) / (args.requests - warm_at)
    return {
        "setup": name,
        "requests": args.requests,
        "errors": len(errors),
        "first_errors": errors[:5],
        "seconds": round(marks["t_end"] - marks["t_warm"], 1),
        "rss_warm_kib": marks["warm"],
        "rss_end_kib": marks["end"],
        "kib_per_request": round(growth, 1),
        "held": held.get("held"),
        "closed": held.get("closed"),
        "exit": code,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--only", default=",".join(SETUPS), help="comma list of setups")
    parser.add_argument(
        "--addon",
        type=Path,
        default=common.ADDON_SCRIPT,
        help="the addons/replay.py of the replay-addon setups (A/B runs of a change)",
    )
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETUPS]
    if unknown:
        parser.error(f"unknown setups {unknown}; known: {', '.join(SETUPS)}")
    results = []
    with common.rig(args.keep) as r:
        for name in names:
            with FakeUpstream(r.certs) as upstream:
                results.append(run_setup(name, SETUPS[name], r, upstream, args))
            row = results[-1]
            print(
                f"{name}: {row['kib_per_request']} KiB/request, "
                f"{row['rss_warm_kib'] / 1024:.1f} -> {row['rss_end_kib'] / 1024:.1f} MiB",
                flush=True,
            )
    print(f"{args.requests} requests, {args.workers} clients (RSS in MiB, after the first tenth)")
    headers = ["setup", "errors", "s", "rss warm", "rss end", "KiB/req", "held", "closed", "exit"]
    rows = [
        [
            x["setup"],
            x["errors"],
            x["seconds"],
            f"{x['rss_warm_kib'] / 1024:.1f}",
            f"{x['rss_end_kib'] / 1024:.1f}",
            x["kib_per_request"],
            "-" if x["held"] is None else x["held"],
            "-" if x["closed"] is None else x["closed"],
            x["exit"],
        ]
        for x in results
    ]
    print(common.table(headers, rows))
    path = common.write_results(
        "bench_memory",
        {
            "requests": args.requests,
            "workers": args.workers,
            "addon": str(args.addon),
            "probe_url": PROBE_URL,
            "results": results,
            "machine": common.machine(),
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
