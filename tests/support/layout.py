"""Where a store keeps a key's file, written from docs/format.md (not from the store's code):
the oracle of tests that find, corrupt or remove a cassette file."""

from __future__ import annotations

from pathlib import Path

from replay.models import Key
from replay.store import Store


def path_of(store: Store, key: Key) -> Path:
    """`<root>/<namespace>/<first two hex digits>/<fingerprint>.<occurrence>.zst`."""
    namespace = key.namespace or "default"
    return store.root / namespace / key.fingerprint[:2] / f"{key.fingerprint}.{key.occurrence}.zst"
