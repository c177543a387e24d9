"""End-to-end fixtures: test PKI, mitmproxy confdir and CA bundle, the fake upstream, and a
factory for mitmdump subprocesses pinned to that upstream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.certs import TestCerts, make_certs
from support.fake_upstream import FakeUpstream
from support.proxy import Proxy as Proxy
from support.proxy import ProxyFactory, apply_env, ca_bundle, client_env, ensure_mitm_ca

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TestCerts:
    """The test CA and the fake upstream's leaf (provider hosts, localhost, 127.0.0.1)."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mitmproxy confdir whose CA exists before any mitmdump starts."""
    path = tmp_path_factory.mktemp("mitm-confdir")
    ensure_mitm_ca(path)
    return path


@pytest.fixture(scope="session")
def bundle(confdir: Path, certs: TestCerts) -> Path:
    """certifi roots + mitmproxy's CA + the test CA, for SSL_CERT_FILE and friends."""
    return ca_bundle(confdir, certs.ca_cert)


@pytest.fixture
def fake_upstream(certs: TestCerts) -> Iterator[FakeUpstream]:
    """A started fake provider upstream, stopped after the test."""
    upstream = FakeUpstream(certs).start()
    try:
        yield upstream
    finally:
        upstream.stop()


@pytest.fixture
def proxy_factory(confdir: Path, certs: TestCerts) -> Iterator[ProxyFactory]:
    """``proxy_factory(*args, upstream_port=PORT)`` starts mitmdump pinned to the fake upstream;
    every proxy it started is stopped at teardown (its output is printed, shown on failure)."""
    factory = ProxyFactory(confdir=confdir, test_ca=certs.ca_cert, cwd=REPO_ROOT)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def proxy_env(
    monkeypatch: pytest.MonkeyPatch, bundle: Path
) -> Callable[[Proxy | None], dict[str, str]]:
    """``proxy_env(proxy)`` puts the client variables for ``proxy`` (None: reverse mode, no proxy)
    into ``os.environ`` for this test and returns them. Build SDK clients afterwards."""

    def use(proxy: Proxy | None) -> dict[str, str]:
        env = client_env(proxy, bundle)
        apply_env(monkeypatch, env)
        return env

    return use
