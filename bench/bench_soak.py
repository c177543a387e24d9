"""Soak: streamed replays and recordings for minutes on end; is memory flat, is nothing lost?

Run from the repo root: .venv/bin/python bench/bench_soak.py [--minutes 10] [--workers 50]

Two quiet mitmdumps with the replay addon run side by side against the fake TLS upstream of
tests/support: one replays (`replay_mode=replay`, recorded timing, speed 1) a store of 20
streamed OpenAI answers recorded at the start, the other records (`replay_mode=record`)
everything it is sent into a second store. --workers asyncio clients (httpx, HTTP/1.1
keep-alive, half on each proxy) send streamed chat requests in a closed loop for --minutes;
the recorders cycle through 200 prompts, so the recording store grows by one file a request
(an occurrence each time a prompt comes back).

Reported: requests completed per proxy, errors (any status but 200, a wrong `x-replay`, an
exception), and each mitmdump's resident memory (VmRSS from /proc) after a 30 s warm-up and
at the end, with the peak (VmHWM) and the growth per request after the warm-up, plus the
files the recording store holds after a clean stop against the answers marked `recorded`.
Summary on stdout, details in bench/results/bench_soak-<UTC time>.json.

--baseline PATH adds a second recorder running another checkout's addons/replay.py (an A/B
run of a change, side by side on the same machine and upstream): the recording workers are
shared between the two. --probe loads tests/support/conn_probe.py into every mitmdump and
asks it, every 10 s, how many closed upstream connections mitmproxy still holds for
connected clients (replay/mitm/conns.py; the pinning addon makes the recorders open one
upstream connection per request, docs/performance.md). --reuse-upstream lets the recorders reuse
their pinned upstream connections as they would a real provider's
(`pin_upstream_reuse=true`): without it each recorded request costs a TLS handshake, and
mitmproxy's 5 connections per client connection and server address, each kept open by the
fake upstream for 5 s, hold a recording worker to about one request a second (and three of
the 20 seeding requests wait about 4 s for a slot, which the replayed store then keeps as
their time to first byte; with --reuse-upstream the seeding proxy reuses too).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import _common as common
import httpx
from support.fake_upstream import FakeUpstream

PROBE_SCRIPT = common.REPO_ROOT / "tests" / "support" / "conn_probe.py"
PROBE_URL = "http://conn-probe.test/"

CHAT = common.CHAT_URL
STREAM_HEADERS = {"content-type": "application/json", "x-fake-chunks": "8", "x-fake-gap-ms": "20"}


def body(text: str) -> bytes:
    return json.dumps(
        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": text}]}
    ).encode()


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid`, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


async def worker(
    proxy: common.Proxy,
    bundle: Path,
    prompts: list[bytes],
    expect: str,
    until: float,
    tally: dict[str, Any],
) -> None:
    async with httpx.AsyncClient(proxy=proxy.url, verify=str(bundle), timeout=60) as client:
        i = 0
        while time.monotonic() < until:
            prompt = prompts[i % len(prompts)]
            i += 1
            try:
                async with client.stream("POST", CHAT, content=prompt, headers=STREAM_HEADERS) as r:
                    data = b"".join([piece async for piece in r.aiter_raw()])
                if r.status_code != 200 or r.headers.get("x-replay") != expect:
                    tally["errors"].append(f"{r.status_code} {r.headers.get('x-replay')}")
                elif not data.endswith(b"data: [DONE]\n\n"):
                    tally["errors"].append("a stream without its end")
                else:
                    tally["ok"] += 1
            except Exception as e:
                tally["errors"].append(repr(e))


async def probe(proxy: common.Proxy) -> dict[str, int] | None:
    """What tests/support/conn_probe.py in `proxy` says mitmproxy holds (None: no answer)."""
    try:
        async with httpx.AsyncClient(proxy=proxy.url, timeout=10) as client:
            r = await client.get(PROBE_URL)
        held: dict[str, int] = r.json()
        return held
    except (httpx.HTTPError, ValueError):
        return None


async def soak(
    proxies: dict[str, common.Proxy],
    bundle: Path,
    workers: int,
    seconds: float,
    probing: bool = False,
) -> dict[str, Any]:
    """Even workers replay through proxies["replay"]; odd ones record, taking the other
    proxies (the recorders) in turn."""
    replayed = [body(f"soak replay {i}") for i in range(20)]
    recorded = [body(f"soak record {i}") for i in range(200)]
    tallies: dict[str, dict[str, Any]] = {name: {"ok": 0, "errors": []} for name in proxies}
    recorders = [name for name in proxies if name != "replay"]
    until = time.monotonic() + seconds
    tasks = [
        worker(
            proxies["replay"], bundle, replayed[i:] + replayed[:i], "hit", until, tallies["replay"]
        )
        if i % 2 == 0
        else worker(
            proxies[name := recorders[(i // 2) % len(recorders)]],
            bundle,
            recorded[i:] + recorded[:i],
            "recorded",
            until,
            tallies[name],
        )
        for i in range(workers)
    ]
    samples: list[dict[str, Any]] = []

    async def sample() -> None:
        start = time.monotonic()
        while time.monotonic() < until:
            await asyncio.sleep(10)
            entry: dict[str, Any] = {"t": round(time.monotonic() - start, 1)}
            entry |= {name: memory(proxy.pid) for name, proxy in proxies.items()}
            entry["ok"] = {k: v["ok"] for k, v in tallies.items()}
            if probing:
                found = await asyncio.gather(*(probe(p) for p in proxies.values()))
                entry["held"] = dict(zip(proxies, found, strict=True))
            samples.append(entry)

    await asyncio.gather(sample(), *tasks)
    return {"tallies": tallies, "samples": samples}


def recorder_args(r: common.Rig, port: int, addon: Path, store: Path) -> list[str]:
    return [
        *common.pin_args(r, port),
        "-s",
        str(addon),
        "--set",
        "replay_mode=record",
        "--set",
        f"replay_dir={store}",
    ]


def stored(store: Path) -> int:
    return sum(1 for p in store.rglob("*.zst") if not p.name.startswith("."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout's addons/replay.py: a second recorder runs it (A/B)",
    )
    parser.add_argument(
        "--reuse-upstream",
        action="store_true",
        help="recorders reuse pinned upstream connections (pin_upstream_reuse=true)",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="every 10 s, ask each mitmdump how many closed upstream connections it holds",
    )
    args = parser.parse_args()
    seconds = args.minutes * 60
    extra = ["-s", str(PROBE_SCRIPT)] if args.probe else []
    reuse = ["--set", "pin_upstream_reuse=true"] if args.reuse_upstream else []
    with common.rig(args.keep) as r, FakeUpstream(r.certs) as upstream:
        replay_store = r.root / "replayed"
        stores = {"record": r.root / "recorded"}
        addons = {"record": common.ADDON_SCRIPT}
        if args.baseline is not None:
            stores["record (baseline)"] = r.root / "recorded-baseline"
            addons["record (baseline)"] = args.baseline.resolve()
        seed = common.start_quiet_mitmdump(
            [*recorder_args(r, upstream.port, common.ADDON_SCRIPT, replay_store), *reuse], r
        )
        try:
            with httpx.Client(proxy=seed.url, verify=str(r.bundle), timeout=30) as client:
                for i in range(20):
                    client.post(CHAT, content=body(f"soak replay {i}"), headers=STREAM_HEADERS)
        finally:
            seed.stop()
        proxies: dict[str, common.Proxy] = {}
        try:
            proxies["replay"] = common.start_quiet_mitmdump(
                [
                    *common.pin_args(r, None),
                    *extra,
                    "-s",
                    str(common.ADDON_SCRIPT),
                    "--set",
                    f"replay_dir={replay_store}",
                ],
                r,
            )
            for name, store in stores.items():
                proxies[name] = common.start_quiet_mitmdump(
                    [*extra, *recorder_args(r, upstream.port, addons[name], store), *reuse], r
                )
            result = asyncio.run(soak(proxies, r.bundle, args.workers, seconds, args.probe))
        finally:
            end = {name: memory(proxy.pid) for name, proxy in proxies.items()}
            codes = {name: proxy.stop() for name, proxy in proxies.items()}
        files = {name: stored(store) for name, store in stores.items()}
    samples = result["samples"]
    warm = next((s for s in samples if s["t"] >= 30), samples[0] if samples else None)
    rows = []
    for name in proxies:
        tally = result["tallies"][name]
        start_kib = warm[name]["VmRSS"] if warm else 0
        after_warm = tally["ok"] - (warm["ok"][name] if warm else 0)
        growth = (end[name]["VmRSS"] - start_kib) / after_warm if after_warm > 0 else math.nan
        row = [
            name,
            tally["ok"],
            len(tally["errors"]),
            f"{start_kib / 1024:.1f}",
            f"{end[name]['VmRSS'] / 1024:.1f}",
            f"{end[name]['VmHWM'] / 1024:.1f}",
            f"{growth:.1f}",
            codes[name],
        ]
        if args.probe:
            held = [(s.get("held") or {}).get(name) or {} for s in samples]
            row.append(max((h.get("closed", 0) for h in held), default=0))
        rows.append(row)
    print(f"{args.workers} workers for {args.minutes:g} min (memory in MiB; start = after 30 s)")
    headers = ["proxy", "requests", "errors", "rss start", "rss end", "peak", "KiB/req", "exit"]
    if args.probe:
        headers.append("closed conns held (max)")
    print(common.table(headers, rows))
    for name, count in files.items():
        recorded_ok = result["tallies"][name]["ok"]
        print(f"{name} store after a clean stop: {count} files for {recorded_ok} answers recorded")
    errors = {k: v["errors"][:20] for k, v in result["tallies"].items()}
    path = common.write_results(
        "bench_soak",
        {
            "minutes": args.minutes,
            "workers": args.workers,
            "baseline": str(args.baseline) if args.baseline else None,
            "probe": args.probe,
            "reuse_upstream": args.reuse_upstream,
            "headers": headers,
            "rows": rows,
            "files": files,
            "errors": errors,
            "samples": samples,
            "machine": common.machine(),
        },
    )
    print(f"results: {path}")


if __name__ == "__main__":
    main()
