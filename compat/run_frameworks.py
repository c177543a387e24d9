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

With `--record-replay` a second pass follows: the same suites through proxies in record mode
whose upstream connections go to proxies serving synthetic answers (one pinned in for every
provider host, one listening on Ollama's own port 11434: the fake upstream of this pass, as
`tests/support/fake_upstream.py` answers only chat text, so agents, JSON and embeddings could
not run against it), then again through replay-mode proxies (`replay_miss=error`) over what
was recorded; those reports must show only `hit`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
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
OLLAMA_PORT = 11434
OLLAMA_UPSTREAM = f"http://127.0.0.1:{OLLAMA_PORT}"
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


IGNORE = "prompt_cache_key"
"""Left out of the key: the OpenAI Agents SDK sends a new `prompt_cache_key` every run."""


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
        "--set",
        f"replay_ignore={IGNORE}",
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


def run_suites(venvs: Mapping[Path, list[str]], proxy: Proxy, ollama: Proxy, bundle: Path) -> int:
    env = subprocess_env({**client_env(proxy, bundle), **OFFLINE_ENV})
    env["REPLAY_OLLAMA_URL"] = ollama.url
    # As on a developer's machine, local servers bypass the proxy (so Ollama is reached
    # through the reverse-mode proxy, not through both).
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
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
    """Replay mode over an empty store: only synthetic answers."""
    failures, seen = proxied_run(venvs, work, bundle, "synthetic", "replay", work / "empty")
    return failures == 0 and set(seen) == {"synthetic"}


def synthetic_upstream(conf: Path, report: Path, target: str, *extra: str) -> Proxy:
    """A reverse-mode proxy that answers everything synthetically (TLS or plain, as the
    client speaks), keeping the client's Host: the upstream of the record pass."""
    args = addon_args(conf / "none", report, "replay", "--set", "replay_hosts=*")
    mode = ["--mode", f"reverse:{target}", "--set", "keep_host_header=true", *extra]
    return start_mitmdump([*mode, *args], conf, cwd=ROOT)


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def record_replay_pass(venvs: Mapping[Path, list[str]], work: Path, bundle: Path) -> bool:
    """Record through a synthetic upstream, then replay: every answer a hit.

    The recorder's upstream connections are pinned (tests/support/pin_hosts.py) to a proxy
    answering synthetically; the "local Ollama" is a synthetic proxy listening on Ollama's
    own port, so that recorded and replayed requests name the same upstream host."""
    if not port_free(OLLAMA_PORT):
        print(f"== record pass: port {OLLAMA_PORT} is taken (a real Ollama?): not run")
        return False
    upstream_conf = work / "upstream-conf"
    store = work / "recorded"
    upstream = synthetic_upstream(upstream_conf, work / "upstream.jsonl", "https://up.invalid")
    local = synthetic_upstream(
        upstream_conf, work / "upstream-ollama.jsonl", "http://up.invalid", "-p", str(OLLAMA_PORT)
    )
    pin = [
        "-s",
        str(ROOT / "compat" / "one_request_per_connection.py"),
        "-s",
        str(PIN_HOSTS),
        "--set",
        f"pin_upstream=127.0.0.1:{upstream.port}",
        "--set",
        f"ssl_verify_upstream_trusted_ca={ensure_mitm_ca(upstream_conf)}",
    ]
    try:
        recorded = proxied_run(venvs, work, bundle, "record", "record", store, *pin)
    finally:
        local.stop()
        upstream.stop()
    replayed = proxied_run(
        venvs, work, bundle, "hits", "replay", store, "--set", "replay_miss=error"
    )
    print(f"== record pass: {dict(recorded[1])}; replay pass: {dict(replayed[1])}")
    return (
        recorded[0] == replayed[0] == 0
        and set(recorded[1]) == {"recorded"}
        and set(replayed[1]) == {"hit"}
    )


def proxied_run(
    venvs: Mapping[Path, list[str]],
    work: Path,
    bundle: Path,
    name: str,
    mode: str,
    store: Path,
    *extra: str,
) -> tuple[int, Counter[str]]:
    """The suites through a regular and a reverse (Ollama) proxy in `mode` over `store` (the
    second in its own namespace: one proxy writes a namespace at a time): the number of
    venvs that failed, and the outcomes both reports show."""
    confdir = work / "conf"
    reports = (work / f"{name}.jsonl", work / f"{name}-ollama.jsonl")
    proxy = start_mitmdump([*addon_args(store, reports[0], mode), *extra], confdir, cwd=ROOT)
    try:
        ollama = start_mitmdump(
            [
                "--mode",
                f"reverse:{OLLAMA_UPSTREAM}",
                *addon_args(store, reports[1], mode, "--set", "replay_cassette=ollama"),
                *extra,
            ],
            confdir,
            cwd=ROOT,
        )
        try:
            failures = run_suites(venvs, proxy, ollama, bundle)
        finally:
            ollama.stop()
    finally:
        proxy.stop()
    seen = outcomes(*reports)
    print(f"== {name} pass ({mode} mode): {failures} venv(s) failed; outcomes {dict(seen)}")
    return failures, seen


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
