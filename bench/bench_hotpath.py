"""CPU cost of the addon's request path for a non-streamed hit, in process (no proxy, no sockets).

Run from the repo root: .venv/bin/python bench/bench_hotpath.py [--n N] [--root PATH]

Explains bench_throughput.py's figures step by step. A store is filled with --n + 1 recorded
chat answers (84-byte JSON POSTs, 366-byte JSON answers, as in bench_throughput.py); then,
with mitmproxy flows built by mitmproxy.test.tflow and the addon's hooks called directly:

    hot            the same request again and again (what bench_throughput.py measures)
    new request    --n distinct requests, each seen once, their files already in the store's
                   cache (a fresh addon over a warmed store: memos, if any, are cold)
    first hit      --n distinct requests whose files are read and decoded on the way
    server replay  mitmproxy's ServerPlayback.request, same hot and distinct requests

plus the steps of the hot path one by one. Each figure is the median over --repeat runs of
the mean microseconds per request. `--root` imports `replay` from another checkout (A/B of a
change to replay/). In-process figures are lower than inside mitmdump (warm caches, no event
loop): compare them with each other, not with bench_throughput.py's CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _common as common

BODY_TEMPLATE = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "say hi to the bench"}],
}
ANSWER_HEADERS = (
    ("content-type", "application/json"),
    ("x-request-id", "req_da193be1ee27406a60199c7f41479a0d"),
    ("openai-organization", "<redacted>"),
    ("openai-processing-ms", "7"),
    ("set-cookie", "<redacted>"),
    ("content-length", "366"),
    ("date", "Sun, 22 Nov 2026 01:41:38 GMT"),
    ("server", "hypercorn-h11"),
)


def body(i: int | None) -> bytes:
    doc = json.loads(json.dumps(BODY_TEMPLATE))
    if i is not None:
        doc["messages"][0]["content"] = f"say hi to the bench {i}"
    return json.dumps(doc, separators=(",", ":")).encode()


def per_call(fn: Callable[[], object], n: int, repeat: int) -> float:
    """Median over `repeat` runs of the mean microseconds of `fn()`."""
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(runs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="distinct requests (and loop size)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--root",
        type=Path,
        default=common.REPO_ROOT,
        help="the checkout whose replay/ package is measured",
    )
    parser.add_argument("--quick", action="store_true", help="--n 500 --repeat 3")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeat = 500, 3
    if not 10 <= args.n <= 100_000 or not 1 <= args.repeat <= 50:
        parser.error("--n must be 10..100000 and --repeat 1..50")
    root = args.root.resolve()
    if "replay" in sys.modules:
        parser.error("replay was imported before --root could take effect")
    sys.path.insert(0, str(root))
    with tempfile.TemporaryDirectory(prefix="replay-hotpath-") as tmp:
        results = run(args.n, args.repeat, Path(tmp))
    import replay

    results["replay_imported_from"] = str(Path(replay.__file__).parent)
    results["machine"] = common.machine()
    results["config"] = {"n": args.n, "repeat": args.repeat, "root": str(root)}

    print(
        f"replay from {results['replay_imported_from']}; microseconds per request "
        f"(median of {args.repeat} runs of {args.n})"
    )
    print(common.table(["path", "us/request"], [[k, v] for k, v in results["paths"].items()]))
    print()
    print(
        common.table(
            ["step of the hot path", "us/call"], [[k, v] for k, v in results["steps"].items()]
        )
    )
    path = common.write_results("bench_hotpath", results)
    print(f"\nresults: {path.relative_to(common.REPO_ROOT)}")
    return 0


def run(n: int, repeat: int, tmp: Path) -> dict[str, Any]:
    """The figures, with a store of n + 1 recordings under `tmp`."""
    http = importlib.import_module("mitmproxy.http")
    tflow = importlib.import_module("mitmproxy.test.tflow")
    taddons = importlib.import_module("mitmproxy.test.taddons")
    serverplayback = importlib.import_module("mitmproxy.addons.serverplayback")
    config = importlib.import_module("replay.config")
    engine_mod = importlib.import_module("replay.engine")
    fingerprint_mod = importlib.import_module("replay.fingerprint")
    models = importlib.import_module("replay.models")
    player = importlib.import_module("replay.player")
    redact = importlib.import_module("replay.redact")
    store_mod = importlib.import_module("replay.store")
    adapt = importlib.import_module("replay.mitm.adapt")
    addon_mod = importlib.import_module("replay.mitm.addon")

    def make_flow(data: bytes) -> Any:
        f = tflow.tflow()
        r = f.request
        r.scheme, r.host, r.port = "https", "api.openai.com", 443
        r.method, r.path, r.http_version = "POST", "/v1/chat/completions", "HTTP/1.1"
        r.headers = http.Headers(
            host="api.openai.com",
            content_length=str(len(data)),
            content_type="application/json",
            authorization="Bearer sk-bench-0000000000000000000000",
            accept="application/json",
        )
        r.content = data
        f.response = None
        return f

    settings = config.Settings.from_options(
        {"replay_dir": str(tmp), "replay_speed": "0", "replay_mode": "replay"}
    )
    store = store_mod.Store(tmp)
    policy = fingerprint_mod.FingerprintPolicy()
    bodies = [body(None), *(body(i) for i in range(n))]
    answer = json.dumps({"object": "chat.completion", "pad": "p" * 300}).encode()[:366]
    for data in bodies:
        req = adapt.request_from_flow(make_flow(data))
        fp = fingerprint_mod.fingerprint(req, policy)
        store.put(
            redact.redact(
                models.Interaction(
                    key=models.Key("default", fp.hex, 0),
                    fingerprint_version=1,
                    ignore=(),
                    request=req,
                    response=models.ResponseHead(200, "", "HTTP/1.1", ANSWER_HEADERS),
                    ttfb=0.005,
                    chunks=(models.Chunk(0.0, answer),),
                    complete=True,
                    provenance=models.Provenance(
                        "2026-01-01T00:00:00Z", "openai", "gpt-4o-mini", None, 200, "0.1.0"
                    ),
                )
            )
        )
    store.flush()
    store.close()

    def new_addon(shared: Any = None) -> Any:
        addon = addon_mod.ReplayAddon()
        addon.engine = engine_mod.Engine(settings, store=shared)
        return addon

    async def serve(addon: Any, flows: list[Any]) -> float:
        t0 = time.perf_counter()
        for f in flows:
            pending = addon.request(f)  # awaitable only when the answer must wait
            if pending is not None:
                await pending
            addon.responseheaders(f)
            addon.response(f)
        elapsed = (time.perf_counter() - t0) / len(flows) * 1e6
        if any(f.response is None or f.response.headers.get("x-replay") != "hit" for f in flows):
            raise RuntimeError("a request was not a hit")
        return elapsed

    def median_of(make: Callable[[], tuple[Any, list[Any]]]) -> float:
        runs = []
        for _ in range(repeat):
            addon, flows = make()
            runs.append(asyncio.run(serve(addon, flows)))
        return statistics.median(runs)

    paths: dict[str, float] = {}
    hot = new_addon()
    paths["hot: the same request repeated"] = median_of(
        lambda: (hot, [make_flow(bodies[0]) for _ in range(n)])
    )
    paths["first hit: file read and decoded"] = median_of(
        lambda: (new_addon(), [make_flow(b) for b in bodies[1:]])
    )

    def warmed() -> tuple[Any, list[Any]]:
        shared = store_mod.Store(tmp)
        asyncio.run(serve(new_addon(shared), [make_flow(b) for b in bodies[1:]]))
        return new_addon(shared), [make_flow(b) for b in bodies[1:]]

    paths["new request, file cached"] = median_of(warmed)

    sp = serverplayback.ServerPlayback()
    with taddons.context(sp) as tctx:
        tctx.configure(sp, server_replay_reuse=True, server_replay_refresh=False)
        recorded = []
        for data in bodies:
            f = make_flow(data)
            f.response = http.Response.make(
                200, answer, [(k.encode(), v.encode()) for k, v in ANSWER_HEADERS]
            )
            recorded.append(f)
        sp.load_flows(recorded)

        def playback(flows: list[Any]) -> float:
            t0 = time.perf_counter()
            for f in flows:
                sp.request(f)
            return (time.perf_counter() - t0) / len(flows) * 1e6

        paths["server replay: hot"] = statistics.median(
            playback([make_flow(bodies[0]) for _ in range(n)]) for _ in range(repeat)
        )
        paths["server replay: distinct"] = statistics.median(
            playback([make_flow(b) for b in bodies[1:]]) for _ in range(repeat)
        )

    engine = hot.engine
    flow = make_flow(bodies[0])
    request = adapt.request_from_flow(flow)
    fp = fingerprint_mod.fingerprint(request, policy)
    found = engine.store.get(models.Key("default", fp.hex, 0))
    playback0 = player.plan(found, 0.0, None)
    response = adapt.inline_response(playback0, "HTTP/1.1")
    occurrence = iter(range(1, 10**9))
    steps = {
        "adapt.request_from_flow": per_call(lambda: adapt.request_from_flow(flow), n, repeat),
        "fingerprint.fingerprint": per_call(
            lambda: fingerprint_mod.fingerprint(request, policy), n, repeat
        ),
        "store.get (cached file)": per_call(
            lambda: engine.store.get(models.Key("default", fp.hex, 0)), n, repeat
        ),
        "store.get_latest (past the last occurrence)": per_call(
            lambda: engine.store.get_latest(models.Key("default", fp.hex, next(occurrence))),
            n,
            repeat,
        ),
        "engine.prepare + plan": per_call(
            lambda: engine.plan(*engine.prepare(request, "default")), n, repeat
        ),
        "player.plan": per_call(lambda: player.plan(found, 0.0, None), n, repeat),
        "adapt.inline_response": per_call(
            lambda: adapt.inline_response(playback0, "HTTP/1.1"), n, repeat
        ),
        "adapt.mark": per_call(lambda: adapt.mark(response, models.Outcome.HIT, fp.hex), n, repeat),
        "mitmproxy Response.copy (server replay's)": per_call(response.copy, n, repeat),
    }
    return {"bench": "bench_hotpath", "paths": paths, "steps": steps}


if __name__ == "__main__":
    sys.exit(main())
