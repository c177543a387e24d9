"""The local read-through cache of a remote store (`replay_cache`).

Owns one directory per remote store (`<cache>/<hash of the store's URL and endpoint>/`)
holding copies of its files under their own names. Store files are immutable once written
(named by content key: fingerprint and occurrence; `auto` never overwrites), so a copy never
goes stale and is used without asking the remote store again. (A `record` run that
overwrites a file updates its own cache; other machines' caches keep the older copy until
evicted or cleared.) Copies are written atomically (temp file, rename), so a process sharing
the cache never sees half a file, and read with the store's safe reader.

The cache is bounded in bytes: its size is counted once, lazily, at the first copy written
(never at startup), then kept up to date; past the bound the oldest copies (by time
written) are deleted until it is 80 % full. Several processes may share a cache directory;
each keeps its own count, so the bound holds approximately.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import threading
from pathlib import Path

from replay.backend import Refused, Signature
from replay.backend_local import file_signature, read_entry, write_atomically

logger = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 2 * 2**30
"""The default bound of a store's cache: 2 GiB."""


def default_cache_dir() -> Path:
    """`replay`'s directory in the user's cache directory (XDG on Linux, ~/Library/Caches
    on macOS, %LOCALAPPDATA% on Windows)."""
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "llm-replay"


class ReadCache:
    """Copies of one remote store's files (see the module docstring)."""

    def __init__(self, directory: str | Path, store_id: str, max_bytes: int) -> None:
        digest = hashlib.sha256(store_id.encode("utf-8")).hexdigest()[:24]
        self.directory = Path(directory) / digest
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._size: int | None = None  # counted at the first copy written

    def path(self, name: str) -> Path:
        return self.directory / name

    def read(
        self, name: str, max_body: int, unless: Signature | None = None
    ) -> tuple[Signature, bytes | None] | None:
        """The cached copy of `name` as `Backend.read` returns it, or None if not cached (or
        unreadable: then it is fetched again)."""
        path = self.path(name)
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if file_signature(st) == unless:
            return file_signature(st), None
        try:
            return read_entry(path, max_body)
        except (OSError, Refused):
            return None

    def occurrences(self, shard: str, fingerprint: str) -> dict[int, Signature]:
        """The cached occurrences of `fingerprint` (when the remote store cannot list)."""
        from replay.backend_local import signatures

        return signatures(self.directory / shard, fingerprint)

    def put(self, name: str, data: bytes) -> Signature | None:
        """Keep a copy of `name`; its signature, or None if it could not be written."""
        path = self.path(name)
        try:
            old = os.lstat(path).st_size
        except OSError:
            old = 0
        try:
            write_atomically(path, data)
            signature = file_signature(os.lstat(path))
        except OSError as exc:
            logger.warning("replay: cannot write the cache file %s: %s", path, exc)
            return None
        self._grew(len(data) - old)
        return signature

    def _grew(self, delta: int) -> None:
        with self._lock:
            if self._size is None:
                self._size = self._count()
            else:
                self._size += delta
            if self._size <= self.max_bytes:
                return
            self._size = self._evict(self.max_bytes * 8 // 10)

    def _files(self) -> list[tuple[float, int, str]]:
        found = []
        for directory, dirs, files in os.walk(self.directory):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for file in files:
                path = os.path.join(directory, file)
                with contextlib.suppress(OSError):
                    st = os.lstat(path)
                    found.append((st.st_mtime, st.st_size, path))
        return found

    def _count(self) -> int:
        return sum(size for _, size, _ in self._files())

    def _evict(self, target: int) -> int:
        """Delete the oldest copies until at most `target` bytes remain; the bytes left."""
        files = sorted(self._files())
        size = sum(size for _, size, _ in files)
        for _, file_size, path in files:
            if size <= target:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            size -= file_size
        return size
