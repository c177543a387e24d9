"""A store shared on S3: hit latency against a local directory, and recording proxies at once.

Run from the repo root: .venv/bin/python bench/bench_s3.py [--quick] [--files N] [--proxies N]

The object store is moto's S3 server (tests/support/s3server.py) on 127.0.0.1, started here
and stopped by its pid: figures are for a loopback endpoint, so the cold-cache cost is the
client's and the protocol's, not a network's (add your round trip to it for a real bucket).

(a) Hit latency, in process, through `replay.store.Store.get` with its in-memory LRU off
(`cache_bytes=0`), so every lookup reads a file: --files recorded interactions (an OpenAI
chat stream of 12 chunks each) in a local directory and in a bucket; then one pass over all
of them from the local directory, one from S3 with an empty read-through cache (each lookup
one GET, then the copy is written to the cache) and one from S3 with that cache now warm (no
request at all). Reported: median and p99 per lookup, and each as a ratio of the local one.

(b) --proxies mitmdump proxies in `auto` mode record into one bucket at once: each gets its
own client thread sending distinct non-streamed chat requests (one TLS connection each) to
the fake upstream of tests/support for --seconds. Reported: interactions answered
`recorded`, objects found in the bucket after a clean stop (which drains the writers), the
rate (objects / time from the first request to the last proxy stopped), and errors (answers
other than `recorded`, and recorded answers whose object is missing).

Summary on stdout, details in bench/results/bench_s3-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _common as common
from support.fake_upstream import FakeUpstream
from support.rawclient import fetch
from support.s3server import MotoServer, s3_env

from replay.models import (
    Chunk,
    Interaction,
    Key,
    Provenance,
    Request,
    ResponseHead,
)
from replay.redact import redact
from replay.store import Store

FP_BASE = 0xAB << 248


def interaction(n: int) -> Interaction:
    fp = f"{FP_BASE + n:064x}"
    body = b'{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"q%d"}]}'
    chunks = tuple(
        Chunk(i * 0.02, b'data: {"choices":[{"delta":{"content":"word %d "}}]}\n\n' % i)
        for i in range(12)
    )
    return Interaction(
        key=Key("bench", fp, 0),
        fingerprint_version=1,
        ignore=(),
        request=Request(
            "POST",
            "https",
            "api.openai.com",
            443,
            "/v1/chat/completions",
            (),
            (("content-type", "application/json"),),
            body % n,
        ),
        response=ResponseHead(200, "OK", "HTTP/1.1", (("content-type", "text/event-stream"),)),
        ttfb=0.1,
        chunks=chunks,
        complete=True,
        provenance=Provenance("2026-01-01T00:00:00Z", "openai", "gpt-4o-mini", None, 200, "b"),
    )


def lookups(store: Store, count: int) -> list[float]:
    times = []
    for n in range(count):
        key = Key("bench", f"{FP_BASE + n:064x}", 0)
        start = time.perf_counter()
        found = store.get(key)
        times.append((time.perf_counter() - start) * 1000)
        assert found is not None, key
    return times


def hit_latency(moto: MotoServer, root: Path, count: int) -> dict[str, Any]:
    url = f"s3://{moto.bucket('bench-hits')}/store"
    for where in (str(root / "local"), url):
        with Store(where, cache_dir=root / "writer-cache") as writer:
            for n in range(count):
                writer.put(redact(interaction(n)))
            assert writer.flush(300)
    results: dict[str, Any] = {}
    cache = root / "reader-cache"
    for label, where in (("local", str(root / "local")), ("s3 cold", url), ("s3 warm", url)):
        with Store(where, cache_bytes=0, cache_dir=cache) as reader:
            times = lookups(reader, count)
        results[label] = {
            "median_ms": statistics.median(times),
            "p99_ms": common.percentile(times, 99),
        }
    local = results["local"]
    for label in ("s3 cold", "s3 warm"):
        results[label]["ratio_median"] = results[label]["median_ms"] / local["median_ms"]
        results[label]["ratio_p99"] = results[label]["p99_ms"] / local["p99_ms"]
    return results


def recording(moto: MotoServer, r: common.Rig, proxies: int, seconds: float) -> dict[str, Any]:
    bucket = moto.bucket("bench-recording")
    url = f"s3://{bucket}/ci"
    os.environ["XDG_CACHE_HOME"] = str(r.root / "cache")
    with FakeUpstream(r.certs) as upstream:
        started = [
            common.start_quiet_mitmdump(
                [
                    *common.pin_args(r, upstream.port),
                    "-s",
                    str(common.ADDON_SCRIPT),
                    "--set",
                    "replay_mode=auto",
                    "--set",
                    f"replay_dir={url}",
                ],
                r,
            )
            for _ in range(proxies)
        ]
        answers: list[list[str]] = [[] for _ in range(proxies)]

        def client(n: int, until: float) -> None:
            i = 0
            while time.monotonic() < until:
                body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"p%d q%d"}]}'
                try:
                    resp = fetch(
                        common.CHAT_URL,
                        proxy_port=started[n].port,
                        cafile=r.bundle,
                        headers={"content-type": "application/json", "authorization": "Bearer x"},
                        body=body % (n, i),
                    )
                    answers[n].append(resp.header("x-replay") or f"status {resp.status}")
                except OSError as exc:
                    answers[n].append(f"client error {exc}")
                i += 1

        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=(n, t0 + seconds)) for n in range(proxies)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 60)
        for proxy in started:
            proxy.stop(60)
        elapsed = time.monotonic() - t0
    pages = moto.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
    objects = sum(len(page.get("Contents", ())) for page in pages)
    recorded = sum(a.count("recorded") for a in answers)
    other = sum(len(a) for a in answers) - recorded
    return {
        "proxies": proxies,
        "seconds": round(elapsed, 2),
        "answered_recorded": recorded,
        "objects": objects,
        "interactions_per_s": objects / elapsed,
        "errors": other + max(recorded - objects, 0),
        "other_answers": sorted({x for a in answers for x in a if x != "recorded"})[:5],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--proxies", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.seconds = 100, 6.0
    payload: dict[str, Any] = {"machine": common.machine(), "args": vars(args)}
    with MotoServer() as moto, common.rig(args.keep) as r:
        for name, value in s3_env(moto.endpoint).items():
            os.environ[name] = value
        with tempfile.TemporaryDirectory(dir=r.root) as tmp:
            payload["hits"] = hits = hit_latency(moto, Path(tmp), args.files)
        payload["recording"] = rec = recording(moto, r, args.proxies, args.seconds)
    print(f"(a) hit latency, {args.files} lookups each, in-memory cache off")
    rows = [
        [label, v["median_ms"], v["p99_ms"], v.get("ratio_median", 1.0), v.get("ratio_p99", 1.0)]
        for label, v in hits.items()
    ]
    print(common.table(["store", "median ms", "p99 ms", "x local median", "x local p99"], rows))
    print(f"\n(b) {rec['proxies']} proxies recording into one bucket for {rec['seconds']} s")
    print(
        common.table(
            ["recorded answers", "objects", "interactions/s", "errors"],
            [[rec["answered_recorded"], rec["objects"], rec["interactions_per_s"], rec["errors"]]],
        )
    )
    if rec["other_answers"]:
        print("other answers:", ", ".join(rec["other_answers"]))
    print(f"\n{common.write_results('bench_s3', payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
