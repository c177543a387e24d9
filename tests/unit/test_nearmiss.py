"""replay.nearmiss: the nearest recorded request of a namespace and its first difference,
an index that sees new and removed files, skips corrupt ones, and reads each file once."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.layout import path_of

import replay.nearmiss as nearmiss_module
from replay import codec
from replay.fingerprint import FingerprintPolicy, fingerprint, material
from replay.models import Chunk, Interaction, Key, Provenance, Request, ResponseHead
from replay.nearmiss import NearMissIndex
from replay.redact import redact
from replay.store import Store

POLICY = FingerprintPolicy()


def chat(
    content: str = "hello",
    model: str = "gpt-4o-mini",
    path: str = "/v1/chat/completions",
    method: str = "POST",
    extra: dict[str, Any] | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    query: tuple[tuple[str, str], ...] = (),
) -> Request:
    payload: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": content},
        ],
        **(extra or {}),
    }
    return Request(
        method=method,
        scheme="https",
        host="api.openai.com",
        port=443,
        path=path,
        query=query,
        headers=(("content-type", "application/json"), *headers),
        body=json.dumps(payload).encode() if method == "POST" else b"",
    )


def record(store: Store, req: Request, occurrence: int = 0, namespace: str = "default") -> str:
    fp = fingerprint(req, POLICY).hex
    interaction = Interaction(
        key=Key(namespace, fp, occurrence),
        fingerprint_version=1,
        ignore=(),
        request=req,
        response=ResponseHead(200, "OK", "HTTP/1.1", (("content-type", "application/json"),)),
        ttfb=0.01,
        chunks=(Chunk(0.0, b'{"ok":true}'),),
        complete=True,
        provenance=Provenance("2026-01-01T00:00:00Z", "openai", None, None, 200, "0.1.0"),
    )
    store.put(redact(interaction))
    store.flush()
    return fp


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "cassettes") as s:
        yield s


@pytest.fixture
def index(store: Store) -> NearMissIndex:
    return NearMissIndex(store, POLICY)


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file the index decodes, by path."""
    reads: list[str] = []
    real = codec.decode

    def spy(data: bytes, path: str = "<bytes>", limit: int = 2**26) -> Interaction:
        reads.append(path)
        return real(data, path, limit)

    monkeypatch.setattr(nearmiss_module, "decode", spy)
    return reads


def test_empty_or_missing_namespace_has_no_nearest(index: NearMissIndex, store: Store) -> None:
    assert index.nearest("default", chat()) is None
    record(store, chat(), namespace="other")
    assert index.nearest("default", chat()) is None
    assert index.nearest("nowhere", chat()) is None


def test_a_bad_namespace_has_no_nearest(index: NearMissIndex) -> None:
    assert index.nearest("../up", chat()) is None


def test_one_differing_field_is_named(index: NearMissIndex, store: Store) -> None:
    fp = record(store, chat("hello"))
    record(store, chat("something else entirely", model="gpt-4o", extra={"temperature": 1}))
    found = index.nearest("default", chat("hullo"))
    assert found is not None
    assert found.fingerprint == fp and found.occurrence == 0
    assert found.method == "POST" and found.url == "https://api.openai.com/v1/chat/completions"
    assert found.field == "body.json.messages.1.content"


def test_fewest_differing_leaves_wins_over_fingerprint_order(
    index: NearMissIndex, store: Store
) -> None:
    close = record(store, chat("hello", extra={"temperature": 0}))
    far = record(store, chat("bye", model="other", extra={"temperature": 1, "top_p": 1}))
    wanted = chat("hello", extra={"temperature": 0.5})
    found = index.nearest("default", wanted)
    assert found is not None and found.fingerprint == close
    assert found.field == "body.json.temperature"
    # and the other way round, whichever fingerprint sorts first
    found = index.nearest("default", chat("bye", model="other", extra={"temperature": 1}))
    assert found is not None and found.fingerprint == far
    assert found.field == "body.json.top_p"


def test_ties_go_to_the_lowest_fingerprint(index: NearMissIndex, store: Store) -> None:
    fps = [record(store, chat(c)) for c in ("a", "b", "c")]
    found = index.nearest("default", chat("d"))
    assert found is not None and found.fingerprint == min(fps)


def test_same_method_and_path_is_preferred(index: NearMissIndex, store: Store) -> None:
    same_path = record(store, chat("x", model="m2", extra={"n": 2, "seed": 3, "stop": ["a"]}))
    record(store, chat("hello", path="/v1/completions"))
    found = index.nearest("default", chat("hello"))
    assert found is not None and found.fingerprint == same_path
    # with no recording on that path, the nearest other path is still named
    found = index.nearest("default", chat("hello", path="/v1/responses"))
    assert found is not None and found.url.endswith("/v1/completions")
    assert found.field == "path"


def test_method_counts_too(index: NearMissIndex, store: Store) -> None:
    get = record(store, chat(method="GET", path="/v1/models"))
    record(store, chat("a much longer prompt", path="/v1/models"))
    found = index.nearest(
        "default", Request("GET", "https", "api.openai.com", 443, "/v1/models", (), (), b"")
    )
    assert found is not None and found.fingerprint == get and found.method == "GET"
    assert found.field is None


def test_header_and_query_differences_are_named(index: NearMissIndex, store: Store) -> None:
    record(store, chat(headers=(("anthropic-version", "2023-06-01"),)))
    found = index.nearest("default", chat(headers=(("anthropic-version", "2026-10-21"),)))
    assert found is not None and found.field == "headers.anthropic-version"
    record(store, chat("q", query=(("api-version", "2024-10-21"),)), namespace="azure")
    found = index.nearest("azure", chat("q", query=(("api-version", "2025-01-01"),)))
    assert found is not None and found.field == "query.0.1"


def test_new_files_after_the_first_search_are_seen(index: NearMissIndex, store: Store) -> None:
    record(store, chat("first", model="other"))
    found = index.nearest("default", chat("second"))
    assert found is not None and found.field == "body.json.messages.1.content"
    later = record(store, chat("second", extra={"user": "u"}))
    found = index.nearest("default", chat("second"))
    assert found is not None and found.fingerprint == later and found.field == "body.json.user"


def test_the_index_is_built_on_the_first_miss_never_before(
    index: NearMissIndex, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for c in ("a", "b"):
        record(store, chat(c))
    reads = count_reads(monkeypatch)
    listed = []
    real_entries = store.entries
    monkeypatch.setattr(store, "entries", lambda *a: listed.append(a) or real_entries(*a))
    index.warm("default")  # kept for old callers: reads and lists nothing
    index.warm("../bad")
    assert reads == [] and listed == [] and len(index) == 0
    assert index.nearest("default", chat("c")) is not None
    assert len(reads) == 3 and len(index) == 2  # both indexed, then the winner re-read


def test_removed_files_are_forgotten(index: NearMissIndex, store: Store) -> None:
    gone = record(store, chat("hello"))
    kept = record(store, chat("bye", model="x"))
    assert (found := index.nearest("default", chat("hello!"))) and found.fingerprint == gone
    path_of(store, Key("default", gone, 0)).unlink()
    found = index.nearest("default", chat("hello!"))
    assert found is not None and found.fingerprint == kept
    assert len(index) == 1


def test_a_file_removed_between_listing_and_report_is_skipped(
    index: NearMissIndex, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    best = record(store, chat("hello"))
    other = record(store, chat("bye", model="x"))
    assert index.nearest("default", chat("hello!")) is not None
    real_refresh = NearMissIndex._refresh

    def refresh_then_remove(self: NearMissIndex, namespace: str) -> Any:
        ns = real_refresh(self, namespace)
        path_of(store, Key("default", best, 0)).unlink(missing_ok=True)
        return ns

    monkeypatch.setattr(NearMissIndex, "_refresh", refresh_then_remove)
    found = index.nearest("default", chat("hello!"))
    assert found is not None and found.fingerprint == other


def test_each_file_is_read_once(
    index: NearMissIndex, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fps = [record(store, chat(c)) for c in ("a", "b", "c")]
    record(store, chat("a"), occurrence=1)
    reads = count_reads(monkeypatch)
    index.nearest("default", chat("z"))
    # one per fingerprint (not per occurrence), plus the winner's re-read for its field
    assert len(reads) == 4 and len(set(reads)) == 3
    reads.clear()
    index.nearest("default", chat("z"))
    assert len(reads) == 1  # only the winner
    assert str(path_of(store, Key("default", min(fps), 0))) == reads[0]


def test_corrupt_files_are_skipped_and_retried_when_they_change(
    index: NearMissIndex, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    good = record(store, chat("bye", model="x", extra={"n": 1}))
    bad = record(store, chat("hello"))
    path = path_of(store, Key("default", bad, 0))
    original = path.read_bytes()
    path.write_bytes(b"not zstd at all")
    with caplog.at_level(logging.WARNING, logger="replay.nearmiss"):
        found = index.nearest("default", chat("hello"))
        assert found is not None and found.fingerprint == good
        index.nearest("default", chat("hello"))
    assert sum("corrupt cassette" in r.getMessage() for r in caplog.records) == 1
    path.write_bytes(original)  # repaired: read again
    found = index.nearest("default", chat("hello"))
    assert found is not None and found.fingerprint == bad and found.field is None


def test_a_corrupt_first_occurrence_falls_back_to_the_next(
    index: NearMissIndex, store: Store
) -> None:
    fp = record(store, chat("hello"))
    record(store, chat("hello"), occurrence=1)
    path_of(store, Key("default", fp, 0)).write_bytes(b"\x28\xb5\x2f\xfd garbage")
    found = index.nearest("default", chat("hello?"))
    assert found is not None and found.fingerprint == fp and found.occurrence == 1


def test_a_file_naming_another_fingerprint_is_skipped(index: NearMissIndex, store: Store) -> None:
    fp = record(store, chat("hello"))
    elsewhere = Path(str(path_of(store, Key("default", "ab" + "0" * 62, 0))))
    elsewhere.parent.mkdir(parents=True, exist_ok=True)
    elsewhere.write_bytes(path_of(store, Key("default", fp, 0)).read_bytes())
    path_of(store, Key("default", fp, 0)).unlink()
    assert index.nearest("default", chat("hello")) is None


def test_oversized_files_are_not_candidates(
    index: NearMissIndex, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(store, chat("hello"))
    monkeypatch.setattr(nearmiss_module, "MAX_FILE_BYTES", 10)
    assert index.nearest("default", chat("hello")) is None


def test_oversized_bodies_are_not_candidates(
    index: NearMissIndex, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(store, chat("hello"))
    monkeypatch.setattr(nearmiss_module, "MAX_BODY_BYTES", 10)
    assert index.nearest("default", chat("hello")) is None


def test_nothing_differs_when_the_policy_changed(store: Store) -> None:
    recorded = chat("hello", extra={"user": "run-1"})
    fp = record(store, recorded)
    index = NearMissIndex(store, FingerprintPolicy(ignore=("user",)))
    found = index.nearest("default", chat("hello", extra={"user": "run-2"}))
    assert found is not None and found.fingerprint == fp and found.field is None


def test_stored_requests_compare_as_their_originals(index: NearMissIndex, store: Store) -> None:
    """A recorded request is stored redacted; the live one carries the key. The key is never
    a difference, and the URL reported is the redacted one."""
    req = chat(
        "hello",
        headers=(("authorization", "Bearer sk-" + "a1" * 20),),
        query=(("key", "AIza" + "b" * 35),),
    )
    fp = record(store, req)
    assert fingerprint(req, POLICY).hex == fp
    found = index.nearest("default", replace(req, body=req.body.replace(b"hello", b"hi")))
    assert found is not None and found.fingerprint == fp
    assert found.field == "body.json.messages.1.content"
    assert "AIza" not in found.url and "key=%3Credacted%3E" in found.url


def test_entry_leaf_cap_bounds_memory(
    index: NearMissIndex, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nearmiss_module, "MAX_ENTRY_LEAVES", 5)
    record(store, chat("hello", extra={"tools": [{"n": i} for i in range(50)]}))
    found = index.nearest("default", chat("hello", extra={"tools": [{"n": 0}]}))
    assert found is not None and found.field == "body.json.tools.1"  # exact, from the file
    assert all(len(e.leaves or ()) <= 5 for e in index._namespaces["default"].entries.values())


def test_index_caps_fingerprints_and_logs_once(
    index: NearMissIndex,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fps = sorted(record(store, chat(c)) for c in ("a", "b", "c"))
    monkeypatch.setattr(nearmiss_module, "MAX_ENTRIES", 2)
    with caplog.at_level(logging.INFO, logger="replay.nearmiss"):
        index.nearest("default", chat("z"))
        index.nearest("default", chat("z"))
    assert len(index) == 2
    assert set(index._namespaces["default"].entries) == set(fps[:2])
    assert sum("index full" in r.getMessage() for r in caplog.records) == 1


def test_searching_another_namespace_makes_room(
    index: NearMissIndex, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(store, chat("a"), namespace="one")
    record(store, chat("b"), namespace="one")
    two = record(store, chat("c"), namespace="two")
    monkeypatch.setattr(nearmiss_module, "MAX_ENTRIES", 2)
    assert index.nearest("one", chat("z")) is not None
    found = index.nearest("two", chat("z"))
    assert found is not None and found.fingerprint == two
    assert list(index._namespaces) == ["two"] and len(index) == 1


def test_namespace_count_is_capped(
    index: NearMissIndex, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nearmiss_module, "MAX_NAMESPACES", 2)
    for name in ("n1", "n2", "n3"):
        record(store, chat(name), namespace=name)
        assert index.nearest(name, chat("z")) is not None
    assert list(index._namespaces) == ["n2", "n3"] and len(index) == 2
    assert index._entries == 2 and index._leaves == sum(
        len(e.leaves or ()) for ns in index._namespaces.values() for e in ns.entries.values()
    )


def test_same_store_same_answer(store: Store) -> None:
    for c in ("a", "b", "hello"):
        record(store, chat(c))
    first = NearMissIndex(store, POLICY).nearest("default", chat("hullo"))
    assert first == NearMissIndex(store, POLICY).nearest("default", chat("hullo"))


def test_concurrent_searches_and_writes(index: NearMissIndex, store: Store) -> None:
    record(store, chat("seed"))
    errors: list[BaseException] = []
    found: list[object] = []

    def search() -> None:
        try:
            for _ in range(20):
                found.append(index.nearest("default", chat("seed?")))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=search) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(10):
        record(store, chat(f"more {i}", extra={"i": i}))
    for t in threads:
        t.join()
    assert not errors and all(f is not None for f in found)
    index.nearest("default", chat("x"))
    assert len(index) == 11


def test_material_is_the_hashed_material() -> None:
    req = chat("hello")
    assert material(req, POLICY) == fingerprint(req, POLICY).material
    assert material(req, POLICY) is not material(req, POLICY)


def test_a_namespace_of_bombs_and_symlinks_is_searched_within_a_memory_bound(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import tracemalloc

    import zstandard

    mib = 2**20
    with Store(tmp_path / "cassettes", max_body=mib) as store:
        good = record(store, chat("bye", model="x"))
        compressor = zstandard.ZstdCompressor(level=3).compressobj()
        bomb = b"".join(compressor.compress(b"\0" * mib) for _ in range(16)) + compressor.flush()
        bombs = [f"{n:02x}" + "e" * 62 for n in range(4)]
        for fp in bombs:
            path = store.path_for(Key("default", fp, 0))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bomb)
        linked = store.path_for(Key("default", "ff" * 32, 0))
        linked.parent.mkdir(parents=True, exist_ok=True)
        linked.symlink_to("/dev/zero")
        index = NearMissIndex(store, POLICY)
        tracemalloc.start()
        try:
            with caplog.at_level(logging.WARNING, logger="replay.nearmiss"):
                found = index.nearest("default", chat("hello"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert found is not None and found.fingerprint == good
    assert peak < 8 * mib, f"peak {peak / mib:.1f} MiB for 64 MiB of bombs"
    for fp in bombs:
        assert f"{fp}.0.zst" in caplog.text
    assert "replay_max_body" in caplog.text and "symbolic link" in caplog.text
    assert len(index) == 1
