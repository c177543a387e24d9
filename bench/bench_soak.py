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
at the end, with the peak (VmHWM), plus the files the recording store holds after a clean
stop against the answers marked `recorded`. Summary on stdout, details in
bench/results/bench_soak-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import _common as common
import httpx
from support.fake_upstream import FakeUpstream

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


async def soak(
    replayer: common.Proxy,
    recorder: common.Proxy,
    bundle: Path,
    workers: int,
    seconds: float,
) -> dict[str, Any]:
    replayed = [body(f"soak replay {i}") for i in range(20)]
    recorded = [body(f"soak record {i}") for i in range(200)]
    tallies: dict[str, dict[str, Any]] = {
        "replay": {"ok": 0, "errors": []},
        "record": {"ok": 0, "errors": []},
    }
    until = time.monotonic() + seconds
    tasks = [
        worker(replayer, bundle, replayed[i:] + replayed[:i], "hit", until, tallies["replay"])
        if i % 2 == 0
        else worker(
            recorder, bundle, recorded[i:] + recorded[:i], "recorded", until, tallies["record"]
        )
        for i in range(workers)
    ]
    samples: list[dict[str, Any]] = []

    async def sample() -> None:
        start = time.monotonic()
        while time.monotonic() < until:
            await asyncio.sleep(10)
            samples.append(
                {
                    "t": round(time.monotonic() - start, 1),
                    "replay": memory(replayer.pid),
                    "record": memory(recorder.pid),
                    "ok": {k: v["ok"] for k, v in tallies.items()},
                }
            )

    await asyncio.gather(sample(), *tasks)
    return {"tallies": tallies, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    seconds = args.minutes * 60
    with common.rig(args.keep) as r, FakeUpstream(r.certs) as upstream:
        replay_store, record_store = r.root / "replayed", r.root / "recorded"
        seed = common.start_quiet_mitmdump(
            [
                *common.pin_args(r, upstream.port),
                "-s",
                str(common.ADDON_SCRIPT),
                "--set",
                "replay_mode=record",
                "--set",
                f"replay_dir={replay_store}",
            ],
            r,
        )
        try:
            with httpx.Client(proxy=seed.url, verify=str(r.bundle), timeout=30) as client:
                for i in range(20):
                    client.post(CHAT, content=body(f"soak replay {i}"), headers=STREAM_HEADERS)
        finally:
            seed.stop()
        common_args = ["-s", str(common.ADDON_SCRIPT)]
        replayer = common.start_quiet_mitmdump(
            [*common.pin_args(r, None), *common_args, "--set", f"replay_dir={replay_store}"], r
        )
        recorder = common.start_quiet_mitmdump(
            [
                *common.pin_args(r, upstream.port),
                *common_args,
                "--set",
                "replay_mode=record",
                "--set",
                f"replay_dir={record_store}",
            ],
            r,
        )
        try:
            result = asyncio.run(soak(replayer, recorder, r.bundle, args.workers, seconds))
        finally:
            end = {"replay": memory(replayer.pid), "record": memory(recorder.pid)}
            codes = {"replay": replayer.stop(), "record": recorder.stop()}
        files = sum(1 for p in record_store.rglob("*.zst") if not p.name.startswith("."))
    samples = result["samples"]
    warm = next((s for s in samples if s["t"] >= 30), samples[0] if samples else None)
    rows = []
    for name in ("replay", "record"):
        tally = result["tallies"][name]
        start_kib = warm[name]["VmRSS"] if warm else 0
        rows.append(
            [
                name,
                tally["ok"],
                len(tally["errors"]),
                f"{start_kib / 1024:.1f}",
                f"{end[name]['VmRSS'] / 1024:.1f}",
                f"{end[name]['VmHWM'] / 1024:.1f}",
                codes[name],
            ]
        )
    print(f"{args.workers} workers for {args.minutes:g} min (memory in MiB; start = after 30 s)")
    print(
        common.table(["proxy", "requests", "errors", "rss start", "rss end", "peak", "exit"], rows)
    )
    recorded_ok = result["tallies"]["record"]["ok"]
    print(f"recording store after a clean stop: {files} files for {recorded_ok} answers recorded")
    errors = {k: v["errors"][:20] for k, v in result["tallies"].items()}
    path = common.write_results(
        "bench_soak",
        {
            "minutes": args.minutes,
            "workers": args.workers,
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
