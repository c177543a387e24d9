"""Root test configuration: keeps the process environment free of proxy, CA and SDK settings."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from support.proxy import MANAGED_VARS


@pytest.fixture(autouse=True)
def clean_environ() -> Iterator[None]:
    """Remove proxy/CA/SDK variables for every test and restore ``os.environ`` afterwards.

    This machine (and CI) export SSL_CERT_FILE & co. and maybe HTTP(S)_PROXY; a test that needs
    any of them sets it explicitly (``support.proxy.apply_env``).
    """
    original = os.environ.copy()
    for name in MANAGED_VARS:
        os.environ.pop(name, None)
    yield
    os.environ.clear()
    os.environ.update(original)
