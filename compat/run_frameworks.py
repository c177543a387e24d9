"""Run the framework matrix (`compat/frameworks.py`) through real mitmdump proxies.

Run with the project's venv, from the repository root (`make compat-frameworks` does it):

    .venv/bin/python compat/run_frameworks.py VENV=SUITE[,SUITE...] ...

e.g. `.venv-fw-langchain=langchain,instructor`. It starts two mitmdump processes with the
addon in replay mode over an empty store, each writing a report (`replay_report`): one in
regular mode, reached through HTTPS_PROXY/HTTP_PROXY, and one in reverse mode in front of a
"local" Ollama (`http://127.0.0.1:11434`, which clients reach directly because of NO_PROXY;
no Ollama runs: replay never connects upstream). Each venv then runs its suites with the
environment docs/frameworks.md describes. The run passes when every check passed and both
reports show only `synthetic` answers (no miss, no error, no forward).

With `--record-replay` a second pass follows: the same suites through a proxy in record mode
whose upstream is a third proxy serving synthetic answers (the fake upstream of this pass:
`tests/support/fake_upstream.py` answers only chat text, so agents, JSON and embeddings could
not run against it), then again through a replay-mode proxy over what was recorded; that
last report must show only `hit`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.proxy import (  # noqa: E402
    Proxy,
    ca_bundle,
    client_env,
    ensure_mitm_ca,
    start_mitmdump,
    subprocess_env,
)

ADDON = ROOT / "addons" / "replay.py"
PIN_HOSTS = ROOT / "tests" / "support" / "pin_hosts.py"
OLLAMA_UPSTREAM = "http://127.0.0.1:11434"
SUITE_TIMEOUT = 900.0

OFFLINE_ENV = {
    "OPENAI_API_KEY": "sk-replay-compat",
    "ANTHROPIC_API_KEY": "sk-ant-replay-compat",
    "GEMINI_API_KEY": "replay-compat",
    "GOOGLE_API_KEY": "replay-compat",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "OPENAI_AGENTS_DISABLE_TRACING": "1",
    "LOGFIRE_IGNORE_NO_CONFIG": "1",
    "PYTHONUNBUFFERED": "1",
}


def addon_args(store: Path, report: Path, mode: str, *extra: str) -> list[str]:
    return [
        "-s",
        str(ADDON),
        "--set",
        f"replay_mode={mode}",
        "--set",
        f"replay_dir={store}",
        "--set",
        f"replay_report={report}",
        "--set",
        "replay_speed=0",
        "--set",
        "connection_strategy=lazy",
        *extra,
    ]


def outcomes(*reports: Path) -> Counter[str]:
    seen: Counter[str] = Counter()
    for report in reports:
        if report.exists():
            for line in report.read_text().splitlines():
                if line.strip():
                    seen[json.loads(line)["outcome"]] += 1
    return seen


def run_suites(
    venvs: Mapping[Path, list[str]], proxy: Proxy, ollama: Proxy, bundle: Path
) -> int:
    env = subprocess_env({**client_env(proxy, bundle), **OFFLINE_ENV})
    env["REPLAY_OLLAMA_URL"] = ollama.url
    failures = 0
    for venv, suites in venvs.items():
        python = venv / "bin" / "python"
        print(f"== {venv.name}: {', '.join(suites)}", flush=True)
        done = subprocess.run(
            [str(python), str(ROOT / "compat" / "frameworks.py"), *suites],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            timeout=SUITE_TIMEOUT,
            check=False,
        )
        failures += done.returncode != 0
    return failures


def synthetic_pass(venvs: Mapping[Path, list[str]], work: Path, bundle: Path) -> bool:
    confdir = work / "conf"
    reports = (work / "report.jsonl", work / "report-ollama.jsonl")
    store = work / "empty-store"
    proxy = start_mitmdump(addon_args(store, reports[0], "replay"), confdir, cwd=ROOT)
    ollama = start_mitmdump(
        ["--mode", f"reverse:{OLLAMA_UPSTREAM}", *addon_args(store, reports[1], "replay")],
        confdir,
        cwd=ROOT,
    )
    try:
        failures = run_suites(venvs, proxy, ollama, bundle)
    finally:
        ollama.stop()
        proxy.stop()
    seen = outcomes(*reports)
    print(f"== synthetic pass: {failures} venv(s) failed; report outcomes {dict(seen)}")
    return failures == 0 and set(seen) == {"synthetic"}


def record_replay_pass(venvs: Mapping[Path, list[str]], work: Path, bundle: Path) -> bool:
    """Record through a synthetic upstream, then replay: every answer a hit."""
    confdir = work / "conf"
    upstream_conf = work / "upstream-conf"
    store = work / "recorded"
    upstream_report, record_report = work / "upstream.jsonl", work / "record.jsonl"
    upstream_ca = ensure_mitm_ca(upstream_conf)
    # The upstream: a reverse-mode proxy answering everything synthetically over TLS.
    upstream = start_mitmdump(
        [
            "--mode",
            "reverse:https://upstream.invalid",
            "--set",
            "keep_host_header=true",
            *addon_args(work / "none", upstream_report, "replay", "--set", "replay_hosts=*"),
        ],
        upstream_conf,
        cwd=ROOT,
    )
    pin = [
        "-s",
        str(PIN_HOSTS),
        "--set",
        f"pin_upstream=127.0.0.1:{upstream.port}",
        "--set",
        f"ssl_verify_upstream_trusted_ca={upstream_ca}",
    ]
    recorder = start_mitmdump([*pin, *addon_args(store, record_report, "record")], confdir, cwd=ROOT)
    ollama = start_mitmdump(
        ["--mode", f"reverse:{OLLAMA_UPSTREAM}", *pin, *addon_args(store, record_report.with_suffix(".ollama"), "record")],
        confdir,
        cwd=ROOT,
    )
    try:
        failures = run_suites(venvs, recorder, ollama, bundle)
    finally:
        ollama.stop()
        recorder.stop()
        upstream.stop()
    recorded = outcomes(record_report, record_report.with_suffix(".ollama"))
    print(f"== record pass: {failures} venv(s) failed; outcomes {dict(recorded)}")
    replay_reports = (work / "replay.jsonl", work / "replay-ollama.jsonl")
    proxy = start_mitmdump(addon_args(store, replay_reports[0], "replay", "--set", "replay_miss=error"), confdir, cwd=ROOT)
    ollama = start_mitmdump(
        ["--mode", f"reverse:{OLLAMA_UPSTREAM}", *addon_args(store, replay_reports[1], "replay", "--set", "replay_miss=error")],
        confdir,
        cwd=ROOT,
    )
    try:
        failures += run_suites(venvs, proxy, ollama, bundle)
    finally:
        ollama.stop()
        proxy.stop()
    replayed = outcomes(*replay_reports)
    print(f"== replay pass: {failures} venv(s) failed in all; outcomes {dict(replayed)}")
    return failures == 0 and set(recorded) == {"recorded"} and set(replayed) == {"hit"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="VENV=SUITE[,SUITE...]")
    parser.add_argument("--record-replay", action="store_true", help="also the second pass")
    args = parser.parse_args()
    venvs: dict[Path, list[str]] = {}
    for run in args.runs:
        venv, _, suites = run.partition("=")
        venvs[Path(venv).resolve()] = suites.split(",")
    with tempfile.TemporaryDirectory(prefix="replay-compat-") as tmp:
        work = Path(tmp)
        bundle = ca_bundle(work / "conf")
        ok = synthetic_pass(venvs, work, bundle)
        if args.record_replay:
            ok = record_replay_pass(venvs, work, bundle) and ok
    print("== compat-frameworks:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
