"""Latency of synthetic answers against recorded hits of the same size, at replay_speed=0.

Run from the repo root: .venv/bin/python bench/bench_synthetic.py [--quick] [--requests N]

One `mitmdump -q -s addons/replay.py --set replay_speed=0` (replay mode, miss policy
synthetic) serves both sides; which side a request is on is chosen by its namespace
(`x-replay-cassette`, removed before fingerprinting, so both sides have the same
fingerprint and the same request bytes but for that header):

    synthetic: namespace bench-synthetic, empty: every request is a miss answered by the
               endpoint's responder (x-replay: synthetic), occurrence 0, 1, 2, ...
    hit:       namespace bench-hit, one recording (occurrence 0) that replay mode serves
               for every later occurrence (x-replay: hit)

The recording is built from the synthetic answers themselves. Answers are deterministic per
(fingerprint, occurrence) and occurrences are counted per namespace, so warmup + requests
requests in a third namespace (bench-capture) show the sizes the synthetic side will get; the
occurrence k closest to their mean (bytes and chunks) is read with its bytes (rawclient: status
line, headers, one item per HTTP chunk, i.e. per SSE event) as occurrence k of a fourth
namespace, and written as an Interaction under the request's fingerprint (replay.fingerprint,
checked against the x-replay-fingerprint the proxy sent) through replay.redact.redact and
replay.store.Store.put/flush, as replay.engine does. So the hit serves as many bytes and chunks
as a typical synthetic answer, by the same path (inline, or the loopback chunk server).

Cases: an OpenAI chat completion, the same streamed ("stream": true), and an Anthropic
messages stream. Per case, one kept-alive HTTP/1.1 tunnel (CONNECT + TLS) carries both sides,
one request at a time, in blocks of --round-size requests, alternating S H H S S H ...;
--warmup requests per side first, unmeasured. For each response the client notes the time
from writing the request to the response head (TTFB) and to the end of the response (total).
Reported per side: median and p90 of both, mean body bytes and chunks, mitmdump CPU per
request (/proc/PID/stat around each block); and the ratio of the medians, synthetic / hit.
Summary on stdout, details in bench/results/bench_synthetic-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import ssl
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

import _common as common
from _clients import StreamTiming, h1_request, run_h1_concurrent
from support.proxy import Proxy
from support.rawclient import RawResponse, fetch

from replay import __version__
from replay.fingerprint import (
    FINGERPRINT_VERSION,
    FingerprintPolicy,
    decoded_request,
    fingerprint,
)
from replay.hosts import model_of
from replay.mitm.adapt import CASSETTE_HEADER, FINGERPRINT_HEADER, REPLAY_HEADER
from replay.models import Chunk, Interaction, Key, Provenance, Request, ResponseHead
from replay.providers.router import resolve
from replay.redact import redact
from replay.store import Store

NS_CAPTURE = "bench-capture"
NS_PICK = "bench-pick"
NS_SYNTHETIC = "bench-synthetic"
NS_HIT = "bench-hit"
SIDES = ("synthetic", "hit")
NAMESPACE = {"synthetic": NS_SYNTHETIC, "hit": NS_HIT}
OPENAI_HEADERS = {
    "content-type": "application/json",
    "authorization": "Bearer sk-bench-0000000000000000000000",
}
ANTHROPIC_HEADERS = {
    "content-type": "application/json",
    "x-api-key": "sk-ant-bench-000000000000000000000",
    "anthropic-version": "2023-06-01",
}


@dataclass(frozen=True)
class Case:
    name: str
    host: str
    path: str
    headers: dict[str, str]
    body: bytes

    def request(self, namespace: str) -> bytes:
        headers = {**self.headers, CASSETTE_HEADER: namespace}
        return h1_request(self.body, headers, self.host, self.path)

    def as_replay_request(self) -> Request:
        """The request as the addon sees it once the namespace header is gone."""
        headers = (("Host", self.host), ("Content-Length", str(len(self.body))))
        return Request(
            method="POST",
            scheme="https",
            host=self.host,
            port=443,
            path=self.path,
            query=(),
            headers=(*headers, *self.headers.items()),
            body=self.body,
        )


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


_CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "time me, please"}]}
CASES = {
    "openai": Case(
        "openai", "api.openai.com", "/v1/chat/completions", OPENAI_HEADERS, _json(_CHAT)
    ),
    "openai-stream": Case(
        "openai-stream",
        "api.openai.com",
        "/v1/chat/completions",
        OPENAI_HEADERS,
        _json({**_CHAT, "stream": True}),
    ),
    "anthropic-stream": Case(
        "anthropic-stream",
        "api.anthropic.com",
        "/v1/messages",
        ANTHROPIC_HEADERS,
        _json(
            {
                "model": "claude-haiku-4-5",
                "max_tokens": 1024,
                "stream": True,
                "messages": [{"role": "user", "content": "time me, please"}],
            }
        ),
    ),
}


# --- one request -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    ttfb: float
    """Seconds from writing the request to the response head."""
    total: float
    """Seconds from writing the request to the end of the response (last chunk parsed)."""
    body_bytes: int
    chunks: int


def exchange(sock: ssl.SSLSocket, request: bytes, timeout: float) -> tuple[StreamTiming, float]:
    """One request on the kept-alive tunnel: its timing, and seconds to the response's end.

    The end is taken as run_h1_concurrent returns (a few microseconds of selector clean-up
    after the last byte was parsed, the same on both sides)."""
    [t] = run_h1_concurrent([sock], request, timeout=timeout)
    return t, time.perf_counter() - t.t_send


def problem(t: StreamTiming, outcome: str) -> str | None:
    """Why a response does not count (None: it does)."""
    if t.error or not t.done:
        return t.error or "incomplete"
    if t.status != 200:
        return f"status {t.status}"
    if t.headers.get(REPLAY_HEADER) != outcome:
        return f"x-replay {t.headers.get(REPLAY_HEADER)!r}, not {outcome!r}"
    return None


# --- the recording -------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    fingerprint: str
    occurrence: int
    """The synthetic occurrence the recording holds: the one closest to the mean size."""
    chunks: tuple[bytes, ...]
    synthetic_bytes_mean: float
    """Mean body bytes of the synthetic occurrences the measurement will see."""
    synthetic_chunks_mean: float

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def _fetch(proxy: Proxy, r: common.Rig, case: Case, namespace: str) -> RawResponse:
    """One request as a client that keeps what it reads (rawclient: status line, headers in
    order and case, one item per HTTP chunk); a new connection."""
    return fetch(
        f"https://{case.host}{case.path}",
        proxy_port=proxy.port,
        cafile=r.bundle,
        headers={**case.headers, CASSETTE_HEADER: namespace},
        body=case.body,
    )


def write_recording(store_dir: Path, case: Case, resp: RawResponse) -> str:
    """Store `resp` as occurrence 0 of the case's request in NS_HIT, through `redact` and
    `Store.put` as replay.engine does; returns the fingerprint."""
    request = case.as_replay_request()
    policy = FingerprintPolicy()
    fp = fingerprint(request, policy).hex
    if fp != resp.header(FINGERPRINT_HEADER):
        raise RuntimeError(f"{case.name}: fingerprint {fp}, the proxy says {resp.headers}")
    stored_request = decoded_request(request)
    status = resp.status
    reason = resp.status_line.split(" ", 2)[2] if resp.status_line.count(" ") >= 2 else ""
    head = ResponseHead(
        status=status,
        reason=reason or HTTPStatus(status).phrase,
        http_version="HTTP/1.1",
        headers=tuple(resp.headers_without_replay()),
    )
    offsets = [max(t - resp.t_headers, 0.0) for t in resp.times]
    interaction = Interaction(
        key=Key(NS_HIT, fp, 0),
        fingerprint_version=FINGERPRINT_VERSION,
        ignore=policy.ignore,
        request=stored_request,
        response=head,
        ttfb=0.0,
        chunks=tuple(Chunk(o, d) for o, d in zip(offsets, resp.chunks, strict=True)),
        complete=True,
        provenance=Provenance(
            recorded_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
            provider=resolve(request).provider,
            model=model_of(request, stored_request.body),
            user_agent=None,
            upstream_status=status,
            tool_version=__version__,
        ),
    )
    store = Store(store_dir)
    try:
        store.put(redact(interaction))
        if not store.flush(30):
            raise RuntimeError(f"{case.name}: the recording was not written within 30 s")
    finally:
        store.close()
    return fp


def record(
    proxies: dict[str, Proxy],
    r: common.Rig,
    store_dir: Path,
    case: Case,
    args: argparse.Namespace,
) -> Recorded:
    """Store the synthetic answer of typical size as the case's hit, and check it is served.

    Answers are deterministic per occurrence, and occurrences are counted per namespace: the
    sizes of occurrences 0..warmup+requests-1 in NS_CAPTURE are those the synthetic side will
    get. The occurrence closest to their mean (body bytes and chunks) is fetched with its
    bytes as occurrence k of NS_PICK, after k requests there on the fast client.
    """
    n = args.warmup + args.requests
    sizes: list[int] = []
    counts: list[int] = []
    proxy = proxies["synthetic"]
    sock = common.tunnel(proxy.port, common.client_context(r.bundle, ["http/1.1"]), case.host)
    try:
        for _ in range(n):
            t, _ = exchange(sock, case.request(NS_CAPTURE), args.timeout)
            if (why := problem(t, "synthetic")) is not None:
                raise RuntimeError(f"{case.name}: sizing the synthetic answers: {why}")
            sizes.append(sum(t.sizes))
            counts.append(len(t.sizes))
        measured = range(args.warmup, n)
        mean_bytes = statistics.fmean(sizes[i] for i in measured)
        mean_chunks = statistics.fmean(counts[i] for i in measured)
        k = min(
            range(n),
            key=lambda i: (
                abs(sizes[i] - mean_bytes) / mean_bytes
                + abs(counts[i] - mean_chunks) / mean_chunks,
                i,
            ),
        )
        for _ in range(k):
            t, _ = exchange(sock, case.request(NS_PICK), args.timeout)
            if (why := problem(t, "synthetic")) is not None:
                raise RuntimeError(f"{case.name}: picking occurrence {k}: {why}")
    finally:
        sock.close()
    picked = _fetch(proxy, r, case, NS_PICK)
    if picked.status != 200 or picked.header(REPLAY_HEADER) != "synthetic":
        raise RuntimeError(f"{case.name}: capture got {picked.status_line} {picked.headers}")
    if not picked.complete or (len(picked.body), len(picked.chunks)) != (sizes[k], counts[k]):
        raise RuntimeError(
            f"{case.name}: occurrence {k} has {len(picked.body)} B in {len(picked.chunks)} "
            f"chunks, not {sizes[k]} B in {counts[k]} as before: not deterministic?"
        )
    fp = write_recording(store_dir, case, picked)
    recorded = Recorded(fp, k, tuple(picked.chunks), mean_bytes, mean_chunks)
    # Occurrence 0 of the hit namespace: the exact file (later ones take get_latest's path).
    hit = _fetch(proxies["hit"], r, case, NS_HIT)
    if hit.header(REPLAY_HEADER) != "hit" or tuple(hit.chunks) != recorded.chunks:
        raise RuntimeError(
            f"{case.name}: the recording is not served back: {hit.status_line} {hit.headers}"
        )
    return recorded


# --- measuring -----------------------------------------------------------------------------


@dataclass
class SideRun:
    samples: list[Sample] = field(default_factory=list)
    round_total_p50: list[float] = field(default_factory=list)
    """Median total time of each block of this side, seconds."""
    cpu_seconds: float = 0.0
    """mitmdump's CPU over this side's blocks."""
    bad: list[str] = field(default_factory=list)


def run_block(
    sock: ssl.SSLSocket,
    request: bytes,
    outcome: str,
    n: int,
    timeout: float,
    pid: int | None,
) -> tuple[list[Sample], list[str], float]:
    """`n` requests one after another; the good samples, the problems, mitmdump's CPU."""
    samples, bad = [], []
    cpu0 = common.cpu_seconds(pid) if pid is not None else 0.0
    for _ in range(n):
        t, total = exchange(sock, request, timeout)
        why = problem(t, outcome)
        if why is not None:
            bad.append(why)
            if t.error or not t.done:  # the connection's state is unknown: stop the block
                break
            continue
        samples.append(Sample(t.t_headers, total, sum(t.sizes), len(t.sizes)))
    cpu = common.cpu_seconds(pid) - cpu0 if pid is not None else 0.0
    return samples, bad, cpu


def measure_case(
    proxies: dict[str, Proxy], r: common.Rig, case: Case, args: argparse.Namespace
) -> tuple[dict[str, SideRun], int]:
    """Warm-up, then alternating blocks S H H S ... on one kept-alive tunnel per proxy (both
    sides share it when they share the proxy); stops early (after a whole pair of blocks)
    when the case's --budget runs out. Returns the runs and the number of rounds done."""
    requests = {side: case.request(NAMESPACE[side]) for side in SIDES}
    runs = {side: SideRun() for side in SIDES}
    ctx = common.client_context(r.bundle, ["http/1.1"])
    socks: dict[str, ssl.SSLSocket] = {}
    try:
        for side in SIDES:
            shared = [socks[s] for s in socks if proxies[s] is proxies[side]]
            socks[side] = shared[0] if shared else common.tunnel(proxies[side].port, ctx, case.host)
        for side in SIDES:
            sock = socks[side]
            _, bad, _ = run_block(sock, requests[side], side, args.warmup, args.timeout, None)
            if bad:
                raise RuntimeError(f"{case.name}: warm-up of {side}: {bad[:3]}")
        rounds = math.ceil(args.requests / args.round_size)
        deadline = time.monotonic() + args.budget
        done = 0
        for i in range(rounds):
            if time.monotonic() > deadline:
                print(f"  {case.name}: --budget spent after {done} rounds", file=sys.stderr)
                break
            n = min(args.round_size, args.requests - i * args.round_size)
            for side in SIDES if i % 2 == 0 else SIDES[::-1]:
                pid = proxies[side].pid
                samples, bad, cpu = run_block(
                    socks[side], requests[side], side, n, args.timeout, pid
                )
                run = runs[side]
                run.samples += samples
                run.bad += bad
                run.cpu_seconds += cpu
                run.round_total_p50.append(
                    statistics.median(s.total for s in samples) if samples else math.nan
                )
                if bad and len(samples) < n - len(bad):
                    raise RuntimeError(f"{case.name}: {side} broke off: {bad[:3]}")
            done += 1
    finally:
        for sock in {id(s): s for s in socks.values()}.values():
            sock.close()
    return runs, done


def summarise(run: SideRun) -> dict[str, Any]:
    ttfb = [s.ttfb * 1000 for s in run.samples]
    total = [s.total * 1000 for s in run.samples]
    n = len(run.samples)
    return {
        "n": n,
        "ttfb_p50_ms": common.percentile(ttfb, 50),
        "ttfb_p90_ms": common.percentile(ttfb, 90),
        "total_p50_ms": common.percentile(total, 50),
        "total_p90_ms": common.percentile(total, 90),
        "body_bytes_mean": statistics.fmean(s.body_bytes for s in run.samples) if n else math.nan,
        "body_bytes_min": min((s.body_bytes for s in run.samples), default=0),
        "body_bytes_max": max((s.body_bytes for s in run.samples), default=0),
        "chunks_mean": statistics.fmean(s.chunks for s in run.samples) if n else math.nan,
        "mitm_cpu_ms_per_req": run.cpu_seconds * 1000 / n if n else math.nan,
        "round_total_p50_ms": [x * 1000 for x in run.round_total_p50],
        "bad": len(run.bad),
        "bad_examples": run.bad[:5],
    }


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 and not math.isnan(a) else math.nan


# --- main --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma list of {', '.join(CASES)} (default: all)",
    )
    parser.add_argument("--requests", type=int, default=300, help="measured per side and case")
    parser.add_argument("--round-size", type=int, default=20, help="requests per block")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured requests per side")
    parser.add_argument(
        "--budget", type=float, default=45.0, help="seconds of measuring per case, at most"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--quick", action="store_true", help="60 requests per side, blocks of 10")
    parser.add_argument(
        "--addon",
        type=Path,
        default=common.ADDON_SCRIPT,
        help="the addons/replay.py to serve with (A/B runs of a change)",
    )
    parser.add_argument(
        "--proxies",
        choices=("one", "two"),
        default="one",
        help="one mitmdump for both sides (default), or one each (a cross-check)",
    )
    parser.add_argument("--raw", action="store_true", help="every sample into the JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.round_size, args.warmup = 60, 10, 10
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    if not names or any(n not in CASES for n in names):
        parser.error(f"--cases: choose from {', '.join(CASES)}")
    if not 1 <= args.requests <= 100_000 or not 1 <= args.round_size <= args.requests:
        parser.error("--requests must be 1..100000 and --round-size 1..--requests")
    if not 1 <= args.warmup <= 10_000:
        parser.error("--warmup must be 1..10000")
    if not 1 <= args.budget <= 3600 or not 0.1 <= args.timeout <= 120:
        parser.error("--budget must be 1..3600 s and --timeout 0.1..120 s")

    results: dict[str, Any] = {
        "bench": "bench_synthetic",
        "machine": common.machine(),
        "config": {**vars(args), "cases": names},
        "cases": {},
    }
    with common.rig(keep=args.keep) as r:
        store_dir = r.root / "store"
        proxy_args = [
            "-s",
            str(args.addon.resolve()),
            "--set",
            "replay_mode=replay",
            "--set",
            "replay_miss=synthetic",
            "--set",
            f"replay_dir={store_dir}",
            "--set",
            "replay_speed=0",
        ]
        started: list[Proxy] = []
        try:
            for _ in range(1 if args.proxies == "one" else 2):
                started.append(common.start_quiet_mitmdump(proxy_args, r))
            proxies = {"synthetic": started[0], "hit": started[-1]}
            for name in names:
                case = CASES[name]
                print(f"{name}: recording ...", file=sys.stderr, flush=True)
                recorded = record(proxies, r, store_dir, case, args)
                print(f"{name}: measuring ...", file=sys.stderr, flush=True)
                runs, rounds = measure_case(proxies, r, case, args)
                sides = {side: summarise(runs[side]) for side in SIDES}
                syn, hit = sides["synthetic"], sides["hit"]
                per_round = [
                    ratio(s, h)
                    for s, h in zip(
                        syn["round_total_p50_ms"], hit["round_total_p50_ms"], strict=True
                    )
                ]
                entry: dict[str, Any] = {
                    "request_bytes": len(case.body),
                    "rounds": rounds,
                    "recording": {
                        "fingerprint": recorded.fingerprint,
                        "synthetic_occurrence": recorded.occurrence,
                        "body_bytes": len(recorded.body),
                        "chunks": len(recorded.chunks),
                        "synthetic_body_bytes_mean_expected": recorded.synthetic_bytes_mean,
                        "synthetic_chunks_mean_expected": recorded.synthetic_chunks_mean,
                    },
                    "sides": sides,
                    "ratio_total_p50": ratio(syn["total_p50_ms"], hit["total_p50_ms"]),
                    "ratio_ttfb_p50": ratio(syn["ttfb_p50_ms"], hit["ttfb_p50_ms"]),
                    "ratio_total_p90": ratio(syn["total_p90_ms"], hit["total_p90_ms"]),
                    "ratio_cpu_per_req": ratio(
                        syn["mitm_cpu_ms_per_req"], hit["mitm_cpu_ms_per_req"]
                    ),
                    "ratio_total_p50_per_round": per_round,
                }
                if args.raw:
                    entry["samples"] = {
                        side: [vars(s) for s in runs[side].samples] for side in SIDES
                    }
                results["cases"][name] = entry
        finally:
            for proxy in started:
                code = proxy.stop()
                if code != 0:
                    print(f"mitmdump exited {code}:\n{proxy.output()}", file=sys.stderr)

    print()
    print(
        f"{'one mitmdump for both sides' if args.proxies == 'one' else 'a mitmdump per side'}"
        f", replay_speed=0; per case and mitmdump one kept-alive "
        f"HTTP/1.1 tunnel, one request at a time, blocks of {args.round_size} alternating "
        f"synthetic/hit; ms from writing "
        f"the request to the response head (ttfb) and to its end (total)"
    )
    rows = []
    for name, entry in results["cases"].items():
        for side in SIDES:
            s = entry["sides"][side]
            rows.append(
                [
                    f"{name} {side}",
                    s["n"],
                    s["ttfb_p50_ms"],
                    s["ttfb_p90_ms"],
                    s["total_p50_ms"],
                    s["total_p90_ms"],
                    f"{s['body_bytes_mean']:.0f}",
                    f"{s['chunks_mean']:.1f}",
                    s["mitm_cpu_ms_per_req"],
                    s["bad"],
                ]
            )
    headers = [
        "case / side",
        "n",
        "ttfb p50",
        "ttfb p90",
        "total p50",
        "total p90",
        "body B",
        "chunks",
        "mitm cpu ms/req",
        "bad",
    ]
    print(common.table(headers, rows))
    print("\nsynthetic / hit (ratio of medians; p90 and CPU for reference):")
    ratio_rows = []
    for name, entry in results["cases"].items():
        per_round = [x for x in entry["ratio_total_p50_per_round"] if not math.isnan(x)]
        spread = f"{min(per_round):.2f}..{max(per_round):.2f}" if per_round else "-"
        ratio_rows.append(
            [
                name,
                entry["ratio_total_p50"],
                spread,
                entry["ratio_ttfb_p50"],
                entry["ratio_total_p90"],
                entry["ratio_cpu_per_req"],
                entry["rounds"],
            ]
        )
    print(
        common.table(
            ["case", "total p50", "per round", "ttfb p50", "total p90", "cpu/req", "rounds"],
            ratio_rows,
        )
    )
    for name, entry in results["cases"].items():
        rec = entry["recording"]
        syn = entry["sides"]["synthetic"]
        print(
            f"  {name}: the hit = synthetic occurrence {rec['synthetic_occurrence']} "
            f"({rec['body_bytes']} B, {rec['chunks']} chunks); synthetic answers "
            f"{syn['body_bytes_min']}..{syn['body_bytes_max']} B"
        )
        for side in SIDES:
            if entry["sides"][side]["bad"]:
                print(f"  {name} {side} problems: {entry['sides'][side]['bad_examples']}")
    path = common.write_results("bench_synthetic", results)
    print(f"\nresults: {path.relative_to(common.REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
