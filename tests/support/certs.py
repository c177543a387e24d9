"""Owns the test PKI: a trustme CA and one leaf for every provider host the fake upstream serves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme

PROVIDER_HOSTS: tuple[str, ...] = (
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
)
LEAF_NAMES: tuple[str, ...] = (*PROVIDER_HOSTS, "ollama.test", "localhost", "127.0.0.1")
"""`ollama.test`: a self-hosted Ollama behind TLS (its `/api/...` paths are handled on any host)."""


@dataclass(frozen=True)
class TestCerts:
    """Paths of the PEM files written by :func:`make_certs`."""

    __test__ = False  # not a pytest test class, despite the name

    ca_cert: Path
    """The test CA certificate (trust this to verify the fake upstream)."""
    leaf_cert: Path
    """The leaf certificate chain (leaf first, then the CA)."""
    leaf_key: Path
    """The leaf's private key (unencrypted PKCS#8)."""


def make_certs(directory: Path, names: tuple[str, ...] = LEAF_NAMES) -> TestCerts:
    """Create a fresh CA and a leaf for ``names`` and write them as PEM files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="replay test CA")
    leaf = ca.issue_cert(*names)
    certs = TestCerts(
        ca_cert=directory / "test-ca.pem",
        leaf_cert=directory / "test-leaf.pem",
        leaf_key=directory / "test-leaf-key.pem",
    )
    ca.cert_pem.write_to_path(str(certs.ca_cert))
    leaf.private_key_pem.write_to_path(str(certs.leaf_key))
    certs.leaf_cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return certs
