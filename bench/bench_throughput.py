"""Throughput of non-streamed hits: the replay addon against mitmproxy's own --server-replay.

Run from the repo root: .venv/bin/python bench/bench_throughput.py [--quick] [--rounds N]

One 85-byte JSON POST to https://api.openai.com/v1/chat/completions is recorded twice from the
fake TLS upstream of tests/support (same answer both times): once by the replay addon
(replay_mode=record) into a store, once by plain `mitmdump -w flows.mitm`. Then two proxies
serve it with the upstream stopped, both `mitmdump -q` with connection_strategy=lazy:

    ours:          -s addons/replay.py --set replay_mode=replay --set replay_speed=0
                   (no replay_report)
    server replay: --server-replay flows.mitm --set server_replay_reuse=true
                   --set server_replay_refresh=false

The load is a closed loop of --workers kept-alive HTTP/1.1 connections through CONNECT + TLS,
one request in flight on each: by default a raw client (one thread, a selector, no HTTP
library) so that the proxy, not the client, is the bottleneck on 2 cores; `--client httpx` uses
httpx.AsyncClient instead (as in shared/MITMPROXY.md section 8). The two proxies take turns,
A B B A ..., each round on fresh connections: --warmup seconds unmeasured, then --seconds
measured. Reported per side: the median over rounds of req/s (200 answers only), latency, and
mitmdump CPU per request from /proc/PID/stat; and the ratio of the medians (ours / server
replay; the target is >= 1.0). Summary on stdout, details in
bench/results/bench_throughput-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common
import httpx
from _clients import LoadResult, h1_request, run_closed_loop, run_h1_concurrent
from support.fake_upstream import FakeUpstream
from support.proxy import Proxy

PATH = "/v1/chat/completions"
BODY = json.dumps(
    {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say hi to the bench"}]},
    separators=(",", ":"),
).encode()
HEADERS = {
    "content-type": "application/json",
    "authorization": "Bearer sk-bench-0000000000000000000000",
    "accept": "application/json",
}


@dataclass
class Side:
    name: str
    proxy: Proxy
    rounds: list[dict[str, Any]]


# --- recording ---------------------------------------------------------------------------


def _one_request(proxy: Proxy, r: common.Rig) -> dict[str, str]:
    """One kept-alive POST (a `Connection: close` request would be recorded as such)."""
    sock = common.tunnel(proxy.port, common.client_context(r.bundle, ["http/1.1"]))
    try:
        [t] = run_h1_concurrent([sock], h1_request(BODY, HEADERS, common.API_HOST, PATH))
    finally:
        sock.close()
    if t.status != 200 or not t.done:
        raise RuntimeError(f"request through {proxy.port} failed: {t}")
    headers: dict[str, str] = t.headers
    return headers


def record(r: common.Rig, store: Path, flows: Path) -> None:
    upstream = FakeUpstream(r.certs).start()
    try:
        for args in (
            [
                "-s",
                str(common.ADDON_SCRIPT),
                "--set",
                "replay_mode=record",
                "--set",
                f"replay_dir={store}",
            ],
            ["-w", str(flows)],
        ):
            upstream.clear()  # both recordings get the same answer ("#0")
            proxy = common.start_quiet_mitmdump([*common.pin_args(r, upstream.port), *args], r)
            try:
                _one_request(proxy, r)
            finally:
                code = proxy.stop()
            if code != 0:
                raise RuntimeError(f"recording mitmdump exited {code}:\n{proxy.output()}")
    finally:
        upstream.stop()
    if not flows.stat().st_size or not list(store.rglob("*.zst")):
        raise RuntimeError("a recording is missing")


# --- load --------------------------------------------------------------------------------


def load_raw(
    proxy: Proxy,
    r: common.Rig,
    workers: int,
    warmup: float,
    seconds: float,
    probe: Callable[[], float],
) -> LoadResult:
    ctx = common.client_context(r.bundle, ["http/1.1"])
    socks = []
    try:
        for _ in range(workers):
            socks.append(common.tunnel(proxy.port, ctx))
        request = h1_request(BODY, HEADERS, common.API_HOST, PATH)
        return run_closed_loop(socks, request, warmup, seconds, probe)
    finally:
        for s in socks:
            s.close()


def load_httpx(
    proxy: Proxy,
    r: common.Rig,
    workers: int,
    warmup: float,
    seconds: float,
    probe: Callable[[], float],
) -> LoadResult:
    async def main() -> LoadResult:
        ctx = common.client_context(r.bundle, ["http/1.1"])
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        result = LoadResult(0, 0, seconds, [], [])
        async with httpx.AsyncClient(
            proxy=proxy.url, verify=ctx, limits=limits, trust_env=False, timeout=30
        ) as client:
            start = time.perf_counter()
            t_from, t_to = start + warmup, start + warmup + seconds

            async def worker() -> None:
                while (t := time.perf_counter()) < t_to:
                    try:
                        resp = await client.post(common.CHAT_URL, content=BODY, headers=HEADERS)
                    except httpx.HTTPError as e:
                        result.errors.append(repr(e))
                        return
                    now = time.perf_counter()
                    if t_from <= now < t_to:
                        if resp.status_code == 200:
                            result.ok += 1
                            result.latencies.append(now - t)
                        else:
                            result.other += 1

            async def sample() -> None:
                for mark in (t_from, t_to):
                    await asyncio.sleep(max(mark - time.perf_counter(), 0))
                    result.probes.append(probe())

            await asyncio.gather(sample(), *(worker() for _ in range(workers)))
        return result

    return asyncio.run(main())


def measure(side: Side, r: common.Rig, args: argparse.Namespace) -> dict[str, Any]:
    load = load_httpx if args.client == "httpx" else load_raw
    pid = side.proxy.pid

    def probe() -> float:
        seconds: float = common.cpu_seconds(pid)
        return seconds

    own_before, t0 = time.process_time(), time.perf_counter()
    res = load(side.proxy, r, args.workers, args.warmup, args.seconds, probe)
    own, wall = time.process_time() - own_before, time.perf_counter() - t0
    cpu = res.probes[1] - res.probes[0] if len(res.probes) == 2 else float("nan")
    lat = sorted(res.latencies)
    rps = res.ok / res.seconds
    return {
        "rps": rps,
        "ok": res.ok,
        "non_200": res.other,
        "errors": res.errors[:5],
        "latency_p50_ms": common.percentile(lat, 50) * 1000,
        "latency_p99_ms": common.percentile(lat, 99) * 1000,
        "mitm_cpu_share": cpu / args.seconds,
        "mitm_cpu_ms_per_req": cpu * 1000 / res.ok if res.ok else float("nan"),
        "client_cpu_share": own / wall,
    }


def summarise(side: Side) -> dict[str, Any]:
    def med(name: str) -> float:
        return float(statistics.median(r[name] for r in side.rounds))

    return {
        "rps_median": med("rps"),
        "rps_min": min(r["rps"] for r in side.rounds),
        "rps_max": max(r["rps"] for r in side.rounds),
        "latency_p50_ms": med("latency_p50_ms"),
        "latency_p99_ms": med("latency_p99_ms"),
        "mitm_cpu_ms_per_req": med("mitm_cpu_ms_per_req"),
        "mitm_cpu_share": med("mitm_cpu_share"),
        "client_cpu_share": med("client_cpu_share"),
        "non_200": sum(r["non_200"] for r in side.rounds),
        "errors": [e for r in side.rounds for e in r["errors"]][:5],
        "rounds": side.rounds,
    }


def check_same_answer(sides: Sequence[Side], r: common.Rig) -> dict[str, dict[str, str]]:
    heads = {}
    for side in sides:
        heads[side.name] = _one_request(side.proxy, r)
    ours = heads["ours"]
    if ours.get("x-replay") != "hit":
        raise RuntimeError(f"our proxy did not answer from the store: {ours}")
    return heads


# --- main --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per side (alternating)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per round")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per round")
    parser.add_argument("--workers", type=int, default=8, help="kept-alive connections")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 s (+1 s warm-up)")
    parser.add_argument(
        "--addon",
        type=Path,
        default=common.ADDON_SCRIPT,
        help="the addons/replay.py to serve with (A/B runs of a change)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run both proxies under cProfile (slows them: read shares only)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.seconds, args.warmup = 2, 3.0, 1.0
    if not 1 <= args.rounds <= 100 or not 0.5 <= args.seconds <= 600:
        parser.error("--rounds must be 1..100 and --seconds 0.5..600")
    if not 0 <= args.warmup <= 60 or not 1 <= args.workers <= 256:
        parser.error("--warmup must be 0..60 and --workers 1..256")

    results: dict[str, Any] = {
        "bench": "bench_throughput",
        "machine": common.machine(),
        "config": {**vars(args), "body_bytes": len(BODY)},
    }
    sides: list[Side] = []
    profiles: dict[str, Path] = {}
    with common.rig(keep=args.keep) as r:
        store, flows = r.root / "store", r.root / "flows.mitm"
        record(r, store, flows)
        try:
            for name, proxy_args in (
                (
                    "ours",
                    [
                        "-s",
                        str(args.addon.resolve()),
                        "--set",
                        "replay_mode=replay",
                        "--set",
                        f"replay_dir={store}",
                        "--set",
                        "replay_speed=0",
                    ],
                ),
                (
                    "server_replay",
                    [
                        "--server-replay",
                        str(flows),
                        "--set",
                        "server_replay_reuse=true",
                        "--set",
                        "server_replay_refresh=false",
                    ],
                ),
            ):
                profile = r.root / f"{name}.pstats" if args.profile else None
                if profile is not None:
                    profiles[name] = profile
                proxy = common.start_quiet_mitmdump(proxy_args, r, profile=profile)
                sides.append(Side(name, proxy, []))
            results["heads"] = check_same_answer(sides, r)
            for i in range(args.rounds):
                order = sides if i % 2 == 0 else sides[::-1]
                for side in order:
                    print(
                        f"round {i + 1}/{args.rounds}: {side.name} ...", file=sys.stderr, flush=True
                    )
                    side.rounds.append(measure(side, r, args))
        finally:
            for side in sides:
                code = side.proxy.stop()
                if code != 0:
                    print(
                        f"{side.name} mitmdump exited {code}:\n{side.proxy.output()}",
                        file=sys.stderr,
                    )
        for name, path in profiles.items():
            if path.exists():
                common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
                kept = common.RESULTS_DIR / f"bench_throughput-{name}-{os.getpid()}.pstats"
                path.replace(kept)
                print(f"\n===== profile of {name}: {kept.relative_to(common.REPO_ROOT)}")
                common.print_profile(kept, 20)

    summary = {side.name: summarise(side) for side in sides}
    ratio = summary["ours"]["rps_median"] / summary["server_replay"]["rps_median"]
    per_round = [
        o["rps"] / s["rps"]
        for o, s in zip(summary["ours"]["rounds"], summary["server_replay"]["rounds"], strict=True)
    ]
    results["sides"] = summary
    results["ratio_of_medians"] = ratio
    results["ratio_per_round"] = per_round

    print()
    print(
        f"non-streamed hits, {len(BODY)}-byte JSON POST, {args.workers} kept-alive HTTP/1.1 "
        f"connections ({args.client} client), {args.rounds} rounds x {args.seconds:g} s "
        f"(+{args.warmup:g} s warm-up), alternating; medians over rounds"
    )
    rows = []
    for side in sides:
        s = summary[side.name]
        rows.append(
            [
                side.name,
                s["rps_median"],
                f"{s['rps_min']:.0f}..{s['rps_max']:.0f}",
                s["latency_p50_ms"],
                s["latency_p99_ms"],
                s["mitm_cpu_ms_per_req"],
                f"{s['mitm_cpu_share'] * 100:.0f}%",
                f"{s['client_cpu_share'] * 100:.0f}%",
                s["non_200"],
            ]
        )
    print(
        common.table(
            [
                "server",
                "req/s",
                "range",
                "p50 ms",
                "p99 ms",
                "mitm cpu ms/req",
                "mitm cpu",
                "client cpu",
                "non-200",
            ],
            rows,
        )
    )
    verdict = "met" if ratio >= 1.0 else "MISSED"
    print(
        f"\nratio ours / server replay = {ratio:.3f} (per round: "
        f"{', '.join(f'{x:.2f}' for x in per_round)}); target >= 1.0: {verdict}"
    )
    if args.profile:
        print("(profiled run: both proxies ran under cProfile, throughput is not comparable)")
    for side in sides:
        if summary[side.name]["errors"]:
            print(f"  {side.name} errors: {summary[side.name]['errors']}")
    path = common.write_results("bench_throughput", results)
    print(f"\nresults: {path.relative_to(common.REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
