"""Wall time, files/s and peak memory of `replay ls`, `stats` and `verify` over a large store.

Run: python bench/bench_cli.py [--count N] [--namespaces K] [--keep]

Builds a store of N mixed interactions (bench/_traffic.py) in K namespaces, each file
encoded and written as the store writes it (redacted, `codec.encode`; without the per-file
fsync, to build it faster), then runs each command as its own process, output to
/dev/null, and reads its peak RSS from `wait4`: a flat peak as N grows shows that nothing
loads the whole store into memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import table, write_results
from _traffic import Traffic

from replay.codec import encode
from replay.redact import redact
from replay.store import Store

COMMANDS = {
    "ls": ["ls"],
    "ls --json": ["ls", "--json"],
    "stats --json": ["stats", "--json"],
    "verify": ["verify"],
}


def build(root: Path, count: int, namespaces: int) -> float:
    started = time.perf_counter()
    store = Store(root)
    for n, interaction in enumerate(Traffic().interactions(count, namespaces)):
        path = store.path_for(interaction.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(redact(interaction)))
        if n and n % 10000 == 0:
            print(f"  built {n} files", file=sys.stderr)
    return time.perf_counter() - started


def run(args: list[str]) -> tuple[float, int, int]:
    """(seconds, exit code, peak RSS in KB) of `replay ARGS`, output discarded."""
    cmd = [sys.executable, "-m", "replay", *args]
    started = time.perf_counter()
    with open(os.devnull, "wb") as null:
        proc = subprocess.Popen(cmd, stdout=null, stderr=null)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, proc.returncode, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--keep", action="store_true", help="keep the store and print its path")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    try:
        root = tmp / "cassettes"
        built = build(root, args.count, args.namespaces)
        size = sum(p.stat().st_size for p in root.rglob("*.zst"))
        print(f"store: {args.count} files, {size / 2**20:.1f} MiB, built in {built:.1f} s")
        rows, results = [], {}
        for name, cmd in COMMANDS.items():
            seconds, code, rss = run([*cmd, "--dir", str(root)])
            if code != 0:
                sys.exit(f"replay {name} exited {code}")
            rows.append(
                (name, f"{seconds:.1f}", f"{args.count / seconds:,.0f}", f"{rss / 1024:.0f}")
            )
            results[name] = {"seconds": seconds, "files_per_s": args.count / seconds, "rss_kb": rss}
        print(table(["command", "wall s", "files/s", "peak RSS MiB"], rows))
        write_results("bench_cli", {"count": args.count, "bytes": size, "commands": results})
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
