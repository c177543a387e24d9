"""Claims (auto mode's writes): the protocol proved against a backend double that holds two
claims of one name in flight and resolves them in a set order (so nothing depends on a real
server's atomicity), and a local directory's exclusive creation under two writer processes.
Also: `Put` results, entries of nested namespaces, the read-through cache's bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_store import FP, OTHER, make, redacted, text_of

from replay import codec
from replay.backend import Signature
from replay.errors import StoreLocked
from replay.models import Key
from replay.readcache import ReadCache
from replay.store import Store, WriteOutcome


class TwoClaims:
    """An in-memory backend whose `create` is atomic but holds every claim until `hold`
    claims are in flight, then lets them decide one at a time, in arrival order."""

    local = False

    def __init__(self, hold: int = 2) -> None:
        self.location = "memory://double"
        self.files: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._arrived = threading.Barrier(hold, timeout=30)
        self._turn = threading.Condition()
        self._order: list[int] = []
        self.decided: list[tuple[int, bool]] = []

    def describe(self, name: str) -> str:
        return f"{self.location}/{name}"

    def read(
        self, name: str, max_body: int, unless: Signature | None = None
    ) -> tuple[Signature, bytes | None] | None:
        with self._lock:
            data = self.files.get(name)
        if data is None:
            return None
        signature: Signature = (hash(data),)
        return (signature, None) if signature == unless else (signature, data)

    def occurrences(
        self, shard: str, fingerprint: str, stale_ok: bool = False
    ) -> dict[int, Signature]:
        with self._lock:
            return {
                int(name.rsplit("/", 1)[1].split(".")[1]): (hash(data),)
                for name, data in self.files.items()
                if name.startswith(f"{shard}/{fingerprint}.")
            }

    def create(self, name: str, data: bytes) -> Signature | None:
        me = threading.get_ident()
        with self._turn:
            self._order.append(me)
        self._arrived.wait()  # both claims are in flight: neither has decided yet
        with self._turn:
            assert self._turn.wait_for(lambda: self._order[0] == me, 30)
            with self._lock:
                won = name not in self.files
                if won:
                    self.files[name] = data
            self.decided.append((me, won))
            self._order.pop(0)
            self._turn.notify_all()
        return (hash(data),) if won else None

    def replace(self, name: str, data: bytes) -> Signature:
        with self._lock:
            self.files[name] = data
        return (hash(data),)

    def delete(self, name: str) -> None:
        with self._lock:
            self.files.pop(name, None)

    def names(self, prefix: str = "") -> Iterator[str]:
        with self._lock:
            return iter(sorted(n for n in self.files if n.startswith(prefix)))

    def check_claims(self) -> bool:
        return True


def on(backend: TwoClaims) -> Store:
    store = Store("memory-double", claim_names=True)
    store._backend = backend
    return store


def test_two_claims_in_flight_one_wins_the_other_keeps_the_winners_answer() -> None:
    backend = TwoClaims()
    first, second = on(backend), on(backend)
    a = first.put(redacted(make(text="first")))
    b = second.put(redacted(make(text="second")))
    assert a.wait(30) is not WriteOutcome.PENDING and b.wait(30) is not WriteOutcome.PENDING
    assert sorted([a.outcome, b.outcome]) == [WriteOutcome.LOST, WriteOutcome.WRITTEN]
    assert [won for _, won in backend.decided] == [True, False]  # both were in flight
    winner = "first" if a.outcome is WriteOutcome.WRITTEN else "second"
    [stored] = backend.files.values()
    assert text_of(codec.decode(stored)) == winner
    for store in (first, second):  # the loser's own answer is gone: it sees the winner's
        assert text_of(store.get(Key("default", FP, 0))) == winner
        assert text_of(store.get_latest(Key("default", FP, 5))) == winner
    first.close()
    second.close()


def test_a_lost_claim_is_never_cleaned_up_by_the_loser() -> None:
    backend = TwoClaims()
    first, second = on(backend), on(backend)
    a = first.put(redacted(make(occurrence=1, text="first")))
    b = second.put(redacted(make(occurrence=1, text="second")))
    a.wait(30), b.wait(30)
    loser = first if a.outcome is WriteOutcome.LOST else second
    assert loser.remove_above("default", FP, 0) == 0  # not its file: kept
    assert len(backend.files) == 1
    first.close()
    second.close()


def test_a_done_callback_learns_the_outcome_once() -> None:
    backend = TwoClaims(hold=1)
    store = on(backend)
    seen: list[WriteOutcome] = []
    store.put(redacted(make())).add_done_callback(seen.append)
    assert store.flush(30)
    late = store.put(redacted(make(text="again")))  # the same name: taken
    assert late.wait(30) is WriteOutcome.LOST
    late.add_done_callback(seen.append)  # already done: called at once
    assert seen == [WriteOutcome.WRITTEN, WriteOutcome.LOST]
    store.close()


# --- a local directory: exclusive creation ------------------------------------------------

WRITER = textwrap.dedent(
    """
    import json, sys
    from test_store import make, redacted
    from replay.store import Store
    root, text, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store(root, claim_names=True)
    store.claim("default")
    print("ready", flush=True)
    sys.stdin.readline()  # both writers start together
    results = [store.put(redacted(make(occurrence=n, text=text))) for n in range(count)]
    store.flush()
    print(json.dumps([r.outcome.value for r in results]), flush=True)
    sys.stdin.readline()
    store.close()
    """
)


TEST_PATHS = (Path(__file__).parent, Path(__file__).parents[1])


def test_two_writer_processes_claim_each_name_once(tmp_path: Path) -> None:
    count = 40
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), text, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parent,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, TEST_PATHS))},
            text=True,
        )
        for text in ("one", "two")
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline() == "ready\n"
        # Both hold the namespace (shared): a writer that replaces (record mode) is refused.
        with Store(tmp_path) as recorder, pytest.raises(StoreLocked):
            recorder.claim("default")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outcomes = []
        for child in children:
            assert child.stdout is not None
            outcomes.append(json.loads(child.stdout.readline()))
        for child in children:
            assert child.stdin is not None
            child.stdin.write("stop\n")
            child.stdin.flush()
            assert child.wait(30) == 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(10)
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()
    with Store(tmp_path) as reader:
        for n in range(count):
            mine = [outcomes[0][n], outcomes[1][n]]
            assert sorted(mine) == ["lost", "written"], (n, mine)
            winner = "one" if outcomes[0][n] == "written" else "two"
            assert text_of(reader.get(Key("default", FP, n))) == winner
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]  # nothing half-done
    assert not (tmp_path / ".default.lock").exists()  # the last one out removed it


def test_a_claiming_store_does_not_replace_a_file() -> None:
    backend = TwoClaims(hold=1)
    store = on(backend)
    store.put(redacted(make(text="old"))).wait(30)
    store.claim_names = False  # record mode replaces
    assert store.put(redacted(make(text="new"))).wait(30) is WriteOutcome.WRITTEN
    assert text_of(store.get(Key("default", FP, 0))) == "new"
    store.close()


def test_a_refused_put_is_falsy_and_done(tmp_path: Path) -> None:
    with Store(tmp_path) as holder, Store(tmp_path) as other:
        assert not holder.remote
        assert holder.put(redacted(make())).wait(30) is WriteOutcome.WRITTEN
        refused = other.put(redacted(make(occurrence=1)))
        assert not refused and refused.wait(0) is WriteOutcome.REFUSED


# --- entries, nested namespaces ------------------------------------------------------------


def test_entries_find_namespaces_at_any_depth(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        for ns in ("plain", "deep/er/still"):
            target = tmp_path / ns / FP[:2] / f"{FP}.0.zst"
            target.parent.mkdir(parents=True)
            target.write_bytes(b"x")
        (tmp_path / "deep" / OTHER[:2]).mkdir()
        (tmp_path / "deep" / OTHER[:2] / f"{OTHER}.3.zst").write_bytes(b"x")
        (tmp_path / "deep" / ".hidden" / FP[:2]).mkdir(parents=True)
        (tmp_path / "deep" / ".hidden" / FP[:2] / f"{FP}.0.zst").write_bytes(b"x")
        listed = [(k.namespace, k.fingerprint[:2], k.occurrence) for _, k in store.entries()]
        assert listed == [("deep", "cd", 3), ("deep/er/still", "ab", 0), ("plain", "ab", 0)]
        assert [k.namespace for _, k in store.entries("deep")] == ["deep"]


# --- the read-through cache ----------------------------------------------------------------


def test_the_cache_is_bounded_and_evicts_the_oldest(tmp_path: Path) -> None:
    cache = ReadCache(tmp_path, "s3://bucket/x", max_bytes=10_000)
    for n in range(30):
        assert cache.put(f"ns/ab/{FP}.{n}.zst", bytes(1000)) is not None
    kept = sorted(int(p.name.split(".")[1]) for p in cache.directory.rglob("*.zst"))
    assert sum(p.stat().st_size for p in cache.directory.rglob("*.zst")) <= 10_000
    assert kept == list(range(30 - len(kept), 30))  # the newest are kept
    assert cache.read(f"ns/ab/{FP}.29.zst", 2**20) is not None
    assert cache.read(f"ns/ab/{FP}.0.zst", 2**20) is None
