"""Gap error of replayed streams: does each chunk reach the client when the recording says?

Run from the repo root: .venv/bin/python bench/bench_replay.py [--quick] [--rounds N]

Records one OpenAI chat stream (--chunks content pieces, so about 30 SSE events, --gap-ms
apart) through mitmdump + the replay addon (replay_mode=record) from the fake TLS upstream of
tests/support, stops the upstream, and replays it at replay_speed=1 through a fresh
`mitmdump -q`. For every replayed response the client notes when the head and each chunk
arrive (seconds after writing the request), and compares with the cassette file itself
(replay.codec.decode of the stored .zst):

    gap error_i  = (arrival_i - arrival_{i-1}) - (offset_i - offset_{i-1})   for i > 0
    TTFB error   = client's time to the response head - recorded ttfb
    span error   = (arrival_last - arrival_0) - (offset_last - offset_0)

Scenarios: (a) one HTTP/1.1 stream at a time (tests/support/rawclient.py, a new TLS
connection per round); (b) one HTTP/2 stream with httpx (h2 preferred in ALPN, iter_raw);
(b2) the same with a raw `h2` client (separates httpx's own overhead); (c) N concurrent
HTTP/1.1 streams, one kept-alive connection each, read by one thread through a selector;
(d) N concurrent HTTP/2 streams on one connection (raw `h2`). Targets (the issue): one
stream p50 <= 1 ms and p99 <= 5 ms of |gap error|; N=50 HTTP/1.1 p99 <= 15 ms.

The client runs on the same 2 cores as mitmdump: what is measured is proxy + client + OS
scheduling, an upper bound on the proxy's own error. A summary table goes to stdout, the full
figures to bench/results/bench_replay-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common as common
import httpx
from _clients import H2Client, StreamTiming, h1_request, run_h1_concurrent
from support.fake_upstream import FakeUpstream
from support.proxy import Proxy, h2_first_context
from support.rawclient import fetch

from replay import codec

TARGETS = {
    "a": {"p50": 1.0, "p99": 5.0},
    "b": {"p50": 1.0, "p99": 5.0},
    "b2": {"p50": 1.0, "p99": 5.0},
    "c": {"p99": 15.0},
}


@dataclass(frozen=True)
class Recorded:
    path: Path
    ttfb: float
    offsets: tuple[float, ...]
    sizes: tuple[int, ...]


def body_and_headers(chunks: int, gap_ms: float) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": "pace me please"}],
        }
    ).encode()
    headers = {
        "content-type": "application/json",
        "authorization": "Bearer sk-bench-0000000000000000000000",
        "x-fake-chunks": str(chunks),
        "x-fake-gap-ms": f"{gap_ms:g}",
    }
    return body, headers


# --- record ------------------------------------------------------------------------------


def record(r: common.Rig, store: Path, body: bytes, headers: dict[str, str]) -> Recorded:
    upstream = FakeUpstream(r.certs).start()
    proxy: Proxy | None = None
    try:
        proxy = common.start_quiet_mitmdump(
            [
                *common.pin_args(r, upstream.port),
                "-s",
                str(common.ADDON_SCRIPT),
                "--set",
                "replay_mode=record",
                "--set",
                f"replay_dir={store}",
            ],
            r,
        )
        # A kept-alive request: with `Connection: close` (rawclient.fetch) the upstream's
        # `Connection: close` would be recorded and replayed, closing every client connection.
        sock = common.tunnel(proxy.port, common.client_context(r.bundle, ["http/1.1"]))
        try:
            request = h1_request(body, headers, common.API_HOST, "/v1/chat/completions")
            [resp] = run_h1_concurrent([sock], request)
        finally:
            sock.close()
        if resp.status != 200 or resp.headers.get("x-replay") != "recorded" or not resp.done:
            raise RuntimeError(f"recording failed: {resp}")
        code = proxy.stop()
        if code != 0:
            raise RuntimeError(f"record proxy exited {code}:\n{proxy.output()}")
    finally:
        if proxy is not None:
            proxy.stop()
        upstream.stop()
    files = [p for p in store.rglob("*.zst") if not p.name.startswith(".")]
    if len(files) != 1:
        raise RuntimeError(f"expected one cassette file, found {files}")
    interaction = codec.decode(files[0].read_bytes(), str(files[0]))
    return Recorded(
        path=files[0],
        ttfb=interaction.ttfb,
        offsets=tuple(c.offset for c in interaction.chunks),
        sizes=tuple(len(c.data) for c in interaction.chunks),
    )


# --- scenarios ---------------------------------------------------------------------------


@dataclass
class Context:
    r: common.Rig
    proxy: Proxy
    body: bytes
    headers: dict[str, str]
    streams: int
    stagger: float


Rounds = list[list[StreamTiming]]


def h1_single(cx: Context, rounds: int, warm: int) -> Rounds:
    out: Rounds = []
    for i in range(warm + rounds):
        resp = fetch(
            common.CHAT_URL,
            proxy_port=cx.proxy.port,
            cafile=cx.r.bundle,
            headers=cx.headers,
            body=cx.body,
        )
        t = StreamTiming(
            0.0,
            resp.status,
            resp.t_headers,
            list(resp.times),
            [len(c) for c in resp.chunks],
            done=True,
        )
        if i >= warm:
            out.append([t])
        time.sleep(0.05)
    return out


def h2_httpx(cx: Context, rounds: int, warm: int) -> Rounds:
    out: Rounds = []
    context = h2_first_context(cx.r.bundle)
    with httpx.Client(
        proxy=cx.proxy.url, verify=context, http2=True, trust_env=False, timeout=30
    ) as client:
        for i in range(warm + rounds):
            t0 = time.perf_counter()
            with client.stream(
                "POST", common.CHAT_URL, content=cx.body, headers=cx.headers
            ) as resp:
                t = StreamTiming(t0, resp.status_code, time.perf_counter() - t0)
                if resp.http_version != "HTTP/2":
                    t.error = f"got {resp.http_version}"
                for chunk in resp.iter_raw():
                    t.times.append(time.perf_counter() - t0)
                    t.sizes.append(len(chunk))
                t.done = True
            if i >= warm:
                out.append([t])
            time.sleep(0.05)
    return out


def h2_raw(cx: Context, rounds: int, warm: int, streams: int) -> Rounds:
    out: Rounds = []
    sock = common.tunnel(cx.proxy.port, common.client_context(cx.r.bundle, ["h2"]))
    client = H2Client(sock)
    headers = {k.lower(): v for k, v in cx.headers.items()}
    try:
        for i in range(warm + rounds):
            timings = client.run(
                streams,
                common.API_HOST,
                "/v1/chat/completions",
                headers,
                cx.body,
                stagger=cx.stagger,
            )
            if i >= warm:
                out.append(timings)
            time.sleep(0.1)
    finally:
        client.close()
    return out


def h1_concurrent(cx: Context, rounds: int, warm: int) -> Rounds:
    out: Rounds = []
    ctx = common.client_context(cx.r.bundle, ["http/1.1"])
    socks = []
    try:
        for _ in range(cx.streams):  # handshakes first, outside any measured round
            socks.append(common.tunnel(cx.proxy.port, ctx))
        request = h1_request(cx.body, cx.headers, common.API_HOST, "/v1/chat/completions")
        for i in range(warm + rounds):
            timings = run_h1_concurrent(socks, request, stagger=cx.stagger)
            if i >= warm:
                out.append(timings)
            time.sleep(0.1)
    finally:
        for s in socks:
            s.close()
    return out


# --- analysis ----------------------------------------------------------------------------


def analyse(rounds: Rounds, rec: Recorded) -> dict[str, Any]:
    n = len(rec.offsets)
    gaps: list[float] = []
    ttfbs: list[float] = []
    spans: list[float] = []
    firsts: list[float] = []
    round_p99: list[float] = []
    bad: dict[str, int] = {}
    counts: list[int] = []
    streams = 0
    for timings in rounds:
        round_gaps: list[float] = []
        for t in timings:
            streams += 1
            counts.append(len(t.times))
            why = (
                t.error
                or ("incomplete" if not t.done else None)
                or (f"status {t.status}" if t.status != 200 else None)
                or (f"{len(t.times)} chunks, recorded {n}" if len(t.times) != n else None)
            )
            if why:
                bad[why] = bad.get(why, 0) + 1
                continue
            for i in range(1, n):
                err = (t.times[i] - t.times[i - 1]) - (rec.offsets[i] - rec.offsets[i - 1])
                round_gaps.append(err * 1000)
            ttfbs.append((t.t_headers - rec.ttfb) * 1000)
            firsts.append(((t.times[0] - t.t_headers) - rec.offsets[0]) * 1000)
            spans.append(((t.times[-1] - t.times[0]) - (rec.offsets[-1] - rec.offsets[0])) * 1000)
        gaps += round_gaps
        if round_gaps:
            round_p99.append(common.percentile([abs(g) for g in round_gaps], 99))
    absg = [abs(g) for g in gaps]
    return {
        "streams": streams,
        "streams_ok": streams - sum(bad.values()),
        "bad": bad,
        "chunk_counts_seen": sorted(set(counts)),
        "gaps": len(gaps),
        "gap_abs_p50_ms": common.percentile(absg, 50),
        "gap_abs_p90_ms": common.percentile(absg, 90),
        "gap_abs_p99_ms": common.percentile(absg, 99),
        "gap_abs_max_ms": max(absg, default=math.nan),
        "gap_signed_mean_ms": statistics.fmean(gaps) if gaps else math.nan,
        "gap_abs_p99_per_round_ms": round_p99,
        "ttfb_err_p50_ms": common.percentile(ttfbs, 50),
        "ttfb_err_p99_ms": common.percentile(ttfbs, 99),
        "ttfb_err_max_ms": max(ttfbs, default=math.nan),
        "chunk0_err_p50_ms": common.percentile(firsts, 50),
        "span_err_p50_ms": common.percentile(spans, 50),
        "span_err_p99_ms": common.percentile(spans, 99),
    }


def verdict(key: str, stats: dict[str, Any]) -> str:
    target = TARGETS.get(key)
    if not target:
        return "(no target)"
    if stats["streams_ok"] != stats["streams"]:
        return "FAIL: bad streams"
    parts = []
    ok = True
    for name, limit in target.items():
        value = stats[f"gap_abs_{name}_ms"]
        ok &= value <= limit
        parts.append(f"{name}<={limit:g}")
    return ("met" if ok else "MISSED") + " (" + ", ".join(parts) + ")"


# --- main --------------------------------------------------------------------------------


SCENARIOS = ("a", "b", "b2", "c", "d")
TITLES = {
    "a": "(a) HTTP/1.1, 1 stream, raw client",
    "b": "(b) HTTP/2, 1 stream, httpx iter_raw",
    "b2": "(b2) HTTP/2, 1 stream, raw h2 client",
    "c": "(c) HTTP/1.1, {n} concurrent, selector",
    "d": "(d) HTTP/2, {n} streams on 1 conn, raw h2",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="single-stream rounds (a, b, b2)")
    parser.add_argument("--concurrent-rounds", type=int, default=5, help="rounds of (c), (d)")
    parser.add_argument("--streams", type=int, default=50, help="concurrent streams (c, d)")
    parser.add_argument(
        "--chunks", type=int, default=27, help="content pieces (the stream has 3 more events)"
    )
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument(
        "--stagger-ms",
        type=float,
        default=0.0,
        help="spread the concurrent requests over this time (0: all at once)",
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma list of scenarios among {','.join(SCENARIOS)}",
    )
    parser.add_argument("--warmup", type=int, default=2, help="discarded rounds per scenario")
    parser.add_argument("--quick", action="store_true", help="5 rounds, 2 concurrent rounds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--addon",
        type=Path,
        default=common.ADDON_SCRIPT,
        help="the addons/replay.py to replay with (A/B runs of a change)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the replaying mitmdump under cProfile; print the top functions",
    )
    parser.add_argument(
        "--raw", action="store_true", help="also write every stream's timings to the JSON results"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.concurrent_rounds = 5, 2
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}")
    for name in ("rounds", "concurrent_rounds", "streams", "chunks"):
        if not 1 <= getattr(args, name) <= 10_000:
            parser.error(f"--{name.replace('_', '-')} must be 1..10000")

    body, headers = body_and_headers(args.chunks, args.gap_ms)
    results: dict[str, Any] = {
        "bench": "bench_replay",
        "machine": common.machine(),
        "config": vars(args),
        "scenarios": {},
    }
    with common.rig(keep=args.keep) as r:
        store = r.root / "store"
        rec = record(r, store, body, headers)
        gaps = [b - a for a, b in zip(rec.offsets, rec.offsets[1:], strict=False)]
        results["recorded"] = {
            "file": str(rec.path.relative_to(r.root)),
            "chunks": len(rec.offsets),
            "ttfb_ms": rec.ttfb * 1000,
            "offsets_ms": [o * 1000 for o in rec.offsets],
            "sizes": list(rec.sizes),
        }
        print(
            f"recorded {len(rec.offsets)} chunks, ttfb {rec.ttfb * 1000:.2f} ms, gaps "
            f"{min(gaps) * 1000:.2f}..{max(gaps) * 1000:.2f} ms (median "
            f"{statistics.median(gaps) * 1000:.2f}), span {rec.offsets[-1] * 1000:.1f} ms",
            flush=True,
        )
        profile = r.root / "replay.pstats" if args.profile else None
        proxy = common.start_quiet_mitmdump(
            [
                "-s",
                str(args.addon.resolve()),
                "--set",
                "replay_mode=replay",
                "--set",
                f"replay_dir={store}",
                "--set",
                "replay_speed=1",
                "--set",
                "replay_miss=error",
            ],
            r,
            profile=profile,
        )
        try:
            cx = Context(r, proxy, body, headers, args.streams, args.stagger_ms / 1000)
            runs: dict[str, Callable[[], Rounds]] = {
                "a": lambda: h1_single(cx, args.rounds, args.warmup),
                "b": lambda: h2_httpx(cx, args.rounds, args.warmup),
                "b2": lambda: h2_raw(cx, args.rounds, args.warmup, 1),
                "c": lambda: h1_concurrent(cx, args.concurrent_rounds, args.warmup),
                "d": lambda: h2_raw(cx, args.concurrent_rounds, args.warmup, args.streams),
            }
            for key in only:
                title = TITLES[key].format(n=args.streams)
                print(f"running {title} ...", file=sys.stderr, flush=True)
                (u0, s0), t0 = common.cpu_times(proxy.pid), time.monotonic()
                rounds = runs[key]()
                (u1, s1), t1 = common.cpu_times(proxy.pid), time.monotonic()
                cpu0, cpu1 = u0 + s0, u1 + s1
                stats = analyse(rounds, rec)
                stats["title"] = title
                per_round = args.streams if key in ("c", "d") else 1
                total = per_round * (args.warmup + len(rounds))
                stats["mitmdump_cpu_share"] = (cpu1 - cpu0) / (t1 - t0)
                stats["mitmdump_cpu_ms_per_stream"] = (cpu1 - cpu0) * 1000 / total
                stats["mitmdump_sys_share_of_cpu"] = (s1 - s0) / max(cpu1 - cpu0, 1e-9)
                stats["verdict"] = verdict(key, stats)
                if args.raw:
                    stats["raw"] = [
                        [
                            {
                                "t_headers": t.t_headers,
                                "times": t.times,
                                "status": t.status,
                                "error": t.error,
                            }
                            for t in timings
                        ]
                        for timings in rounds
                    ]
                results["scenarios"][key] = stats
        finally:
            code = proxy.stop()
            if code != 0:
                print(f"replay proxy exited {code}:\n{proxy.output()}", file=sys.stderr)
        if profile is not None and profile.exists():
            common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            kept = common.RESULTS_DIR / f"bench_replay-{time.strftime('%Y%m%dT%H%M%S')}.pstats"
            profile.replace(kept)
            common.print_profile(kept)
            results["profile"] = str(kept)

    rows = []
    for s in results["scenarios"].values():
        rows.append(
            [
                s["title"],
                f"{s['streams_ok']}/{s['streams']}",
                s["gaps"],
                s["gap_abs_p50_ms"],
                s["gap_abs_p99_ms"],
                s["gap_abs_max_ms"],
                s["ttfb_err_p50_ms"],
                s["ttfb_err_p99_ms"],
                s["span_err_p50_ms"],
                s["mitmdump_cpu_ms_per_stream"],
                s["verdict"],
            ]
        )
    print()
    print(
        f"replay_speed=1, {len(rec.offsets)} chunks ~{args.gap_ms:g} ms apart; "
        "|gap error| and TTFB error in ms (client-measured, client on the same 2 cores)"
    )
    print(
        common.table(
            [
                "scenario",
                "streams ok",
                "gaps",
                "p50",
                "p99",
                "max",
                "ttfb p50",
                "ttfb p99",
                "span p50",
                "cpu ms/stream",
                "target",
            ],
            rows,
        )
    )
    for key, s in results["scenarios"].items():
        if s["bad"]:
            print(f"  {key}: bad streams {s['bad']} (chunk counts seen {s['chunk_counts_seen']})")
    path = common.write_results("bench_replay", results)
    print(f"\nresults: {path.relative_to(common.REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
