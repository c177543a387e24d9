"""replay.store against hostile and concurrent stores: entries that are symlinks, FIFOs or
decompression bombs, and a second writer of a namespace (the lock, the clean-up rule)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from test_store import FP, OTHER, make, redacted, text_of

import replay.store as store_module
from replay import codec
from replay.errors import StoreLocked
from replay.models import Key, RedactedInteraction
from replay.store import Store, write_atomically

MIB = 2**20


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "cassettes", max_body=MIB) as s:
        yield s


def entry(store: Store, occurrence: int = 0, fp: str = FP) -> Path:
    path = store.path_for(Key("default", fp, occurrence))
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# --- entries that must not be read --------------------------------------------------------


def test_a_symlink_to_dev_zero_is_a_corrupt_entry_never_read(
    store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = entry(store)
    path.symlink_to("/dev/zero")
    decodes: list[bytes] = []
    monkeypatch.setattr(store_module, "decode", lambda data, *a: decodes.append(data))
    with caplog.at_level(logging.WARNING, logger="replay.store"):
        for _ in range(3):
            assert store.get(Key("default", FP, 0)) is None
            assert store.get_latest(Key("default", FP, 2)) is None
    assert decodes == []
    [warning] = warnings_of(caplog)  # logged once, like any corrupt file
    assert str(path) in warning and "symbolic link" in warning


def test_a_symlink_to_a_good_cassette_is_not_followed(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "outside.zst"
    elsewhere.write_bytes(codec.encode(redacted(make())))
    entry(store).symlink_to(elsewhere)
    assert store.get(Key("default", FP, 0)) is None
    assert "symbolic link" in caplog.text


def test_a_fifo_entry_is_a_miss_and_never_blocks(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    path = entry(store)
    os.mkfifo(path)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(store.get(Key("default", FP, 0))))
    reader.start()
    reader.join(10)
    if reader.is_alive():  # blocked in open(): unblock it so the test can fail cleanly
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        reader.join(10)
        pytest.fail("reading a FIFO entry blocked")
    assert got == [None] and "not a regular file" in caplog.text


def test_a_cassette_bomb_is_a_miss_logged_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    bomb = b"".join(compressor.compress(b"\0" * MIB) for _ in range(16)) + compressor.flush()
    path = entry(store)
    path.write_bytes(bomb)
    with caplog.at_level(logging.WARNING, logger="replay.store"):
        for _ in range(3):
            assert store.get(Key("default", FP, 0)) is None
    [warning] = warnings_of(caplog)
    assert str(path) in warning and "replay_max_body" in warning


def test_a_file_too_large_for_the_cap_is_not_even_read(
    store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = entry(store)
    with path.open("wb") as f:
        f.truncate(store_module.max_file_bytes(MIB) + 1)  # sparse: costs no disk
    decodes: list[bytes] = []
    monkeypatch.setattr(store_module, "decode", lambda data, *a: decodes.append(data))
    assert store.get(Key("default", FP, 0)) is None
    assert decodes == [] and "replay_max_body" in caplog.text


def test_a_file_within_the_cap_is_served(tmp_path: Path) -> None:
    big = make(text="x" * (MIB // 2))
    with Store(tmp_path, max_body=MIB) as small, Store(tmp_path / "b", max_body=MIB // 4) as tiny:
        small.put(redacted(big))
        tiny.put(redacted(big))
        small.flush()
        tiny.flush()
        key = Key("default", FP, 0)
        assert text_of(Store(tmp_path, max_body=MIB).get(key)) == "x" * (MIB // 2)
        assert Store(tmp_path / "b", max_body=MIB // 4).get(key) is None  # over its cap


# --- the namespace lock -------------------------------------------------------------------


def test_the_first_write_takes_a_dot_named_lock_holding_pid_and_host(store: Store) -> None:
    lock = store.root / ".default.lock"
    assert not lock.exists()  # nothing before the first write
    assert store.put(redacted(make())) is True
    store.flush()
    assert json.loads(lock.read_text()) == {"pid": os.getpid(), "host": socket.gethostname()}
    assert [k for _, k in store.entries()] == [Key("default", FP, 0)]  # never an entry
    store.close()
    assert not lock.exists()  # a clean stop leaves no lock behind


def test_a_second_writer_is_refused_with_one_line_naming_the_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Store(tmp_path) as first, Store(tmp_path) as second:
        assert first.put(redacted(make(text="first")))
        with caplog.at_level(logging.ERROR, logger="replay.store"):
            for n in range(3):
                assert second.put(redacted(make(occurrence=n, text="second"))) is False
            assert second.remove_above("default", FP, 0) == 0
        second.flush()
        first.flush()
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert f"pid {os.getpid()}" in errors[0] and "'default'" in errors[0]
        assert ".default.lock" in errors[0]
        assert [k.occurrence for _, k in first.entries()] == [0]
        assert text_of(Store(tmp_path).get(Key("default", FP, 0))) == "first"
        with pytest.raises(StoreLocked) as info:
            second.claim("default")
        assert info.value.pid == os.getpid() and info.value.namespace == "default"
        assert second.put(redacted(make(namespace="other")))  # another namespace is free
    with Store(tmp_path) as third:  # both closed: the lock is free again
        assert third.put(redacted(make(occurrence=1, text="third")))


def test_a_lock_left_by_a_killed_process_is_taken_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real process takes the lock and is killed with SIGKILL: its lock file stays, the
    kernel's flock does not, and the next writer takes it over."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = {sys.path!r}
        from test_store import make, redacted
        from replay.store import Store
        store = Store({str(tmp_path)!r})
        assert store.put(redacted(make(text="child")))
        store.flush()
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parent,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        with Store(tmp_path) as mine, caplog.at_level(logging.INFO, logger="replay.store"):
            assert mine.put(redacted(make(occurrence=1))) is False
            assert f"pid {child.pid}" in caplog.text
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        lock = tmp_path / ".default.lock"
        assert json.loads(lock.read_text())["pid"] == child.pid  # left behind
        caplog.clear()
        with Store(tmp_path) as mine, caplog.at_level(logging.INFO, logger="replay.store"):
            assert mine.put(redacted(make(occurrence=1, text="mine"))) is True
            mine.flush()
            assert f"left by pid {child.pid}" in caplog.text
            assert json.loads(lock.read_text())["pid"] == os.getpid()
            assert text_of(mine.get(Key("default", FP, 0))) == "child"
            assert text_of(mine.get(Key("default", FP, 1))) == "mine"
    finally:
        if child.poll() is None:
            child.kill()  # by its own pid
            child.wait(30)
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


def test_a_lock_file_written_by_hand_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / ".default.lock").write_text('{"pid": 999999999, "host": "elsewhere"}')
    with Store(tmp_path) as store:
        assert store.put(redacted(make()))


def test_claim_fails_early_and_is_idempotent(tmp_path: Path) -> None:
    with Store(tmp_path) as first, Store(tmp_path) as second:
        first.claim("")
        first.claim("default")
        with pytest.raises(StoreLocked, match="being recorded by another replay process"):
            second.claim("default")


# --- remove_above only removes what this run superseded -----------------------------------


def earlier_run(root: Path, occurrences: int) -> None:
    """A finished recording of FP's occurrences 0 .. occurrences-1 under `root`."""
    with Store(root) as earlier:
        for n in range(occurrences):
            earlier.put(redacted(make(occurrence=n, text="old")))


def test_remove_above_removes_an_earlier_runs_stale_occurrences(tmp_path: Path) -> None:
    earlier_run(tmp_path, 5)
    with Store(tmp_path) as now:
        now.put(redacted(make(occurrence=0, text="new")))
        now.put(redacted(make(occurrence=1, text="new")))
        assert now.remove_above("default", FP, 1) == 3
        assert [k.occurrence for _, k in now.entries()] == [0, 1]


def test_remove_above_keeps_files_another_writer_added_since(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.put(redacted(make(occurrence=0)))
    store.flush()
    # Another process writes occurrences 1 and 2 after this run began (the lock would stop a
    # replay proxy; a hand copy or an unlocked tool would not).
    for n in (1, 2):
        write_atomically(
            store.path_for(Key("default", FP, n)),
            codec.encode(RedactedInteraction(make(occurrence=n, text="theirs"))),
        )
    assert store.remove_above("default", FP, 0) == 0
    assert [k.occurrence for _, k in store.entries()] == [0, 1, 2]
    assert "another process wrote it" in caplog.text


def test_remove_above_keeps_an_old_file_rewritten_by_another_writer(tmp_path: Path) -> None:
    earlier_run(tmp_path, 3)
    with Store(tmp_path) as now:
        now.put(redacted(make(occurrence=0, text="new")))
        now.flush()
        rewritten = now.path_for(Key("default", FP, 2))
        write_atomically(rewritten, codec.encode(redacted(make(occurrence=2, text="theirs"))))
        assert now.remove_above("default", FP, 0) == 1  # occurrence 1 only
        assert rewritten.exists()


def test_remove_above_of_a_fingerprint_this_run_never_wrote_removes_nothing(
    tmp_path: Path,
) -> None:
    with Store(tmp_path) as earlier:
        earlier.put(redacted(make(fp=OTHER, occurrence=3)))
    with Store(tmp_path) as now:
        now.put(redacted(make()))
        assert now.remove_above("default", OTHER, 0) == 0
        assert [k.fingerprint for _, k in now.entries()] == [FP, OTHER]
