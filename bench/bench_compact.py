"""Size of a store against the same traffic as a VCR.py YAML cassette, before and after
`replay compact` (dictionary included).

Run: python bench/bench_compact.py [--count N] [--size BYTES]

Writes N mixed interactions (bench/_traffic.py: chat JSON and SSE, tool calls, Anthropic
streams, embeddings) through `redact` and `Store.put` as the proxy does, serializes the same
traffic with vcrpy's YAML serializer, then runs `replay compact` on the store through its
command line. Reports bytes and the ratio YAML / store, the dictionary counted in. Goal:
>= 8x after compact for 1,000 interactions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _common import table, write_results
from _traffic import Traffic, vcr_yaml
from click.testing import CliRunner

from replay.cli import main as cli
from replay.redact import redact
from replay.store import Store


def store_bytes(root: Path) -> tuple[int, int]:
    files = sum(p.stat().st_size for p in root.rglob("*.zst"))
    dicts = sum(p.stat().st_size for p in root.glob("*.dict"))
    return files, dicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=16 * 1024, help="dictionary size")
    args = parser.parse_args()

    interactions = list(Traffic().interactions(args.count))
    yaml_size = len(vcr_yaml(interactions).encode())
    with tempfile.TemporaryDirectory(prefix="bench-compact-") as tmp:
        root = Path(tmp) / "cassettes"
        with Store(root) as store:
            for i in interactions:
                store.put(redact(i))
        plain, _ = store_bytes(root)
        started = time.perf_counter()
        result = CliRunner().invoke(cli, ["compact", "--dir", str(root), "--size", str(args.size)])
        seconds = time.perf_counter() - started
        if result.exit_code != 0:
            sys.exit(f"compact failed: {result.output}")
        files, dicts = store_bytes(root)
        verify = CliRunner().invoke(cli, ["verify", "--dir", str(root)])
        if verify.exit_code != 0:
            sys.exit(f"verify failed after compact: {verify.output}")

    rows = [
        ("VCR.py YAML cassette", yaml_size, "1.00x"),
        ("store, no dictionary", plain, f"{yaml_size / plain:.2f}x"),
        (
            "store after compact, dictionary included",
            files + dicts,
            f"{yaml_size / (files + dicts):.2f}x",
        ),
        ("  of which the dictionary", dicts, ""),
    ]
    print(f"{args.count} interactions; compact took {seconds:.2f} s")
    print(table(["what", "bytes", "smaller than YAML"], rows))
    write_results(
        "bench_compact",
        {
            "count": args.count,
            "dictionary_size": args.size,
            "yaml_bytes": yaml_size,
            "store_bytes": plain,
            "compacted_bytes": files,
            "dictionary_bytes": dicts,
            "ratio_plain": yaml_size / plain,
            "ratio_compacted": yaml_size / (files + dicts),
            "compact_seconds": seconds,
        },
    )


if __name__ == "__main__":
    main()
