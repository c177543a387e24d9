"""The environment a client needs to go through a running replay proxy.

Owns the variable names and values that `replay env` prints and `replay run` gives its
command: the proxy URL (upper and lower case, as clients read one or the other), NO_PROXY,
the CA variables pointing at one combined bundle (the system roots plus mitmproxy's CA,
since SSL_CERT_FILE replaces a client's trust store), and in reverse mode the provider's
base-URL variable. Does not create mitmproxy's CA (`replay.mitm.ca` does) or start anything.
"""

from __future__ import annotations

import os
import shlex
import ssl
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from replay.errors import ConfigError

NO_PROXY = "localhost,127.0.0.1,::1"
"""Local services of the app stay direct (a local Ollama is recorded through reverse mode)."""
PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")
CA_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")
BUNDLE_NAME = "replay-ca-bundle.pem"
"""The combined bundle, kept in mitmproxy's confdir beside the CA."""

_BASE_URLS: tuple[tuple[str, str, str], ...] = (
    # (host suffix, variable, path the SDK expects after the host)
    ("api.openai.com", "OPENAI_BASE_URL", "/v1"),
    ("openai.azure.com", "AZURE_OPENAI_ENDPOINT", ""),
    ("api.anthropic.com", "ANTHROPIC_BASE_URL", ""),
    ("generativelanguage.googleapis.com", "GOOGLE_GEMINI_BASE_URL", ""),
)
OLLAMA_PORT = 11434


def system_roots() -> Path:
    """The system's CA file as OpenSSL was built with it (never an environment override,
    which may already be a bundle of ours), else certifi's."""
    paths = ssl.get_default_verify_paths()
    if paths.openssl_cafile and os.path.isfile(paths.openssl_cafile):
        return Path(paths.openssl_cafile)
    import certifi

    return Path(certifi.where())


def write_bundle(confdir: Path, ca_cert: Path) -> Path:
    """Write the system roots plus `ca_cert` to `confdir/BUNDLE_NAME` (atomically); its path."""
    parts = [system_roots().read_bytes(), ca_cert.read_bytes()]
    data = b"".join(p.rstrip(b"\n") + b"\n" for p in parts)
    dest = confdir / BUNDLE_NAME
    if dest.is_file() and dest.read_bytes() == data:
        return dest
    fd, tmp = tempfile.mkstemp(prefix=".replay-ca-", dir=confdir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def proxy_env(proxy_url: str, bundle: Path) -> dict[str, str]:
    """The variables for a client of a regular (forward) proxy at `proxy_url`."""
    env: dict[str, str] = {}
    for name in ("HTTPS_PROXY", "HTTP_PROXY"):
        env[name] = env[name.lower()] = proxy_url
    env["NO_PROXY"] = env["no_proxy"] = NO_PROXY
    env.update(ca_env(bundle))
    return env


def ca_env(bundle: Path) -> dict[str, str]:
    return {name: str(bundle) for name in CA_VARS}


def check_upstream(url: str) -> str:
    """`url` if it is `http(s)://host[:port]` (no path, query or credentials), else ConfigError."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    bad = (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == -1
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
    )
    if bad:
        raise ConfigError(f"--upstream {url!r}: expected http(s)://host[:port], without a path")
    return f"{parts.scheme}://{parts.netloc}"


def base_url_env(upstream: str, proxy_url: str) -> dict[str, str]:
    """The base-URL variable(s) that point an SDK at a reverse proxy toward `upstream`.

    REPLAY_BASE_URL is always set; a known provider host adds its SDK's variable, a port
    11434 (Ollama's) adds OLLAMA_HOST, and any other host is taken as OpenAI-compatible.
    """
    parts = urlsplit(upstream)
    host = (parts.hostname or "").lower()
    env = {"REPLAY_BASE_URL": proxy_url}
    for suffix, name, path in _BASE_URLS:
        if host == suffix or host.endswith("." + suffix):
            env[name] = proxy_url + path
            return env
    if parts.port == OLLAMA_PORT:
        env["OLLAMA_HOST"] = proxy_url
    else:
        env["OPENAI_BASE_URL"] = proxy_url + "/v1"
    return env


def export_lines(env: dict[str, str]) -> list[str]:
    """`export NAME=value` lines, values quoted for a POSIX shell."""
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
