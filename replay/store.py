"""The cassette store: one file per interaction, named `<namespace>/<fp[:2]>/<fp>.<n>.zst`.

Owns the layout (`entry_name`, `entries`; a namespace is a relative path of one or more
segments), lookups (`get`, `get_latest`) with a small LRU of decoded files, and writing:
`put` hands a `RedactedInteraction` to one background writer thread. Where the files live is
the backend's (backend.py: a local directory, written atomically, or an S3-compatible object
store read through a local cache, `s3://bucket/prefix`); nothing above the store knows which.
Does not know the file format (that is `codec.py`), how fingerprints are computed, or which
occurrence a request is (the engine counts those). Nothing here raises into a request on a
bad file or a failed write: both are logged and count as a miss / a dropped write. The one
error a lookup raises is StoreUnavailable: an object store that cannot be reached for a file
the local cache does not hold (its message names the store).

Writes replace (record mode), or with `claim_names` (auto mode) claim their name: exclusive
creation on a directory, a conditional put (`If-None-Match: *`) on an object store. A claim
that loses keeps the winner's file; `put`'s result (`Put`) tells it (`WriteOutcome.LOST`).
`check_claims` probes at startup that an object store enforces claims and whether the
credentials may write; a store that refuses a write for want of access turns read-only
(nothing more is written, lookups go on).

Names that are not `<fp>.<occurrence>.zst` (dotfiles, temp files, `*.dict`) are never read
as interactions. An entry is read only if it is a regular file: a symlink (never followed,
`O_NOFOLLOW`), a FIFO or a device is reported like a corrupt file, and so is a file that
decompresses to more than `max_body` bytes (decompression stops there).

In a local directory, one process writes a namespace at a time: occurrences are allocated by
the engine of that process, so a later write of the same key replaces the file. This is enforced
by a lock beside the namespace, `<root>/.<namespace>.lock` (dot-named: never read as an
interaction), holding the writer's pid and host as JSON. A store takes it on its first write
into the namespace (an exclusive `flock`, which the kernel drops when the process dies, so
the lock file of a dead process, even one killed with `kill -9`, is simply taken over) and
releases it on `close()`. While another live process (or another Store object) holds it,
this store refuses: one error line names the holder's pid and host, and every write of this
run into that namespace is dropped (`put`'s result is falsy) -- it does not wait, since a
recording split between two processes would interleave occurrences. Where `fcntl` does not
exist (Windows) there is no lock. Stores that claim names (auto mode) take the lock shared:
they may write the same namespace at once (their claims keep them from overwriting each
other), while a writer that replaces (record mode) still excludes every other. An object
store has no namespace lock.

`remove_above` (record mode's clean-stop clean-up) deletes a file above the given occurrence
only if this run knows its content: it wrote that file itself, or the file was already there,
unchanged (same inode, mtime and size), when this run first wrote that fingerprint. A file
written by anyone else since is never deleted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import queue
import re
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import zstandard

from replay.backend import (
    SUFFIX,
    Refused,
    Signature,
    entry_name,
    max_file_bytes,
    open_backend,
    parse_entry_name,
)
from replay.backend_local import make_dirs, read_entry, write_atomically
from replay.canonical import DEFAULT_MAX_BODY
from replay.codec import decode, encode, newest_dictionary, normalize
from replay.errors import (
    BadNamespace,
    CorruptEntry,
    StoreError,
    StoreLocked,
    StoreReadOnly,
    StoreUnavailable,
)
from replay.models import DEFAULT_NAMESPACE, Interaction, Key, RedactedInteraction

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no namespace lock
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

__all__ = [
    "SUFFIX",
    "Put",
    "Store",
    "WriteOutcome",
    "entry_name",
    "max_file_bytes",
    "parse_entry_name",
    "read_entry",
    "write_atomically",
]

_FINGERPRINT = re.compile(r"[0-9a-f]{2,128}")


def _plain_namespace(name: str) -> str:
    """`name` if it is a relative path of plain segments (`a/b/c`), else BadNamespace.

    The store's own guard against paths outside the root; user input is checked earlier
    (`config.check_namespace`, with reasons). Refused: an empty name or segment, a segment
    starting with `.` (`.`, `..`, hidden from the store), a leading `/`, `\\`, NUL and other
    control characters, a segment over 255 characters.
    """
    bad = (
        not name
        or any(ord(c) < 32 or ord(c) == 127 or c == "\\" for c in name)
        or any(not seg or seg[0] == "." or len(seg) > 255 for seg in name.split("/"))
    )
    if bad:
        raise BadNamespace(f"not a relative namespace of plain segments: {name!r}")
    return name


class WriteOutcome(StrEnum):
    """What became of one `put`."""

    PENDING = "pending"
    """Queued for the writer thread."""
    WRITTEN = "written"
    """Stored (for a claim: this run's answer won the name)."""
    LOST = "lost"
    """A claim (`claim_names`) found the name taken by another writer: its file is kept,
    this answer is dropped, and lookups see the winner's answer from now on."""
    FAILED = "failed"
    """The write failed (logged as an error); the interaction is dropped."""
    REFUSED = "refused"
    """Not queued: another process writes the namespace, or the store is read-only."""


class Put:
    """The result of `Store.put`: truthy if the write was queued. `outcome` is PENDING until
    the writer thread has tried it; `wait` and `add_done_callback` learn the end."""

    __slots__ = ("_callbacks", "_done", "_lock", "outcome")

    def __init__(self, outcome: WriteOutcome = WriteOutcome.PENDING) -> None:
        self.outcome = outcome
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[WriteOutcome], None]] = []
        if outcome is not WriteOutcome.PENDING:
            self._done.set()

    def __bool__(self) -> bool:
        return self.outcome is not WriteOutcome.REFUSED

    def __repr__(self) -> str:
        return f"Put({self.outcome.value})"

    def wait(self, timeout: float | None = None) -> WriteOutcome:
        """The outcome once the writer has tried (PENDING if `timeout` ran out first)."""
        self._done.wait(timeout)
        return self.outcome

    def add_done_callback(self, callback: Callable[[WriteOutcome], None]) -> None:
        """Call `callback(outcome)` once the write is done: at once if it is, else on the
        store's writer thread (keep it short; exceptions are logged)."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        _call(callback, self.outcome)

    def _finish(self, outcome: WriteOutcome) -> None:
        with self._lock:
            self.outcome = outcome
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            _call(callback, outcome)


def _call(callback: Callable[[WriteOutcome], None], outcome: WriteOutcome) -> None:
    try:
        callback(outcome)
    except Exception:
        logger.exception("a put's done callback failed")


@dataclass(slots=True)
class _Cached:
    signature: Signature
    interaction: Interaction | None
    """None: the file at this signature is corrupt (already logged)."""
    weight: int


@dataclass(slots=True)
class _Write:
    key: Key
    name: str
    ri: RedactedInteraction
    pending: Interaction
    exclusive: bool
    result: Put


@dataclass(slots=True)
class _RemoveAbove:
    namespace: str
    fingerprint: str
    occurrence: int
    done: threading.Event = field(default_factory=threading.Event)
    removed: int = 0


_Job = _Write | _RemoveAbove | None


def _weight(interaction: Interaction | None) -> int:
    """Rough memory cost of a cached interaction: its body bytes plus a fixed overhead."""
    if interaction is None:
        return 256
    return 1024 + len(interaction.request.body) + sum(64 + len(c.data) for c in interaction.chunks)


def _split_entry(name: str) -> tuple[str, str, int] | None:
    """(namespace, fingerprint, occurrence) of a file name `<ns>/<fp[:2]>/<fp>.<n>.zst`
    (the namespace any number of segments), None for any other name."""
    parts = name.split("/")
    if len(parts) < 3 or any(p.startswith(".") or not p for p in parts):
        return None
    parsed = parse_entry_name(parts[-1])
    if parsed is None or parts[-2] != parsed[0][:2]:
        return None
    return "/".join(parts[:-2]), parsed[0], parsed[1]


class Store:
    """Interaction files in a backend (a directory or an object store, see backend.py);
    safe to share between the loop and writer threads.

    `claim_names` (`auto` mode): a write claims its name and never replaces another
    writer's file (the loser keeps the winner's answer: `WriteOutcome.LOST`), and proxies
    that claim share a namespace (its lock is taken shared; a non-claiming writer, record
    mode, still excludes them). `cache_dir`: the read-through cache of an object store.
    """

    def __init__(
        self,
        root: str | Path,
        cache_bytes: int = 64 * 2**20,
        max_body: int = DEFAULT_MAX_BODY,
        *,
        cache_dir: str | Path | None = None,
        claim_names: bool = False,
    ) -> None:
        # Nothing touches the disk or the network here: startup cost must not grow with
        # the store.
        self.root = Path(root)
        self.location = str(root)
        self._backend = open_backend(root, cache_dir)
        self.cache_bytes = cache_bytes
        self.max_body = max_body
        """The largest decompressed file read (`replay_max_body`); larger ones are corrupt."""
        self.claim_names = claim_names
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending: dict[Key, Interaction] = {}
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._cache_weight = 0
        self._epoch = 0  # bumped by every put/remove: a read that raced one is not cached
        self._listings: dict[tuple[str, str], tuple[int, list[int]]] = {}
        self._unfinished = 0
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._retired: threading.Thread | None = None  # a closed writer still draining
        self._locks: dict[str, int] = {}  # namespace -> fd of its held lock file
        self._refused: dict[str, StoreLocked] = {}  # namespaces another writer holds
        self._logged_refusals: set[str] = set()
        self._read_only: StoreReadOnly | None = None
        self._before: dict[tuple[str, str], dict[int, Signature]] = {}
        """(namespace, fp) -> its files when this run first wrote it (see remove_above)."""
        self._wrote: dict[tuple[str, str], dict[int, Signature]] = {}
        """(namespace, fp) -> the files this run wrote, as written."""
        self._dict_stamp: int | None = None
        self._dict: zstandard.ZstdCompressionDict | None = None

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- layout ---------------------------------------------------------------------------

    def path_for(self, key: Key) -> Path:
        """Where `key` lives (a local store's file). Raises BadNamespace or StoreError for a
        key that cannot be a path."""
        return self.root / self._resolve(key)[1]

    def describe(self, key: Key) -> str:
        """Where `key` lives, as the user finds it: a path, or an `s3://` URL."""
        return self._backend.describe(self._resolve(key)[1])

    def _resolve(self, key: Key) -> tuple[Key, str]:
        """`key` with its namespace defaulted, and its name in the backend; validates every
        part."""
        namespace = _plain_namespace(key.namespace or DEFAULT_NAMESPACE)
        fp, occurrence = key.fingerprint, key.occurrence
        if not isinstance(fp, str) or not _FINGERPRINT.fullmatch(fp):
            raise StoreError(f"not a lower-case hex fingerprint: {fp!r}")
        if isinstance(occurrence, bool) or not isinstance(occurrence, int) or occurrence < 0:
            raise StoreError(f"not an occurrence number: {occurrence!r}")
        return Key(namespace, fp, occurrence), f"{namespace}/{fp[:2]}/{entry_name(fp, occurrence)}"

    def entries(self, namespace: str | None = None) -> Iterator[tuple[Path, Key]]:
        """Every interaction file, sorted by namespace (a namespace before those nested in
        it), fingerprint, occurrence.

        A namespace is a relative path (`a/b/c`): files are found at any depth as
        `<namespace>/<fp[:2]>/<fp>.<n>.zst`; with `namespace`, only that namespace's own
        (not those nested below it). The path is the file's for a local store; read an
        entry of any store with `read_file`. Only files: call `flush()` first to include
        pending writes. Dot-named and other foreign names are skipped at every level.
        """
        prefix = _plain_namespace(namespace) if namespace is not None else ""
        found = []
        for name in self._backend.names(prefix):
            parsed = _split_entry(name)
            if parsed is not None and (namespace is None or parsed[0] == prefix):
                found.append((parsed, name))
        # By namespace segments: a namespace, then those nested in it, then its siblings.
        found.sort(key=lambda item: (item[0][0].split("/"), item[0][1], item[0][2]))
        for (ns, fp, occurrence), name in found:
            yield self.root / name, Key(ns, fp, occurrence)

    def raw_names(self) -> list[str]:
        """Every file name of the store (interactions and `*.dict`), relative, sorted; for
        copying a store (`transfer.py`)."""
        return sorted(self._backend.names(""))

    def read_raw(self, name: str) -> bytes:
        """The bytes of the file `name` (from `raw_names`), read safely and capped."""
        got = self._backend.read(name, self.max_body)
        if got is None or got[1] is None:
            raise FileNotFoundError(errno.ENOENT, "no such store file", self.describe_name(name))
        return got[1]

    def create_raw(self, name: str, data: bytes) -> bool:
        """Write the file `name` unless the store has it (never replaced); False if it has."""
        return self._backend.create(name, data) is not None

    def describe_name(self, name: str) -> str:
        """The file `name` as a user finds it (a path, or an `s3://` URL)."""
        return self._backend.describe(name)

    def read_file(self, path: str | Path, max_file_bytes: int | None = None) -> bytes | None:
        """The raw bytes (for `codec.decode`) of a file that `entries()` yielded, from any
        backend, read safely and capped at what `max_body` allows; None if the file is larger
        than `max_file_bytes` (not read, for a local store). Raises FileNotFoundError if it
        is gone, CorruptEntry for a file that is refused, OSError or StoreUnavailable when
        it cannot be read."""
        name = Path(path).relative_to(self.root).as_posix()
        local = max_file_bytes is not None and self._backend.local
        if local and os.lstat(path).st_size > (max_file_bytes or 0):
            return None
        got = self._backend.read(name, self.max_body)
        if got is None:
            raise FileNotFoundError(errno.ENOENT, "no such store entry", str(path))
        data = got[1]
        assert data is not None  # read without `unless` always returns the bytes
        return None if max_file_bytes is not None and len(data) > max_file_bytes else data

    # --- lookups --------------------------------------------------------------------------

    def get(self, key: Key) -> Interaction | None:
        """The interaction stored (or waiting to be written) under exactly `key`, or None.

        A corrupt or unreadable file is logged (warning, with path and reason) and is a miss.
        Raises StoreUnavailable (naming the store) when an object store cannot be reached
        and the file is not in the local cache.
        """
        key, name = self._resolve(key)
        with self._lock:
            pending = self._pending.get(key)
        if pending is not None:
            return pending
        return self._load(name, key)[1]

    def get_latest(self, key: Key) -> Interaction | None:
        """`key`'s occurrence if stored, else the highest stored occurrence below it.

        Past the last recorded occurrence, the last repeats. A corrupt file is a miss: it is
        not skipped in favour of an older occurrence. The fingerprint's occurrences are
        listed only when the exact file is missing. When an object store cannot be reached,
        the local cache answers if it can, else StoreUnavailable.
        """
        key, name = self._resolve(key)
        with self._lock:
            pending = self._pending.get(key)
            below = {
                k.occurrence: i
                for k, i in self._pending.items()
                if k.occurrence < key.occurrence
                and k.fingerprint == key.fingerprint
                and k.namespace == key.namespace
            }
        if pending is not None:
            return pending
        down: StoreUnavailable | None = None
        listed = self._fresh_listing(key)
        if listed is None or key.occurrence in listed:  # a known-missing file costs nothing
            try:
                exists, interaction = self._load(name, key)
            except StoreUnavailable as exc:
                exists, interaction, down = False, None, exc
            if exists:
                return interaction
        if listed is None:
            listed = self._listed(key, memo=down is None)
        on_disk = [o for o in listed if o < key.occurrence]
        best = max([*below, *on_disk], default=None)
        if best is None:
            if down is not None:
                raise down
            return None
        if best in below:
            return below[best]
        found = key._replace(occurrence=best)
        return self._load(self._resolve(found)[1], found)[1]

    def _fresh_listing(self, key: Key) -> list[int] | None:
        """The memoised listing of `key`'s fingerprint, if no put or remove came since."""
        with self._lock:
            memo = self._listings.get((key.namespace, key.fingerprint))
            return memo[1] if memo is not None and memo[0] == self._epoch else None

    def _listed(self, key: Key, memo: bool = True) -> list[int]:
        """The stored occurrences of `key`'s fingerprint, listed once per store epoch.

        Replaying past the last occurrence asks this on every repeat; a put or remove by
        this store bumps the epoch and so forces a new listing. (Files added to the store
        by another process while a proxy replays are seen at their exact occurrence only.)
        An object store that cannot be listed answers with the local cache's copies (not
        memoised).
        """
        memo_key = (key.namespace, key.fingerprint)
        with self._lock:
            epoch = self._epoch
        shard = f"{key.namespace}/{key.fingerprint[:2]}"
        try:
            occurrences = list(self._backend.occurrences(shard, key.fingerprint, stale_ok=False))
        except StoreUnavailable:
            return list(self._backend.occurrences(shard, key.fingerprint, stale_ok=True))
        if memo:
            with self._lock:
                if len(self._listings) >= 4096:
                    self._listings.clear()
                self._listings[memo_key] = (epoch, occurrences)
        return occurrences

    def _load(self, name: str, key: Key) -> tuple[bool, Interaction | None]:
        """(the file exists, its interaction or None if bad), through the cache.

        A cache hit costs one stat; a corrupt file's verdict is cached too, so it is logged
        once per version of the file, not on every request.
        """
        with self._lock:
            cached = self._cache.get(name)
            known = cached.signature if cached is not None else None
            epoch = self._epoch
        path = self._backend.describe(name)
        try:
            got = self._backend.read(name, self.max_body, known)
        except Refused as exc:
            logger.warning("corrupt cassette %s: %s (treated as a miss)", path, exc.reason)
            self._remember(name, exc.signature, None, epoch)
            return True, None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            logger.warning("cannot read cassette %s: %s (treated as a miss)", path, reason)
            return True, None
        if got is None:
            return False, None
        signature, data = got
        if data is None and cached is not None:
            with self._lock:
                if name in self._cache:
                    self._cache.move_to_end(name)
            return True, cached.interaction
        if data is None:  # pragma: no cover - a backend answers None only for `known`
            return False, None
        interaction = self._decode(data, path, key)
        self._remember(name, signature, interaction, epoch)
        return True, interaction

    def _decode(self, data: bytes, path: str, key: Key) -> Interaction | None:
        try:
            interaction = decode(data, path, self.max_body)
            if interaction.key.fingerprint != key.fingerprint:
                fp = interaction.key.fingerprint
                raise CorruptEntry(path, f"file holds fingerprint {fp}, not its name's")
        except CorruptEntry as exc:
            logger.warning("corrupt cassette %s: %s (treated as a miss)", path, exc.reason)
            return None
        # The name is authoritative for namespace and occurrence (a copied namespace works).
        if interaction.key != key:
            interaction = replace(interaction, key=key)
        return interaction

    def _remember(
        self, name: str, signature: Signature, interaction: Interaction | None, epoch: int
    ) -> None:
        weight = _weight(interaction)
        with self._lock:
            if epoch != self._epoch or weight > self.cache_bytes:
                return  # a put or remove raced this read, or it would not fit
            old = self._cache.pop(name, None)
            if old is not None:
                self._cache_weight -= old.weight
            self._cache[name] = _Cached(signature, interaction, weight)
            self._cache_weight += weight
            while self._cache_weight > self.cache_bytes:
                _, evicted = self._cache.popitem(last=False)
                self._cache_weight -= evicted.weight

    def _forget(self, name: str) -> None:
        """Drop `name` from the cache; caller holds the lock."""
        self._epoch += 1
        old = self._cache.pop(name, None)
        if old is not None:
            self._cache_weight -= old.weight

    # --- writes ---------------------------------------------------------------------------

    def put(self, ri: RedactedInteraction) -> Put:
        """Store `ri` without waiting for the disk; lookups see it at once. The result is
        falsy (REFUSED), and nothing stored, when another process writes its namespace (see
        `claim`) or the store is read-only; else it tells later whether the write was done,
        failed, or (`claim_names`) lost its name to another writer.

        The write happens on the writer thread; a failure there is logged (error) and the
        interaction is dropped. Raises only for a wrong type or a key that cannot be a path.
        """
        if not isinstance(ri, RedactedInteraction):
            raise TypeError(f"Store.put takes a RedactedInteraction, not {type(ri).__name__}")
        key, name = self._resolve(ri.interaction.key)
        if not self.may_write(key.namespace):
            return Put(WriteOutcome.REFUSED)
        # Pending holds what a read of the file will return, so both answers are equal.
        pending = normalize(ri.interaction)
        if pending.key != key:
            pending = replace(pending, key=key)
        job = _Write(key, name, ri, pending, self.claim_names, Put())
        with self._lock:
            self._pending[key] = job.pending
            self._forget(name)
            self._submit(job)
        return job.result

    def check_claims(self) -> bool:
        """Whether `auto` can record here: True if the store enforces claims, False (one
        warning; every write is refused from now on) if the credentials are read-only.
        Raises StoreError (one line naming the store) if the store accepts a claim but does
        not enforce it (some S3-compatible servers ignore `If-None-Match`), StoreUnavailable
        if it cannot be reached. Costs two writes and a delete on an object store; call it
        once at startup in `auto` mode."""
        if not self._backend.check_claims():
            self._went_read_only(
                StoreReadOnly(f"the store {self.location} refuses writes (read-only credentials)")
            )
            return False
        return True

    @property
    def remote(self) -> bool:
        """True if a lookup of a file not yet cached waits on the network (an object
        store): make such lookups off the event loop."""
        return not self._backend.local

    @property
    def read_only(self) -> bool:
        """True once a write was refused for want of write access: nothing is written."""
        return self._read_only is not None

    def _went_read_only(self, exc: StoreReadOnly) -> None:
        with self._lock:
            first = self._read_only is None
            self._read_only = exc
        if first:
            logger.warning("replay: %s; replaying only, nothing is recorded", exc)

    # --- the namespace lock ---------------------------------------------------------------

    def lock_path(self, namespace: str) -> Path:
        """The lock file of `namespace`: `<root>/.<namespace>.lock`."""
        return self.root / f".{_plain_namespace(namespace or DEFAULT_NAMESPACE)}.lock"

    def claim(self, namespace: str) -> None:
        """Take the write lock of `namespace` now (idempotent); StoreLocked if another live
        process or Store holds it. `put` claims on its own; call this to fail early. A
        store that `claim_names` takes it shared (with other such stores); an object store
        has no lock (its writes claim names)."""
        namespace = _plain_namespace(namespace or DEFAULT_NAMESPACE)
        with self._lock:
            if namespace in self._locks or fcntl is None or not self._backend.local:
                return
            refused = self._refused.get(namespace)
            if refused is not None:
                raise refused
            try:
                self._locks[namespace] = self._take_lock(namespace, self.claim_names)
            except StoreLocked as exc:
                self._refused[namespace] = exc
                raise

    def may_write(self, namespace: str) -> bool:
        """Claim `namespace` for writing; False (one error line per namespace) if refused,
        or if the store is read-only."""
        if self._read_only is not None:
            return False
        if namespace in self._locks or fcntl is None or not self._backend.local:
            return True
        try:
            self.claim(namespace)
        except StoreLocked as exc:
            with self._lock:
                first = namespace not in self._logged_refusals
                self._logged_refusals.add(namespace)
            if first:
                logger.error("replay: %s; its recordings are dropped", exc)
            return False
        except OSError as exc:  # cannot create the lock (read-only root...): the write fails
            logger.error("cannot lock namespace %r: %s", namespace, exc.strerror or exc)
            return True  # the write will report its own error
        return True

    def _take_lock(self, namespace: str, shared: bool = False) -> int:
        """An fd holding `flock` on the namespace's lock file (exclusive, or `shared`), with
        our pid and host written in it; StoreLocked naming the holder if the lock is held."""
        assert fcntl is not None
        path = self.lock_path(namespace)
        make_dirs(path.parent)
        for _ in range(10):  # bounded: retried only if a holder removed the file meanwhile
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
            fd = os.open(path, flags, 0o644)
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_lock(fd)
                os.close(fd)
                pid = holder.get("pid")
                raise StoreLocked(
                    namespace,
                    pid if isinstance(pid, int) else 0,
                    str(holder.get("host", "an unknown host")),
                    str(path),
                ) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                if os.fstat(fd).st_ino != os.lstat(path).st_ino:
                    os.close(fd)  # the file we locked was unlinked by its releasing holder
                    continue
            except FileNotFoundError:
                os.close(fd)
                continue
            stale = _read_lock(fd)
            if stale and not shared:
                logger.info(
                    "replay: took over the lock of namespace %r left by pid %s on %s",
                    namespace,
                    stale.get("pid"),
                    stale.get("host"),
                )
            mine = {"pid": os.getpid(), "host": socket.gethostname()}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(mine).encode("utf-8") + b"\n", 0)
            return fd
        raise OSError(f"the lock file {path} keeps disappearing")

    def _release_locks(self) -> None:
        with self._lock:
            locks, self._locks = self._locks, {}
            self._refused.clear()
            self._logged_refusals.clear()
            self._before.clear()
            self._wrote.clear()
        for namespace, fd in locks.items():
            # Removed only while held exclusively: a shared holder removes it only if it is
            # the last one (the upgrade succeeds), never under another holder's feet.
            assert fcntl is not None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            with contextlib.suppress(OSError):
                os.unlink(self.lock_path(namespace))  # while still locked: no one holds it
            os.close(fd)

    def remove_above(self, namespace: str, fingerprint: str, occurrence: int) -> int:
        """Delete the occurrences of `fingerprint` above `occurrence` that this run
        superseded; their count.

        Only files whose content this run knows are deleted: those it wrote, and those that
        were there, unchanged, when it first wrote `fingerprint` (module docstring). Runs on
        the writer thread after every put made before the call, so a pending write of an
        occurrence above `occurrence` is written and then removed. Blocks until done.
        Nothing is deleted in a namespace whose lock another process holds.
        """
        key, _ = self._resolve(Key(namespace, fingerprint, occurrence))
        if not self.may_write(key.namespace):
            return 0
        job = _RemoveAbove(key.namespace, fingerprint, occurrence)
        with self._lock:
            self._submit(job)
        job.done.wait()
        return job.removed

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued write is done; False if `timeout` seconds ran out first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unfinished == 0, timeout)

    def close(self) -> None:
        """Flush and stop the writer thread. Idempotent; a later put starts a new writer."""
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                self._queue.put(None)
                self._retired = writer
        if writer is not None:
            writer.join()
        self._release_locks()

    def _submit(self, job: _Write | _RemoveAbove) -> None:
        """Queue `job`, starting the writer if needed; caller holds the lock."""
        self._unfinished += 1
        if self._writer is None:
            # Each writer has its own queue and first waits for the one closed before it,
            # so writes stay in put order across a close().
            self._queue = queue.SimpleQueue()
            self._writer = threading.Thread(
                target=self._run_writer,
                args=(self._queue, self._retired),
                name="replay-store-writer",
                daemon=True,
            )
            self._retired = None
            self._writer.start()
        self._queue.put(job)

    def _run_writer(self, jobs: queue.SimpleQueue[_Job], previous: threading.Thread | None) -> None:
        if previous is not None:
            previous.join()
        while (job := jobs.get()) is not None:
            try:
                if isinstance(job, _Write):
                    self._write(job)
                else:
                    self._remove_above(job)
            except Exception:  # a bug must not kill the writer and hang flush()
                logger.exception("store writer failed on %r", job)
            finally:
                if isinstance(job, _RemoveAbove):
                    job.done.set()
                with self._idle:
                    self._unfinished -= 1
                    self._idle.notify_all()

    def _write(self, job: _Write) -> None:
        key, name = job.key, job.name
        outcome = WriteOutcome.FAILED
        try:
            known = (key.namespace, key.fingerprint)
            if known not in self._before and not job.exclusive:  # a first replacing write
                self._before[known] = self._listed_before(name, key)
            dictionary = self._dictionary()  # after `replay compact`: its newest dictionary
            data = encode(job.ri, dictionary=dictionary, limit=self.max_body)
            if job.exclusive:
                signature = self._backend.create(name, data)
            else:
                signature = self._backend.replace(name, data)
            if signature is None:
                outcome = WriteOutcome.LOST
                logger.info(
                    "replay: %s was recorded first by another proxy: its answer is kept, "
                    "this one dropped",
                    self._backend.describe(name),
                )
            else:
                outcome = WriteOutcome.WRITTEN
                self._wrote.setdefault(known, {})[key.occurrence] = signature
        except StoreReadOnly as exc:
            self._went_read_only(exc)
            logger.error("cannot write cassette %s: read-only store (interaction dropped)", name)
        except (OSError, ValueError, StoreError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            where = self._backend.describe(name)
            logger.error("cannot write cassette %s: %s (interaction dropped)", where, reason)
        finally:
            with self._lock:
                if self._pending.get(job.key) is job.pending:
                    del self._pending[job.key]
                self._forget(name)
            job.result._finish(outcome)

    def _listed_before(self, name: str, key: Key) -> dict[int, Signature]:
        """The files of `key`'s fingerprint before this run wrote it; none if they cannot be
        listed (then `remove_above` deletes only what this run wrote)."""
        try:
            return self._backend.occurrences(name.rsplit("/", 1)[0], key.fingerprint)
        except StoreError as exc:
            logger.warning("replay: cannot list %s: %s", self._backend.describe(name), exc)
            return {}

    def _dictionary(self) -> zstandard.ZstdCompressionDict | None:
        """The store's newest `*.dict` (`replay compact`), looked up again only when the
        root directory changed; called from the writer thread only. A remote store has
        none (its files are written without a dictionary)."""
        if self.remote:
            return None
        try:
            stamp = os.stat(self.root).st_mtime_ns
        except OSError:
            return None
        if stamp != self._dict_stamp:
            self._dict_stamp, self._dict = stamp, newest_dictionary(self.root)
        return self._dict

    def _remove_above(self, job: _RemoveAbove) -> None:
        shard = f"{job.namespace}/{job.fingerprint[:2]}"
        before = self._before.get((job.namespace, job.fingerprint), {})
        wrote = self._wrote.get((job.namespace, job.fingerprint), {})
        try:
            stored = self._backend.occurrences(shard, job.fingerprint)
        except StoreError as exc:
            logger.error("cannot list %s to clean up: %s", shard, exc)
            return
        for occurrence, signature in sorted(stored.items()):
            if occurrence <= job.occurrence:
                continue
            name = f"{shard}/{entry_name(job.fingerprint, occurrence)}"
            if signature not in (before.get(occurrence), wrote.get(occurrence)):
                logger.warning(
                    "replay: kept %s: not written by this run nor there when it began "
                    "recording this request (another process wrote it)",
                    self._backend.describe(name),
                )
                continue
            with self._lock:
                self._forget(name)
            try:
                self._backend.delete(name)
                job.removed += 1
            except (OSError, StoreError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                logger.error("cannot remove cassette %s: %s", self._backend.describe(name), reason)


def _read_lock(fd: int) -> dict[str, object]:
    """The JSON object in a lock file (empty if none or not JSON)."""
    try:
        value = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
