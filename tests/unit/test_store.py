"""replay.store: layout, lookups, pending writes, atomic files, the cache, corrupt files."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from support.layout import path_of

import replay.store as store_module
from replay import backend_local, codec
from replay.errors import BadNamespace, StoreError
from replay.models import (
    Chunk,
    Interaction,
    Key,
    Provenance,
    RedactedInteraction,
    Request,
    ResponseHead,
)
from replay.store import Store, write_atomically

FP = "ab" + "0" * 62
OTHER = "cd" + "1" * 62


def make(
    fp: str = FP, occurrence: int = 0, text: str = "hello", namespace: str = "default"
) -> Interaction:
    return Interaction(
        key=Key(namespace, fp, occurrence),
        fingerprint_version=1,
        ignore=(),
        request=Request(
            method="POST",
            scheme="https",
            host="api.anthropic.com",
            port=443,
            path="/v1/messages",
            query=(),
            headers=(("content-type", "application/json"),),
            body=b'{"model":"claude"}',
        ),
        response=ResponseHead(200, "OK", "HTTP/1.1", (("content-type", "text/event-stream"),)),
        ttfb=0.1234567,
        chunks=(Chunk(0.0, b"event: ping\n\n"), Chunk(0.0333333, f"data: {text}\n\n".encode())),
        complete=True,
        provenance=Provenance("2025-11-22T01:15:00Z", "anthropic", "claude", None, 200, "0.1.0"),
    )


def redacted(interaction: Interaction) -> RedactedInteraction:
    """A RedactedInteraction the way the product makes one (redact.py), if it exists yet."""
    try:
        from replay.redact import redact
    except ImportError:
        return RedactedInteraction(interaction)
    return redact(interaction)


def text_of(interaction: Interaction | None) -> str:
    assert interaction is not None
    return interaction.chunks[1].data.decode().removeprefix("data: ").strip()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "cassettes") as s:
        yield s


def put_all(store: Store, *interactions: Interaction) -> None:
    for interaction in interactions:
        store.put(redacted(interaction))
    assert store.flush(timeout=30)


class Gate:
    """Holds the writer thread inside encode() until opened: writes stay pending."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        real = codec.encode

        def encode(ri: RedactedInteraction, **kwargs: Any) -> bytes:
            self.entered.set()
            assert self.opened.wait(30), "gate never opened"
            return real(ri, **kwargs)

        monkeypatch.setattr(store_module, "encode", encode)

    def open(self) -> None:
        self.opened.set()


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = codec.decode

    def decode(data: bytes, path: str = "<bytes>", limit: int = 2**26) -> Interaction:
        calls.append(path)
        return real(data, path, limit)

    monkeypatch.setattr(store_module, "decode", decode)
    return calls


# --- layout and round trip ----------------------------------------------------------------


def test_put_writes_one_file_at_the_documented_path(store: Store) -> None:
    assert repr(store) == f"Store({str(store.root)!r})"
    put_all(store, make())
    path = store.root / "default" / "ab" / f"{FP}.0.zst"
    assert codec.decode(path.read_bytes()) == codec.normalize(redacted(make()).interaction)
    assert store.get(Key("default", FP, 0)) == codec.decode(path.read_bytes())


def test_empty_namespace_means_default(store: Store) -> None:
    put_all(store, make(namespace=""))
    assert (store.root / "default" / "ab" / f"{FP}.0.zst").is_file()
    assert text_of(store.get(Key("default", FP, 0))) == "hello"
    assert text_of(store.get(Key("", FP, 0))) == "hello"
    fresh = Store(store.root)
    assert store.get(Key("", FP, 0)) == fresh.get(Key("", FP, 0))
    found = fresh.get(Key("", FP, 0))
    assert found is not None and found.key == Key("default", FP, 0)


def test_namespaces_do_not_fall_back_to_each_other(store: Store) -> None:
    put_all(store, make(namespace="a"))
    assert store.get(Key("b", FP, 0)) is None
    assert store.get_latest(Key("b", FP, 3)) is None
    assert store.get(Key("a", FP, 0)) is not None


@pytest.mark.parametrize(
    "name",
    ["..", ".", ".hidden", "a/../b", "a/.hidden", "a//b", "a/", "a\\b", "", "x\x00y", "x" * 256],
)
def test_bad_namespace_is_refused(store: Store, name: str) -> None:
    key = Key(name or "/", FP, 0)
    with pytest.raises(BadNamespace):
        store.get(key)
    with pytest.raises(BadNamespace):
        store.put(redacted(make(namespace=key.namespace)))


@pytest.mark.parametrize("key", [Key("d", "XY" * 32, 0), Key("d", "a", 0), Key("d", FP, -1)])
def test_bad_fingerprint_or_occurrence_is_refused(store: Store, key: Key) -> None:
    with pytest.raises(StoreError):
        store.get(key)
    with pytest.raises(StoreError):
        store.get_latest(key)


def test_put_takes_only_redacted_interactions(store: Store) -> None:
    with pytest.raises(TypeError):
        store.put(make())  # type: ignore[arg-type]


def test_construction_reads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the store touched the disk at construction")

    for name in ("listdir", "scandir", "stat", "open", "mkdir", "walk"):
        monkeypatch.setattr(os, name, refuse)
    store = Store(tmp_path / "not" / "yet")
    monkeypatch.undo()
    assert not (tmp_path / "not").exists()
    assert store.get(Key("default", FP, 0)) is None
    assert store.get_latest(Key("default", FP, 3)) is None
    assert list(store.entries()) == []
    assert not (tmp_path / "not").exists()
    store.close()


# --- pending writes -----------------------------------------------------------------------


def test_pending_write_is_visible_before_it_lands(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    store.put(redacted(make(occurrence=0, text="first")))
    assert gate.entered.wait(30)
    path = path_of(store, Key("default", FP, 0))
    assert not path.exists()
    assert text_of(store.get(Key("default", FP, 0))) == "first"
    assert text_of(store.get_latest(Key("default", FP, 7))) == "first"
    assert store.flush(timeout=0) is False
    gate.open()
    assert store.flush(timeout=30) is True
    assert path.is_file()
    assert text_of(store.get(Key("default", FP, 0))) == "first"


def test_pending_and_stored_answers_are_equal(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch)
    store.put(redacted(make()))
    before = store.get(Key("default", FP, 0))
    gate.open()
    store.flush()
    monkeypatch.undo()
    assert before == store.get(Key("default", FP, 0))


def test_same_key_put_twice_the_last_wins(store: Store) -> None:
    store.put(redacted(make(text="one")))
    store.put(redacted(make(text="two")))
    assert text_of(store.get(Key("default", FP, 0))) == "two"
    store.flush()
    fresh = Store(store.root)
    assert text_of(fresh.get(Key("default", FP, 0))) == "two"


def test_concurrent_puts_of_different_keys_all_land(store: Store) -> None:
    def worker(n: int) -> None:
        for k in range(20):
            fp = f"{n:02x}{k:02x}" + "e" * 60
            store.put(redacted(make(fp=fp, occurrence=k % 3, text=f"{n}-{k}")))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.flush(timeout=60)
    fresh = Store(store.root)
    keys = [key for _, key in fresh.entries()]
    assert len(keys) == 160
    for n in range(8):
        for k in range(20):
            key = Key("default", f"{n:02x}{k:02x}" + "e" * 60, k % 3)
            assert text_of(fresh.get(key)) == f"{n}-{k}"


def test_close_is_idempotent_and_a_later_put_still_lands(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put(redacted(make(text="before")))
    store.close()
    assert path_of(store, Key("default", FP, 0)).is_file()  # close drained the queue
    store.close()
    store.put(redacted(make(occurrence=1, text="after")))
    store.close()
    assert text_of(Store(tmp_path).get(Key("default", FP, 1))) == "after"


# --- get_latest and remove_above ----------------------------------------------------------


def test_get_latest_falls_back_to_the_last_stored_occurrence(store: Store) -> None:
    put_all(store, make(occurrence=0, text="zero"), make(occurrence=1, text="one"))
    assert store.get(Key("default", FP, 5)) is None
    latest = store.get_latest(Key("default", FP, 5))
    assert text_of(latest) == "one"
    assert latest is not None and latest.key.occurrence == 1
    assert text_of(store.get_latest(Key("default", FP, 0))) == "zero"
    assert store.get_latest(Key("default", OTHER, 5)) is None


def test_get_latest_counts_only_occurrences_below(store: Store) -> None:
    put_all(store, make(occurrence=3, text="three"))
    assert store.get_latest(Key("default", FP, 2)) is None
    assert text_of(store.get_latest(Key("default", FP, 10))) == "three"


def test_get_latest_orders_occurrences_numerically(store: Store) -> None:
    put_all(store, make(occurrence=9, text="nine"), make(occurrence=10, text="ten"))
    assert text_of(store.get_latest(Key("default", FP, 11))) == "ten"


def test_get_latest_lists_nothing_on_an_exact_hit(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_all(store, make(occurrence=0))

    def refuse(*args: Any) -> Any:
        raise AssertionError("listed a directory on an exact hit")

    monkeypatch.setattr(os, "listdir", refuse)
    assert store.get_latest(Key("default", FP, 0)) is not None


def test_get_latest_returns_an_exact_pending_occurrence(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_all(store, make(occurrence=0, text="zero"))
    gate = Gate(monkeypatch)
    store.put(redacted(make(occurrence=1, text="one")))
    assert text_of(store.get_latest(Key("default", FP, 1))) == "one"
    gate.open()


def test_get_latest_prefers_a_pending_later_occurrence(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_all(store, make(occurrence=0, text="zero"))
    gate = Gate(monkeypatch)
    store.put(redacted(make(occurrence=2, text="two")))
    assert text_of(store.get_latest(Key("default", FP, 4))) == "two"
    assert text_of(store.get_latest(Key("default", FP, 1))) == "zero"
    gate.open()


def test_remove_above_deletes_only_higher_occurrences(store: Store) -> None:
    put_all(store, *(make(occurrence=n) for n in range(4)), make(fp=OTHER, occurrence=3))
    assert store.remove_above("default", FP, 1) == 2
    assert [k.occurrence for _, k in store.entries() if k.fingerprint == FP] == [0, 1]
    assert store.get(Key("default", FP, 2)) is None
    assert store.get(Key("default", OTHER, 3)) is not None
    assert store.remove_above("default", FP, 1) == 0
    assert store.remove_above("nowhere", FP, 0) == 0


def test_remove_above_runs_after_earlier_pending_writes(store: Store) -> None:
    put_all(store, make(occurrence=0))
    store.get(Key("default", FP, 0))  # cached
    for n in (1, 2, 3):
        store.put(redacted(make(occurrence=n)))  # not flushed
    assert store.remove_above("default", FP, 0) == 3
    assert store.get(Key("default", FP, 3)) is None
    assert [k.occurrence for _, k in store.entries()] == [0]


# --- files that are not interactions ------------------------------------------------------


def test_entries_skips_everything_but_interaction_files(store: Store) -> None:
    put_all(store, make(occurrence=2), make(occurrence=10), make(fp=OTHER), make(namespace="ns"))
    shard = store.root / "default" / "ab"
    (shard / f".{FP}.0.zst.123.abcd.tmp").write_bytes(b"half a fi")
    (shard / ".index").write_text("{}")
    (shard / f"{FP}.01.zst").write_bytes(b"leading zero")
    (shard / f"{FP.upper()}.0.zst").write_bytes(b"upper case")
    (shard / f"{OTHER}.0.zst").write_bytes(b"wrong shard")
    (shard / "notes.txt").write_text("hi")
    (store.root / "default" / "store.dict").write_bytes(b"dict")
    (store.root / "default" / "zz").mkdir()
    (store.root / ".lock").write_text("")
    (store.root / ".hidden" / "ab").mkdir(parents=True)
    (store.root / ".hidden" / "ab" / f"{FP}.0.zst").write_bytes(b"hidden")
    (store.root / "README.md").write_text("cassettes")
    listed = [(p.relative_to(store.root).as_posix(), k) for p, k in store.entries()]
    assert listed == [
        (f"default/ab/{FP}.2.zst", Key("default", FP, 2)),
        (f"default/ab/{FP}.10.zst", Key("default", FP, 10)),
        (f"default/cd/{OTHER}.0.zst", Key("default", OTHER, 0)),
        (f"ns/ab/{FP}.0.zst", Key("ns", FP, 0)),
    ]
    assert [k for _, k in store.entries("ns")] == [Key("ns", FP, 0)]
    assert list(store.entries("absent")) == []


def test_nested_namespaces_are_directories_and_listed_depth_first(store: Store) -> None:
    # `a/ab` looks like a shard of `a`: the path says which is which.
    nested = ["a", "a/ab", "a/ab/c", "a-b", "tests/test_chat/test_summary[gpt-4o]"]
    put_all(store, *(make(namespace=ns) for ns in nested), make(fp=OTHER, namespace="a/ab"))
    assert store.path_for(Key("a/ab/c", FP, 0)) == store.root / "a/ab/c/ab" / f"{FP}.0.zst"
    (store.root / "a" / ".hidden" / "ab").mkdir(parents=True)
    (store.root / "a" / ".hidden" / "ab" / f"{FP}.0.zst").write_bytes(b"hidden")
    (store.root / "linked").symlink_to(store.root / "a", target_is_directory=True)
    listed = [(p.relative_to(store.root).as_posix(), k) for p, k in store.entries()]
    assert listed == [
        (f"a/ab/{FP}.0.zst", Key("a", FP, 0)),
        (f"a/ab/ab/{FP}.0.zst", Key("a/ab", FP, 0)),
        (f"a/ab/cd/{OTHER}.0.zst", Key("a/ab", OTHER, 0)),
        (f"a/ab/c/ab/{FP}.0.zst", Key("a/ab/c", FP, 0)),
        (f"a-b/ab/{FP}.0.zst", Key("a-b", FP, 0)),
        (
            f"tests/test_chat/test_summary[gpt-4o]/ab/{FP}.0.zst",
            Key("tests/test_chat/test_summary[gpt-4o]", FP, 0),
        ),
    ]
    assert [k for _, k in store.entries("a")] == [Key("a", FP, 0)]
    assert [k for _, k in store.entries("a/ab")] == [Key("a/ab", FP, 0), Key("a/ab", OTHER, 0)]
    fresh = Store(store.root)
    assert text_of(fresh.get(Key("a/ab/c", FP, 0))) == "hello"
    assert fresh.get(Key("a/ab/c/d", FP, 0)) is None
    fresh.close()


def test_a_leftover_temp_file_breaks_nothing(store: Store) -> None:
    shard = store.root / "default" / "ab"
    shard.mkdir(parents=True)
    (shard / f".{FP}.1.zst.999.dead.tmp").write_bytes(b"\x28\xb5\x2f\xfd truncated")
    put_all(store, make(occurrence=0, text="zero"))
    assert store.get(Key("default", FP, 1)) is None
    assert text_of(store.get_latest(Key("default", FP, 4))) == "zero"
    put_all(store, make(occurrence=1, text="one"))
    assert text_of(store.get(Key("default", FP, 1))) == "one"
    assert [k.occurrence for _, k in store.entries()] == [0, 1]


# --- atomic writes and write failures -----------------------------------------------------


def test_write_goes_through_a_dot_named_temp_file_in_the_same_directory(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    renames: list[tuple[str, str]] = []
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        renames.append((os.fspath(src), os.fspath(dst)))
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    put_all(store, make())
    [(src, dst)] = renames
    assert Path(src).parent == Path(dst).parent
    assert Path(src).name.startswith(f".{FP}.0.zst.") and src.endswith(".tmp")
    assert os.listdir(Path(dst).parent) == [Path(dst).name]


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_temp(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    put_all(store, make(text="old"))

    def fail(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with caplog.at_level(logging.ERROR, logger="replay.store"):
        put_all(store, make(text="new"))
    path = path_of(store, Key("default", FP, 0))
    assert any(str(path) in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    assert "No space left on device" in caplog.text
    assert os.listdir(path.parent) == [path.name]
    assert text_of(store.get(Key("default", FP, 0))) == "old"  # pending dropped


def test_an_unwritable_root_is_logged_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "a-file"
    root.write_text("not a directory")
    with Store(root) as store, caplog.at_level(logging.ERROR, logger="replay.store"):
        store.put(redacted(make()))
        assert store.flush(timeout=30)
        assert store.get(Key("default", FP, 0)) is None
    assert str(root / "default" / "ab" / f"{FP}.0.zst") in caplog.text


def test_a_bug_in_the_writer_is_logged_and_does_not_hang_flush(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(ri: RedactedInteraction, **kwargs: Any) -> bytes:
        raise RuntimeError("boom")

    monkeypatch.setattr(store_module, "encode", broken)
    store.put(redacted(make()))
    assert store.flush(timeout=30)
    assert "boom" in caplog.text
    assert store.get(Key("default", FP, 0)) is None  # dropped from pending
    monkeypatch.undo()
    put_all(store, make(text="the writer lives on"))
    assert text_of(store.get(Key("default", FP, 0))) == "the writer lives on"


def test_a_failed_removal_is_logged_and_not_counted(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    put_all(store, *(make(occurrence=n) for n in range(3)))
    real = os.unlink

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.fspath(path).endswith(".2.zst"):
            raise PermissionError(13, "Permission denied")
        real(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    assert store.remove_above("default", FP, 0) == 1
    assert f"{FP}.2.zst" in caplog.text and "Permission denied" in caplog.text


def test_write_atomically_creates_directories(tmp_path: Path) -> None:
    path = tmp_path / "x" / "y" / "f.zst"
    write_atomically(path, b"one")
    write_atomically(path, b"two")
    assert path.read_bytes() == b"two"
    assert os.listdir(path.parent) == ["f.zst"]


# --- corrupt and unreadable files ---------------------------------------------------------


def _doc_bytes(mutate: Callable[[dict[str, Any]], None]) -> bytes:
    doc = codec.to_document(make())
    mutate(doc)
    return zstandard.ZstdCompressor().compress(json.dumps(doc).encode())


GOOD = codec.encode(RedactedInteraction(make()))
CORRUPT = {
    "garbage": b"garbage, not zstd",
    "truncated": GOOD[: len(GOOD) - 10],
    "zstd of non-json": zstandard.ZstdCompressor().compress(b"<html>not json</html>"),
    "missing field": _doc_bytes(lambda d: d["response"].pop("status")),
    "unknown version": _doc_bytes(lambda d: d.update(version=99)),
    "other fingerprint": codec.encode(RedactedInteraction(make(fp=OTHER))),
}


@pytest.mark.parametrize("name", list(CORRUPT))
def test_a_corrupt_file_is_a_miss_with_a_warning_naming_it(
    store: Store, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    path = path_of(store, Key("default", FP, 0))
    path.parent.mkdir(parents=True)
    path.write_bytes(CORRUPT[name])
    with caplog.at_level(logging.WARNING, logger="replay.store"):
        assert store.get(Key("default", FP, 0)) is None
        assert store.get_latest(Key("default", FP, 0)) is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and str(path) in warnings[0].getMessage()
    assert len(warnings) == 1  # once per version of the file, not once per request


def test_the_good_file_of_the_corrupt_cases_is_served(store: Store) -> None:
    path = path_of(store, Key("default", FP, 0))
    path.parent.mkdir(parents=True)
    path.write_bytes(GOOD)
    assert store.get(Key("default", FP, 0)) == codec.normalize(make())


def test_a_corrupt_last_occurrence_is_not_skipped(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    put_all(store, make(occurrence=0))
    path_of(store, Key("default", FP, 1)).write_bytes(b"garbage")
    assert store.get_latest(Key("default", FP, 3)) is None
    assert "garbage" not in caplog.text and f"{FP}.1.zst" in caplog.text


def test_an_unreadable_path_is_a_miss(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    path = path_of(store, Key("default", FP, 0))
    path.mkdir(parents=True)  # a directory where a file should be
    assert store.get(Key("default", FP, 0)) is None
    assert str(path) in caplog.text


def test_a_file_that_cannot_be_statted_is_a_miss(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    put_all(store, make())
    path = store.path_for(Key("default", FP, 0))
    real = os.lstat  # entries are never followed: lstat, not stat

    def lstat(p: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if os.fspath(p) == str(path):
            raise PermissionError(13, "Permission denied")
        return real(p, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", lstat)
    assert store.get(Key("default", FP, 0)) is None
    assert store.get_latest(Key("default", FP, 0)) is None
    assert str(path) in caplog.text and "Permission denied" in caplog.text


def test_a_corrupt_file_fixed_by_put_is_served(store: Store) -> None:
    path = path_of(store, Key("default", FP, 0))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    assert store.get(Key("default", FP, 0)) is None
    put_all(store, make(text="fixed"))
    assert text_of(store.get(Key("default", FP, 0))) == "fixed"


def test_a_copied_namespace_is_served_under_its_new_key(store: Store) -> None:
    put_all(store, make(namespace="original"))
    (store.root / "original").rename(store.root / "copy")
    found = store.get(Key("copy", FP, 0))
    assert found is not None and found.key == Key("copy", FP, 0)


# --- the cache ----------------------------------------------------------------------------


def test_a_hot_hit_does_not_decode_again(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    put_all(store, make())
    decodes = count_decodes(monkeypatch)
    first = store.get(Key("default", FP, 0))
    assert store.get(Key("default", FP, 0)) is first
    assert store.get_latest(Key("default", FP, 0)) is first
    assert len(decodes) == 1


def test_put_of_the_same_key_invalidates_the_cache(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_all(store, make(text="v1"))
    assert text_of(store.get(Key("default", FP, 0))) == "v1"
    put_all(store, make(text="v2"))
    assert text_of(store.get(Key("default", FP, 0))) == "v2"
    assert text_of(Store(store.root).get(Key("default", FP, 0))) == "v2"


def test_a_file_rewritten_behind_the_store_is_read_again(store: Store) -> None:
    put_all(store, make(text="v1"))
    assert text_of(store.get(Key("default", FP, 0))) == "v1"
    path = path_of(store, Key("default", FP, 0))
    write_atomically(path, codec.encode(RedactedInteraction(make(text="v2 by hand"))))
    assert text_of(store.get(Key("default", FP, 0))) == "v2 by hand"


def test_the_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weight = store_module._weight(make())
    with Store(tmp_path, cache_bytes=2 * weight) as store:
        put_all(store, *(make(occurrence=n) for n in range(3)))
        decodes = count_decodes(monkeypatch)
        for n in (0, 1, 2, 0):  # 0 is evicted by 2
            store.get(Key("default", FP, n))
        assert len(decodes) == 4
        store.get(Key("default", FP, 2))  # still cached
        assert len(decodes) == 4


def test_a_zero_cache_decodes_every_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(tmp_path, cache_bytes=0) as store:
        put_all(store, make())
        decodes = count_decodes(monkeypatch)
        store.get(Key("default", FP, 0))
        store.get(Key("default", FP, 0))
        assert len(decodes) == 2


def test_put_invalidates_even_when_the_file_signature_does_not_change(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Coarse timestamps and a reused inode could leave (ino, mtime, size) unchanged.
    monkeypatch.setattr(backend_local, "file_signature", lambda st: (1, 1, 1))
    put_all(store, make(text="v1"))
    assert text_of(store.get(Key("default", FP, 0))) == "v1"
    put_all(store, make(text="v2"))
    assert text_of(store.get(Key("default", FP, 0))) == "v2"


def test_a_read_that_raced_a_put_is_not_cached(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backend_local, "file_signature", lambda st: (1, 1, 1))
    put_all(store, make(text="v1"))
    reading, release = threading.Event(), threading.Event()
    real = codec.decode

    def slow_decode(data: bytes, path: str = "<bytes>", limit: int = 2**26) -> Interaction:
        reading.set()
        assert release.wait(30)
        return real(data, path, limit)

    monkeypatch.setattr(store_module, "decode", slow_decode)
    seen: list[Interaction | None] = []
    reader = threading.Thread(target=lambda: seen.append(store.get(Key("default", FP, 0))))
    reader.start()
    assert reading.wait(30)
    monkeypatch.setattr(store_module, "decode", real)
    put_all(store, make(text="v2"))
    release.set()
    reader.join()
    assert text_of(seen[0]) == "v1"  # it started before the put
    assert text_of(store.get(Key("default", FP, 0))) == "v2"
