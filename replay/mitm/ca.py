"""mitmproxy's CA in a confdir: created on first use, exactly as mitmdump would create it.

Owns `ensure_ca` only; the combined trust bundle clients get is `replay.clientenv`'s.
"""

from __future__ import annotations

from pathlib import Path

from mitmproxy.certs import CertStore

CA_CERT = "mitmproxy-ca-cert.pem"
"""The CA certificate (no key) that clients must trust."""


def ensure_ca(confdir: Path) -> Path:
    """The path of the CA certificate in `confdir`, creating the CA (and confdir) if missing."""
    confdir.mkdir(parents=True, exist_ok=True)
    cert = confdir / CA_CERT
    if not cert.is_file():
        CertStore.from_store(confdir, "mitmproxy", 2048)
    return cert
