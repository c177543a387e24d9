"""The SDK matrix's fixture: `harness()` makes an in-process harness answering through the
engine (support/inprocess.py), each over its own empty store; all are closed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.inprocess import Harnesses


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harnesses]:
    made = Harnesses(tmp_path)
    yield made
    made.close()
