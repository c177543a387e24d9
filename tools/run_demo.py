"""`make run`: serve the example cassettes in cassettes/ and print how to point an app at them.

Makes sure mitmproxy's CA exists in the confdir (default ~/.mitmproxy, where mitmdump looks),
writes `replay-ca-bundle.pem` beside it (the system's root certificates plus that CA:
SSL_CERT_FILE *replaces* a client's trust store), prints the variables and two examples to
paste into another shell, then becomes `mitmdump --listen-host 127.0.0.1 -p PORT -s
addons/replay.py --set replay_dir=cassettes` (replay mode, default miss policy) until Ctrl-C.
Arguments after `--` go to mitmdump (`-- --set replay_speed=0`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import ssl
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUNDLE_NAME = "replay-ca-bundle.pem"
CURL_EXAMPLE = """\
curl -s https://api.openai.com/v1/chat/completions -H 'content-type: application/json' \\
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}'"""
"""The README's first example, verbatim (tests/e2e/test_examples.py checks it)."""
PYTHON_EXAMPLE = (
    'python3 -c \'from openai import OpenAI; print(OpenAI(api_key="sk-not-needed-for-replay")'
    '.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", '
    '"content": "Say hello"}]).choices[0].message.content)\''
)


def system_roots() -> Path:
    """The system's CA file (OpenSSL's compiled-in default, not $SSL_CERT_FILE), else certifi's."""
    default = ssl.get_default_verify_paths().openssl_cafile
    if default and Path(default).is_file():
        return Path(default)
    import certifi  # a mitmproxy dependency

    return Path(certifi.where())


def write_bundle(confdir: Path) -> Path:
    """Create mitmproxy's CA in `confdir` if missing; write roots + CA to BUNDLE_NAME there."""
    from mitmproxy.certs import CertStore

    confdir.mkdir(parents=True, exist_ok=True)
    ca = confdir / "mitmproxy-ca-cert.pem"
    if not ca.is_file():
        CertStore.from_store(confdir, "mitmproxy", 2048)  # what mitmdump does at its first start
    bundle = confdir / BUNDLE_NAME
    parts = [system_roots().read_bytes(), ca.read_bytes()]
    bundle.write_bytes(b"".join(p.rstrip(b"\n") + b"\n" for p in parts))
    return bundle


def instructions(port: int, bundle: Path) -> str:
    b = shlex.quote(str(bundle))
    return f"""\
replay: serving the example cassettes in {ROOT / "cassettes"} on 127.0.0.1:{port}
(replay mode, recorded timing; Ctrl-C stops). In another shell:

export HTTPS_PROXY=http://127.0.0.1:{port}
export SSL_CERT_FILE={b}
export REQUESTS_CA_BUNDLE=$SSL_CERT_FILE CURL_CA_BUNDLE=$SSL_CERT_FILE
{CURL_EXAMPLE}
{PYTHON_EXAMPLE}   # pip install openai

Answers carry `x-replay: hit` (curl -D - shows it); an unrecorded request gets a made-up
answer marked `x-replay: synthetic`, logged here with its nearest recording. More examples:
README.md, "Try it against the shipped cassettes".
"""


def mitmdump_argv(port: int, confdir: Path, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from mitmproxy.tools.main import mitmdump; mitmdump()",
        "--set",
        f"confdir={confdir}",
        "--listen-host",
        "127.0.0.1",
        "-p",
        str(port),
        "-s",
        str(ROOT / "addons" / "replay.py"),
        "--set",
        f"replay_dir={ROOT / 'cassettes'}",
        *extra,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--confdir",
        type=Path,
        default=Path("~/.mitmproxy"),
        help="mitmproxy's confdir, where its CA lives (default ~/.mitmproxy)",
    )
    parser.add_argument(
        "--print-only",
        action="store_true",
        help="write the bundle and print the instructions, do not serve",
    )
    parser.add_argument("mitmdump_args", nargs="*", help="after --: more mitmdump arguments")
    args = parser.parse_args(argv)
    confdir = args.confdir.expanduser().resolve()
    bundle = write_bundle(confdir)
    print(instructions(args.port, bundle), flush=True)
    if args.print_only:
        return 0
    cmd = mitmdump_argv(args.port, confdir, args.mitmdump_args)
    os.execv(cmd[0], cmd)  # mitmdump takes over this process: Ctrl-C goes straight to it


if __name__ == "__main__":
    sys.exit(main())
