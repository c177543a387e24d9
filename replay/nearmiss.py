"""The near-miss search: which recorded request is most like one that missed, and where
they first differ.

Owns `NearMissIndex`: per namespace, a compact form of each recorded fingerprint's
canonical material (under the proxy's current `FingerprintPolicy`), refreshed from a cheap
listing (`Store.entries`) on each search, so that a miss reads only the files that appeared
since the last one, plus the one winner it reports. Does not own the material or
`first_difference` (fingerprint.py), the files (store.py, codec.py), or the wording of a
miss (providers/errors.py, which defines `NearMiss`).

Ranking: recordings with the request's method and path first; then the fewest differing
canonical leaves; ties go to the lowest fingerprint. The differing field is the winner's
`fingerprint.first_difference` against the request, computed on its full material.

Why a fingerprint's material is read once: the fingerprint is the hash of the material, so
every occurrence (and every rewrite) of a fingerprint has the same one; files that appear or
disappear are all that can change the index. Corrupt or oversized files are skipped (a
corrupt one is retried when it changes on disk). Pending writes are not seen until written.

Nothing is read until a request of a namespace misses: the index of a namespace is built on
its first miss, never at startup (`warm` does nothing; the store's rule is that nothing is
read until needed). Files are read one at a time through the store's own safe reader
(`store.read_entry`: no symlinks, only regular files, at most MAX_FILE_BYTES) and decoded
with the store's cap (`replay_max_body`), so a "bomb" costs at most about twice that cap
while it is read and is then skipped like any corrupt file.

Memory is bounded: a request is indexed as at most MAX_ENTRY_LEAVES (path hash, value hash)
pairs, an index holds at most MAX_LEAVES pairs and MAX_ENTRIES fingerprints in all
(recordings beyond are not candidates; logged once per namespace) and MAX_NAMESPACES
namespaces (least recently searched dropped first). Measured at about 180 bytes a pair, all
included, so some 55 MB at worst. Cost, measured on 3,000 recordings: the first search reads
every file (about 0.6 s), later ones list the namespace and rank (about 30 ms). A lock makes
it safe to search from the event loop while the store's writer thread adds files.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from replay.canonical import canonical_json
from replay.codec import decode
from replay.errors import BadNamespace, CorruptEntry, StoreError
from replay.fingerprint import FingerprintPolicy, first_difference, material
from replay.models import DEFAULT_NAMESPACE, Request
from replay.providers.errors import NearMiss
from replay.redact import redacted_url
from replay.store import Store, read_entry

logger = logging.getLogger(__name__)

MAX_FILE_BYTES = 4 * 2**20
"""Files larger than this (compressed) are not read: their requests are not candidates."""
MAX_BODY_BYTES = 4 * 2**20
"""Recordings whose (decoded) request body is larger are not candidates."""
MAX_ENTRY_LEAVES = 2_000
"""Leaves of one material kept for the ranking (in path order); the rest are not compared."""
MAX_LEAVES = 300_000
"""Leaves kept by one index, all namespaces together."""
MAX_ENTRIES = 20_000
"""Fingerprints indexed, all namespaces together."""
MAX_NAMESPACES = 8
"""Namespaces indexed at once; the least recently searched is dropped first."""

_Leaves = dict[int, int]
"""hash(dotted path) -> hash(canonical JSON of the leaf): a material, flattened."""
_Signature = tuple[int, int, int]


@dataclass(slots=True)
class _Entry:
    """An indexed fingerprint (leaves set) or one that is not a candidate (leaves None)."""

    occurrences: tuple[int, ...]
    files: tuple[Path, ...]
    leaves: _Leaves | None = None
    occurrence: int = 0
    """The occurrence whose file was read."""
    method: str = ""
    path: str = ""
    url: str = ""
    signatures: tuple[_Signature | None, ...] = ()
    """Of a rejected (corrupt) fingerprint's files: retried when one changes."""
    retry: bool = False
    """Rejected for a reason that a change on disk can cure (corrupt, unreadable)."""


@dataclass(slots=True)
class _Namespace:
    entries: dict[str, _Entry] = field(default_factory=dict)
    full_logged: bool = False


class NearMissIndex:
    """Finds the nearest recorded request of a namespace; see the module docstring."""

    def __init__(self, store: Store, policy: FingerprintPolicy) -> None:
        self.store = store
        self.policy = policy
        self._lock = threading.Lock()
        self._namespaces: OrderedDict[str, _Namespace] = OrderedDict()
        self._leaves = 0
        self._entries = 0

    def nearest(self, namespace: str, request: Request) -> NearMiss | None:
        """The recorded request of `namespace` most like `request`, or None when the
        namespace holds no readable recording."""
        namespace = namespace or DEFAULT_NAMESPACE
        wanted = material(request, self.policy)
        leaves = _flatten(wanted)
        method = request.method.upper()
        path = str(wanted["path"])
        with self._lock:
            try:
                ns = self._refresh(namespace)
            except (StoreError, BadNamespace):
                return None
            ranked = sorted(
                (
                    (0 if (e.method, e.path) == (method, path) else 1),
                    _distance(leaves, e.leaves),
                    fp,
                )
                for fp, e in ns.entries.items()
                if e.leaves is not None
            )
            for _, _, fp in ranked:
                found = self._explain(ns, fp, wanted)
                if found is not None:
                    return found
        return None

    def warm(self, namespace: str) -> None:
        """Does nothing: the index is built lazily, on a namespace's first miss.

        Kept so that callers written for the eager index still work; reading every file at
        startup broke the store's "nothing is read until needed" and let a namespace of
        cassette bombs be decoded before any request came.
        """
        del namespace

    def __len__(self) -> int:
        """The number of indexed fingerprints (candidates), all namespaces."""
        with self._lock:
            return sum(
                e.leaves is not None
                for ns in self._namespaces.values()
                for e in ns.entries.values()
            )

    # --- the index ------------------------------------------------------------------------

    def _refresh(self, namespace: str) -> _Namespace:
        """Bring `namespace`'s index up to date with a listing of its files."""
        listed: dict[str, list[tuple[int, Path]]] = {}
        for path, key in self.store.entries(namespace):
            listed.setdefault(key.fingerprint, []).append((key.occurrence, path))
        ns = self._namespaces.get(namespace)
        if ns is None:
            ns = self._namespaces[namespace] = _Namespace()
        self._namespaces.move_to_end(namespace)
        while len(self._namespaces) > MAX_NAMESPACES:
            _, dropped = self._namespaces.popitem(last=False)
            for old in dropped.entries.values():
                self._release(old)
        for fp in [fp for fp in ns.entries if fp not in listed]:
            self._release(ns.entries.pop(fp))
        for fp, files in listed.items():
            occurrences = tuple(o for o, _ in files)
            entry = ns.entries.get(fp)
            if entry is not None and self._still_valid(entry, occurrences):
                entry.occurrences = occurrences
                entry.files = tuple(p for _, p in files)
                continue
            if entry is not None:
                self._release(ns.entries.pop(fp))
            if not self._room(namespace, ns):
                continue
            entry = self._load(fp, files)
            ns.entries[fp] = entry
            if entry.leaves is not None:
                self._leaves += len(entry.leaves)
                self._entries += 1
        return ns

    def _still_valid(self, entry: _Entry, occurrences: tuple[int, ...]) -> bool:
        if entry.leaves is not None:
            return entry.occurrence in occurrences  # the file it was read from is still there
        if occurrences != entry.occurrences:
            return False
        return not entry.retry or entry.signatures == tuple(map(_stat, entry.files))

    def _room(self, namespace: str, ns: _Namespace) -> bool:
        """Whether one more fingerprint may be indexed (logs once per namespace if not)."""
        while self._leaves >= MAX_LEAVES or self._entries >= MAX_ENTRIES:
            if len(self._namespaces) > 1 and next(iter(self._namespaces)) != namespace:
                _, dropped = self._namespaces.popitem(last=False)
                for old in dropped.entries.values():
                    self._release(old)
                continue
            if not ns.full_logged:
                ns.full_logged = True
                logger.info(
                    "near-miss index full (%d fingerprints, %d leaves): later recordings of "
                    "namespace %r are not searched",
                    self._entries,
                    self._leaves,
                    namespace,
                )
            return False
        return True

    def _release(self, entry: _Entry) -> None:
        if entry.leaves is not None:
            self._leaves -= len(entry.leaves)
            self._entries -= 1

    def _load(self, fp: str, files: list[tuple[int, Path]]) -> _Entry:
        """Index `fp` from the first of its files that reads; rejected if none does."""
        occurrences = tuple(o for o, _ in files)
        paths = tuple(p for _, p in files)
        retry = False
        for occurrence, path in files:
            request, curable = self._read(fp, path)
            retry = retry or curable
            if request is None:
                continue
            stored = material(request, self.policy)
            return _Entry(
                occurrences,
                paths,
                leaves=_flatten(stored),
                occurrence=occurrence,
                method=request.method.upper(),
                path=str(stored["path"]),
                url=redacted_url(request),
            )
        signatures = tuple(map(_stat, paths)) if retry else ()
        return _Entry(occurrences, paths, signatures=signatures, retry=retry)

    def _read(self, fp: str, path: Path) -> tuple[Request | None, bool]:
        """The stored request in `path`, or (None, whether a change of the file may cure it)."""
        try:
            if os.lstat(path).st_size > MAX_FILE_BYTES:
                return None, False
            _, data = read_entry(path, self.store.max_body)
            interaction = decode(data, str(path), self.store.max_body)
        except CorruptEntry as exc:
            logger.warning("near-miss: corrupt cassette %s: %s (skipped)", path, exc.reason)
            return None, True
        except FileNotFoundError:
            return None, False
        except OSError as exc:
            logger.warning("near-miss: cannot read %s: %s (skipped)", path, exc.strerror)
            return None, True
        if interaction.key.fingerprint != fp:
            logger.warning("near-miss: %s holds another fingerprint (skipped)", path)
            return None, True
        if len(interaction.request.body) > MAX_BODY_BYTES:
            return None, False
        return interaction.request, False

    def _explain(self, ns: _Namespace, fp: str, wanted: dict[str, object]) -> NearMiss | None:
        """The NearMiss for candidate `fp`, its field from the full material; None (and
        the candidate dropped) if its file no longer reads."""
        entry = ns.entries[fp]
        index = entry.occurrences.index(entry.occurrence)
        request, _ = self._read(fp, entry.files[index])
        if request is None:  # gone or damaged since it was indexed: reload on a change
            self._release(entry)
            signatures = tuple(map(_stat, entry.files))
            ns.entries[fp] = _Entry(
                entry.occurrences, entry.files, signatures=signatures, retry=True
            )
            return None
        field_name = first_difference(wanted, material(request, self.policy))
        return NearMiss(fp, entry.occurrence, entry.method, entry.url, field_name)


def _distance(a: _Leaves, b: _Leaves | None) -> int:
    """How many leaves differ: changed or only in `a`, plus only in `b`."""
    assert b is not None
    return len(a.items() - b.items()) + len(b.keys() - a.keys())


def _flatten(value: dict[str, object]) -> _Leaves:
    """A material as {hash(path): hash(leaf)}, at most MAX_ENTRY_LEAVES, in path order.

    Paths are dotted as `first_difference` names fields; empty objects and arrays are
    leaves. Python's str hash is stable within a process, which is all the index needs.
    """
    out: _Leaves = {}
    stack: list[tuple[str, object]] = [(k, value[k]) for k in sorted(value, reverse=True)]
    while stack and len(out) < MAX_ENTRY_LEAVES:
        path, item = stack.pop()
        if isinstance(item, dict) and item:
            stack.extend((f"{path}.{k}", item[k]) for k in sorted(item, reverse=True))
        elif isinstance(item, list) and item:
            stack.extend((f"{path}.{i}", item[i]) for i in range(len(item) - 1, -1, -1))
        else:
            out[hash(path)] = hash(_leaf_text(item))
    return out


def _leaf_text(value: object) -> str:
    try:
        return canonical_json(value)
    except (TypeError, ValueError):
        return repr(value)


def _stat(path: Path) -> _Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
