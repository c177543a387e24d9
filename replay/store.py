"""The cassette store: one file per interaction under `<root>/<namespace>/<fp[:2]>/`.

Owns the layout (`entry_name`, `entries`), lookups (`get`, `get_latest`) with a small LRU of
decoded files, and writing: `put` hands a `RedactedInteraction` to one background writer
thread that writes atomically (dot-named temp file, fsync, `os.replace`, directory fsync).
Does not know the file format (that is `codec.py`), how fingerprints are computed, or which
occurrence a request is (the engine counts those). Nothing here raises into a request on a
bad file or a failed write: both are logged and count as a miss / a dropped write.

Names that are not `<fp>.<occurrence>.zst` (dotfiles, temp files, `*.dict`) are never read
as interactions. An entry is read only if it is a regular file: a symlink (never followed,
`O_NOFOLLOW`), a FIFO or a device is reported like a corrupt file, and so is a file that
decompresses to more than `max_body` bytes (decompression stops there).

One process writes a namespace at a time: occurrences are allocated by the engine of that
process, so a later write of the same key replaces the file (record mode). This is enforced
by a lock beside the namespace, `<root>/.<namespace>.lock` (dot-named: never read as an
interaction), holding the writer's pid and host as JSON. A store takes it on its first write
into the namespace (an exclusive `flock`, which the kernel drops when the process dies, so
the lock file of a dead process, even one killed with `kill -9`, is simply taken over) and
releases it on `close()`. While another live process (or another Store object) holds it,
this store refuses: one error line names the holder's pid and host, and every write of this
run into that namespace is dropped (`put` returns False) -- it does not wait, since a
recording split between two processes would interleave occurrences. Where `fcntl` does not
exist (Windows) there is no lock.

`remove_above` (record mode's clean-stop clean-up) deletes a file above the given occurrence
only if this run knows its content: it wrote that file itself, or the file was already there,
unchanged (same inode, mtime and size), when this run first wrote that fingerprint. A file
written by anyone else since is never deleted.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import secrets
import socket
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import zstandard

from replay.canonical import DEFAULT_MAX_BODY
from replay.codec import decode, encode, newest_dictionary, normalize
from replay.errors import BadNamespace, CorruptEntry, StoreError, StoreLocked
from replay.models import DEFAULT_NAMESPACE, Interaction, Key, RedactedInteraction

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no namespace lock
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

SUFFIX = ".zst"
_FINGERPRINT = re.compile(r"[0-9a-f]{2,128}")
_ENTRY = re.compile(r"([0-9a-f]{2,128})\.(0|[1-9][0-9]{0,17})\.zst")
_Signature = tuple[int, int, int]
"""(st_ino, st_mtime_ns, st_size) of a file: a changed file has a changed signature."""


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


def entry_name(fingerprint: str, occurrence: int) -> str:
    """The file name of an occurrence: `<fingerprint>.<occurrence>.zst`."""
    return f"{fingerprint}.{occurrence}{SUFFIX}"


def parse_entry_name(name: str) -> tuple[str, int] | None:
    """(fingerprint, occurrence) of an interaction file's name, None for any other name."""
    m = _ENTRY.fullmatch(name)
    return (m[1], int(m[2])) if m else None


@dataclass(slots=True)
class _Cached:
    signature: _Signature
    interaction: Interaction | None
    """None: the file at this signature is corrupt (already logged)."""
    weight: int


@dataclass(slots=True)
class _Write:
    key: Key
    path: str
    ri: RedactedInteraction
    pending: Interaction


@dataclass(slots=True)
class _RemoveAbove:
    namespace: str
    fingerprint: str
    occurrence: int
    done: threading.Event = field(default_factory=threading.Event)
    removed: int = 0


_Job = _Write | _RemoveAbove | None


class _Refused(CorruptEntry):
    """An entry not read at all (not a regular file, or too large); its signature is cached
    with the verdict so that it is logged once per version."""

    def __init__(self, path: str, reason: str, signature: _Signature) -> None:
        super().__init__(path, reason)
        self.signature = signature


def max_file_bytes(max_body: int) -> int:
    """The largest file that can hold a document of at most `max_body` bytes: zstd adds at
    most 3 bytes a 128 KiB block, plus a frame header and checksum."""
    return max_body + max_body // 1024 + 4096


def read_entry(path: str | Path, max_body: int = DEFAULT_MAX_BODY) -> tuple[_Signature, bytes]:
    """The signature and bytes of the store file `path`, read safely.

    Never follows a symlink (`O_NOFOLLOW`), never blocks on a FIFO (`O_NONBLOCK`), reads only
    a regular file and only up to `max_file_bytes(max_body)`. Raises CorruptEntry for an
    entry it refuses, OSError (FileNotFoundError...) when the file cannot be opened.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        with contextlib.suppress(OSError):
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):  # ELOOP: a symlink, refused by O_NOFOLLOW
                raise _Refused(str(path), _not_regular(st.st_mode), _signature(st)) from None
        raise exc from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _Refused(str(path), _not_regular(st.st_mode), _signature(st))
        limit = max_file_bytes(max_body)
        if st.st_size > limit:
            reason = f"{st.st_size} bytes, larger than any file of at most {max_body} decoded"
            raise _Refused(str(path), reason + " bytes (replay_max_body)", _signature(st))
        data = f.read(limit + 1)
        if len(data) > limit:  # grew since the fstat
            raise _Refused(str(path), "grew while it was read", _signature(st))
        return _signature(st), data


def _not_regular(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link (store entries are never followed)"
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    return "not a regular file (a device, FIFO or socket is never read)"


def _weight(interaction: Interaction | None) -> int:
    """Rough memory cost of a cached interaction: its body bytes plus a fixed overhead."""
    if interaction is None:
        return 256
    return 1024 + len(interaction.request.body) + sum(64 + len(c.data) for c in interaction.chunks)


class Store:
    """A directory of interaction files; safe to share between the loop and writer threads."""

    def __init__(
        self, root: str | Path, cache_bytes: int = 64 * 2**20, max_body: int = DEFAULT_MAX_BODY
    ) -> None:
        # Nothing touches the disk here: startup cost must not grow with the store.
        self.root = Path(root)
        self._root = str(self.root)  # string paths: pathlib costs more than a lookup
        self.cache_bytes = cache_bytes
        self.max_body = max_body
        """The largest decompressed file read (`replay_max_body`); larger ones are corrupt."""
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
        self._before: dict[tuple[str, str], dict[int, _Signature]] = {}
        """(namespace, fp) -> its files when this run first wrote it (see remove_above)."""
        self._wrote: dict[tuple[str, str], dict[int, _Signature]] = {}
        """(namespace, fp) -> the files this run wrote, as written."""
        self._dict_stamp: int | None = None
        self._dict: zstandard.ZstdCompressionDict | None = None

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- layout ---------------------------------------------------------------------------

    def path_for(self, key: Key) -> Path:
        """Where `key` lives. Raises BadNamespace or StoreError for a key that cannot be a path."""
        return Path(self._resolve(key)[1])

    def _resolve(self, key: Key) -> tuple[Key, str]:
        """`key` with its namespace defaulted, and its path; validates every part."""
        namespace = _plain_namespace(key.namespace or DEFAULT_NAMESPACE)
        fp, occurrence = key.fingerprint, key.occurrence
        if not isinstance(fp, str) or not _FINGERPRINT.fullmatch(fp):
            raise StoreError(f"not a lower-case hex fingerprint: {fp!r}")
        if isinstance(occurrence, bool) or not isinstance(occurrence, int) or occurrence < 0:
            raise StoreError(f"not an occurrence number: {occurrence!r}")
        path = f"{self._root}/{namespace}/{fp[:2]}/{entry_name(fp, occurrence)}"
        return Key(namespace, fp, occurrence), path

    def entries(self, namespace: str | None = None) -> Iterator[tuple[Path, Key]]:
        """Every interaction file, lazily: namespace by namespace (a namespace before those
        nested in it, names in sorted order), then by fingerprint and occurrence.

        `namespace` lists that namespace only, not those nested in it. A file belongs to the
        namespace of its path minus the shard directory and the file name: in
        `a/ff/ff01….0.zst` the namespace is `a`, in `a/ff/01/01….0.zst` it is `a/ff`, so a
        segment that looks like a shard is no ambiguity. Only files: call `flush()` first to
        include pending writes. Dot-named and other foreign names, and symlinked
        directories, are skipped at every level.
        """
        if namespace is not None:
            yield from self._namespace_entries(_plain_namespace(namespace))
            return
        pending = [name for name in reversed(_subdirs(self.root)) if name[0] != "."]
        while pending:  # depth first, without recursion: a deep tree cannot overflow
            ns = pending.pop()
            yield from self._namespace_entries(ns)
            nested = reversed(_subdirs(self.root / ns))
            pending.extend(f"{ns}/{name}" for name in nested if name[0] != ".")

    def _namespace_entries(self, ns: str) -> Iterator[tuple[Path, Key]]:
        ns_dir = self.root / ns
        for shard in _subdirs(ns_dir):
            if len(shard) != 2 or not _FINGERPRINT.fullmatch(shard):
                continue
            found = []
            for name in _sorted_names(ns_dir / shard):
                parsed = parse_entry_name(name)
                if parsed and parsed[0][:2] == shard:
                    found.append((parsed, name))
            for (fp, occurrence), name in sorted(found):
                yield ns_dir / shard / name, Key(ns, fp, occurrence)

    # --- lookups --------------------------------------------------------------------------

    def get(self, key: Key) -> Interaction | None:
        """The interaction stored (or waiting to be written) under exactly `key`, or None.

        A corrupt or unreadable file is logged (warning, with path and reason) and is a miss.
        """
        key, path = self._resolve(key)
        with self._lock:
            pending = self._pending.get(key)
        if pending is not None:
            return pending
        return self._load(path, key)[1]

    def get_latest(self, key: Key) -> Interaction | None:
        """`key`'s occurrence if stored, else the highest stored occurrence below it.

        Past the last recorded occurrence, the last repeats. A corrupt file is a miss: it is
        not skipped in favour of an older occurrence. The shard directory is listed only when
        the exact file is missing.
        """
        key, path = self._resolve(key)
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
        listed = self._fresh_listing(key)
        if listed is None or key.occurrence in listed:  # a known-missing file costs no stat
            exists, interaction = self._load(path, key)
            if exists:
                return interaction
        if listed is None:
            listed = self._listed(key)
        on_disk = [o for o in listed if o < key.occurrence]
        best = max([*below, *on_disk], default=None)
        if best is None:
            return None
        if best in below:
            return below[best]
        found = key._replace(occurrence=best)
        shard = os.path.dirname(path)
        return self._load(f"{shard}/{entry_name(key.fingerprint, best)}", found)[1]

    def _fresh_listing(self, key: Key) -> list[int] | None:
        """The memoised listing of `key`'s fingerprint, if no put or remove came since."""
        with self._lock:
            memo = self._listings.get((key.namespace, key.fingerprint))
            return memo[1] if memo is not None and memo[0] == self._epoch else None

    def _listed(self, key: Key) -> list[int]:
        """The occurrences of `key`'s fingerprint on disk, listed once per store epoch.

        Replaying past the last occurrence asks this on every repeat; a put or remove by
        this store bumps the epoch and so forces a new listing. (Files added to the store
        by hand while a proxy replays are seen at their exact occurrence only.)
        """
        memo_key = (key.namespace, key.fingerprint)
        with self._lock:
            epoch = self._epoch
        shard = f"{self._root}/{key.namespace}/{key.fingerprint[:2]}"
        occurrences = self._occurrences(shard, key.fingerprint)
        with self._lock:
            if len(self._listings) >= 4096:
                self._listings.clear()
            self._listings[memo_key] = (epoch, occurrences)
        return occurrences

    def _occurrences(self, shard: str | Path, fingerprint: str) -> list[int]:
        try:
            names = os.listdir(shard)
        except OSError:
            return []
        parsed = (parse_entry_name(n) for n in names if n.startswith(fingerprint + "."))
        return [p[1] for p in parsed if p is not None and p[0] == fingerprint]

    def _load(self, path: str, key: Key) -> tuple[bool, Interaction | None]:
        """(the file exists, its interaction or None if bad), through the cache.

        A cache hit costs one stat; a corrupt file's verdict is cached too, so it is logged
        once per version of the file, not on every request.
        """
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False, None
        except OSError as exc:
            logger.warning("cannot read cassette %s: %s (treated as a miss)", path, exc.strerror)
            return True, None
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None and cached.signature == _signature(st):
                self._cache.move_to_end(path)
                return True, cached.interaction
            epoch = self._epoch
        if not stat.S_ISREG(st.st_mode):  # never followed, never read; its verdict cached
            logger.warning(
                "corrupt cassette %s: %s (treated as a miss)", path, _not_regular(st.st_mode)
            )
            self._remember(path, _signature(st), None, epoch)
            return True, None
        signature, interaction = self._read(path, key)
        if signature is None:
            return False, None  # gone between stat and open, or unreadable (logged)
        self._remember(path, signature, interaction, epoch)
        return True, interaction

    def _read(self, path: str, key: Key) -> tuple[_Signature | None, Interaction | None]:
        try:
            signature, data = read_entry(path, self.max_body)
        except (FileNotFoundError, NotADirectoryError):
            return None, None
        except _Refused as exc:
            logger.warning("corrupt cassette %s: %s (treated as a miss)", path, exc.reason)
            return exc.signature, None
        except OSError as exc:
            logger.warning("cannot read cassette %s: %s (treated as a miss)", path, exc.strerror)
            return None, None
        try:
            interaction = decode(data, path, self.max_body)
            if interaction.key.fingerprint != key.fingerprint:
                fp = interaction.key.fingerprint
                raise CorruptEntry(path, f"file holds fingerprint {fp}, not its name's")
        except CorruptEntry as exc:
            logger.warning("corrupt cassette %s: %s (treated as a miss)", path, exc.reason)
            return signature, None
        # The path is authoritative for namespace and occurrence (a copied namespace works).
        if interaction.key != key:
            interaction = replace(interaction, key=key)
        return signature, interaction

    def _remember(
        self, path: str, signature: _Signature, interaction: Interaction | None, epoch: int
    ) -> None:
        weight = _weight(interaction)
        with self._lock:
            if epoch != self._epoch or weight > self.cache_bytes:
                return  # a put or remove raced this read, or it would not fit
            old = self._cache.pop(path, None)
            if old is not None:
                self._cache_weight -= old.weight
            self._cache[path] = _Cached(signature, interaction, weight)
            self._cache_weight += weight
            while self._cache_weight > self.cache_bytes:
                _, evicted = self._cache.popitem(last=False)
                self._cache_weight -= evicted.weight

    def _forget(self, path: str) -> None:
        """Drop `path` from the cache; caller holds the lock."""
        self._epoch += 1
        old = self._cache.pop(path, None)
        if old is not None:
            self._cache_weight -= old.weight

    # --- writes ---------------------------------------------------------------------------

    def put(self, ri: RedactedInteraction) -> bool:
        """Store `ri` without waiting for the disk; lookups see it at once. False, and
        nothing stored, when another process writes its namespace (see `claim`).

        The write happens on the writer thread; a failure there is logged (error) and the
        interaction is dropped. Raises only for a wrong type or a key that cannot be a path.
        """
        if not isinstance(ri, RedactedInteraction):
            raise TypeError(f"Store.put takes a RedactedInteraction, not {type(ri).__name__}")
        key, path = self._resolve(ri.interaction.key)
        if not self.may_write(key.namespace):
            return False
        # Pending holds what a read of the file will return, so both answers are equal.
        pending = normalize(ri.interaction)
        if pending.key != key:
            pending = replace(pending, key=key)
        job = _Write(key, path, ri, pending)
        with self._lock:
            self._pending[key] = job.pending
            self._forget(path)
            self._submit(job)
        return True

    # --- the namespace lock ---------------------------------------------------------------

    def lock_path(self, namespace: str) -> Path:
        """The lock file of `namespace`: `<root>/.<namespace>.lock`."""
        return self.root / f".{_plain_namespace(namespace or DEFAULT_NAMESPACE)}.lock"

    def claim(self, namespace: str) -> None:
        """Take the write lock of `namespace` now (idempotent); StoreLocked if another live
        process or Store holds it. `put` claims on its own; call this to fail early."""
        namespace = _plain_namespace(namespace or DEFAULT_NAMESPACE)
        with self._lock:
            if namespace in self._locks or fcntl is None:
                return
            refused = self._refused.get(namespace)
            if refused is not None:
                raise refused
            try:
                self._locks[namespace] = self._take_lock(namespace)
            except StoreLocked as exc:
                self._refused[namespace] = exc
                raise

    def may_write(self, namespace: str) -> bool:
        """Claim `namespace` for writing; False (one error line per namespace) if refused."""
        if namespace in self._locks or fcntl is None:
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

    def _take_lock(self, namespace: str) -> int:
        """An fd holding `flock(LOCK_EX)` on the namespace's lock file, with our pid and host
        written in it; StoreLocked naming the holder if the lock is held."""
        assert fcntl is not None
        path = self.lock_path(namespace)
        _make_dirs(path.parent)
        for _ in range(10):  # bounded: retried only if a holder removed the file meanwhile
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_CLOEXEC
            fd = os.open(path, flags, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
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
            if stale:
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
        key = job.key
        try:
            known = (key.namespace, key.fingerprint)
            if known not in self._before:  # first write of this fingerprint in this run
                shard = os.path.dirname(job.path)
                self._before[known] = _signatures(shard, key.fingerprint)
            dictionary = self._dictionary()  # after `replay compact`: its newest dictionary
            data = encode(job.ri, dictionary=dictionary, limit=self.max_body)
            write_atomically(Path(job.path), data)
            with contextlib.suppress(OSError):
                self._wrote.setdefault(known, {})[key.occurrence] = _signature(os.lstat(job.path))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            logger.error("cannot write cassette %s: %s (interaction dropped)", job.path, reason)
        finally:
            with self._lock:
                if self._pending.get(job.key) is job.pending:
                    del self._pending[job.key]
                self._forget(job.path)

    def _dictionary(self) -> zstandard.ZstdCompressionDict | None:
        """The store's newest `*.dict` (`replay compact`), looked up again only when the
        root directory changed; called from the writer thread only."""
        try:
            stamp = os.stat(self._root).st_mtime_ns
        except OSError:
            return None
        if stamp != self._dict_stamp:
            self._dict_stamp, self._dict = stamp, newest_dictionary(self._root)
        return self._dict

    def _remove_above(self, job: _RemoveAbove) -> None:
        shard = self.root / job.namespace / job.fingerprint[:2]
        before = self._before.get((job.namespace, job.fingerprint), {})
        wrote = self._wrote.get((job.namespace, job.fingerprint), {})
        for occurrence, signature in sorted(_signatures(shard, job.fingerprint).items()):
            if occurrence <= job.occurrence:
                continue
            path = shard / entry_name(job.fingerprint, occurrence)
            if signature not in (before.get(occurrence), wrote.get(occurrence)):
                logger.warning(
                    "replay: kept %s: not written by this run nor there when it began "
                    "recording this request (another process wrote it)",
                    path,
                )
                continue
            with self._lock:
                self._forget(str(path))
            try:
                os.unlink(path)
                job.removed += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.error("cannot remove cassette %s: %s", path, exc.strerror)
        if job.removed:
            _fsync_dir(shard)


def _signatures(shard: str | Path, fingerprint: str) -> dict[int, _Signature]:
    """The occurrences of `fingerprint` in `shard` and their files' signatures (lstat)."""
    try:
        names = os.listdir(shard)
    except OSError:
        return {}
    found = {}
    for name in names:
        parsed = parse_entry_name(name) if name.startswith(fingerprint + ".") else None
        if parsed is not None and parsed[0] == fingerprint:
            with contextlib.suppress(OSError):
                found[parsed[1]] = _signature(os.lstat(os.path.join(shard, name)))
    return found


def _read_lock(fd: int) -> dict[str, object]:
    """The JSON object in a lock file (empty if none or not JSON)."""
    try:
        value = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one.

    A dot-named temp file in the same directory is written, fsynced and renamed over
    `path`, then the directory is fsynced. Missing directories are created (and their
    parents fsynced). On failure the temp file is removed and the OSError propagates.
    """
    _make_dirs(path.parent)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _make_dirs(directory: Path) -> None:
    if directory.is_dir():
        return
    missing = []
    d = directory
    while not d.exists() and d != d.parent:
        missing.append(d)
        d = d.parent
    directory.mkdir(parents=True, exist_ok=True)
    for created in missing:  # make each new directory entry durable in its parent
        _fsync_dir(created.parent)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":  # directories cannot be opened (nor need fsync) on Windows
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is done anyway
    finally:
        os.close(fd)


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _subdirs(directory: Path) -> list[str]:
    """The names of the directories in `directory` (symlinks not followed), sorted."""
    try:
        with os.scandir(directory) as it:
            found = [e.name for e in it if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(found)


def _sorted_names(directory: Path) -> list[str]:
    try:
        return sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
