"""The local directory backend: a store's files under one root directory.

Owns safe reads (`read_entry`: never a symlink, never a FIFO, at most the size a
`replay_max_body` document can take), atomic writes (`write_atomically`: a dot-named temp
file, fsync, rename, directory fsync) and exclusive creation (`create`: the same temp file,
then a hard link to the final name, which fails if the name exists, so a claim that loses
leaves the winner's file untouched and nothing half-written is ever visible).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from replay.backend import Refused, Signature, max_file_bytes, parse_entry_name
from replay.canonical import DEFAULT_MAX_BODY


class LocalBackend:
    """Files under a directory (see the module docstring)."""

    local = True

    def __init__(self, root: str | Path) -> None:
        self.location = str(root)
        self._root = str(root)

    def describe(self, name: str) -> str:
        return f"{self._root}/{name}"

    def read(
        self, name: str, max_body: int, unless: Signature | None = None
    ) -> tuple[Signature, bytes | None] | None:
        path = f"{self._root}/{name}"
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        signature = file_signature(st)
        if signature == unless:
            return signature, None
        if not stat.S_ISREG(st.st_mode):  # never followed, never read
            raise Refused(path, not_regular(st.st_mode), signature)
        try:
            return read_entry(path, max_body)
        except (FileNotFoundError, NotADirectoryError):
            return None  # gone between the stat and the open

    def occurrences(
        self, shard: str, fingerprint: str, stale_ok: bool = False
    ) -> dict[int, Signature]:
        return signatures(f"{self._root}/{shard}", fingerprint)

    def create(self, name: str, data: bytes) -> Signature | None:
        path = Path(self._root, name)
        tmp = _write_temp(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        _fsync_dir(path.parent)
        return file_signature(os.lstat(path))

    def replace(self, name: str, data: bytes) -> Signature:
        path = Path(self._root, name)
        write_atomically(path, data)
        return file_signature(os.lstat(path))

    def delete(self, name: str) -> None:
        path = Path(self._root, name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def names(self, prefix: str = "") -> Iterator[str]:
        top = Path(self._root, prefix) if prefix else Path(self._root)
        for directory, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            rel = os.path.relpath(directory, self._root).replace(os.sep, "/")
            for file in sorted(files):
                if not file.startswith("."):
                    yield file if rel == "." else f"{rel}/{file}"

    def check_claims(self) -> bool:
        return True  # a local filesystem enforces exclusive creation (os.link)


def read_entry(path: str | Path, max_body: int = DEFAULT_MAX_BODY) -> tuple[Signature, bytes]:
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
                raise Refused(str(path), not_regular(st.st_mode), file_signature(st)) from None
        raise exc from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(str(path), not_regular(st.st_mode), file_signature(st))
        limit = max_file_bytes(max_body)
        if st.st_size > limit:
            reason = f"{st.st_size} bytes, larger than any file of at most {max_body} decoded"
            raise Refused(str(path), reason + " bytes (replay_max_body)", file_signature(st))
        data = f.read(limit + 1)
        if len(data) > limit:  # grew since the fstat
            raise Refused(str(path), "grew while it was read", file_signature(st))
        return file_signature(st), data


def not_regular(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link (store entries are never followed)"
    if stat.S_ISDIR(mode):
        return "a directory, not a file"
    return "not a regular file (a device, FIFO or socket is never read)"


def signatures(shard: str | Path, fingerprint: str) -> dict[int, Signature]:
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
                found[parsed[1]] = file_signature(os.lstat(os.path.join(shard, name)))
    return found


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one.

    A dot-named temp file in the same directory is written, fsynced and renamed over
    `path`, then the directory is fsynced. Missing directories are created (and their
    parents fsynced). On failure the temp file is removed and the OSError propagates.
    """
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _write_temp(path: Path, data: bytes) -> Path:
    """A dot-named, fsynced temp file holding `data` beside `path` (directories made)."""
    make_dirs(path.parent)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def make_dirs(directory: Path) -> None:
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


def file_signature(st: os.stat_result) -> Signature:
    return (st.st_ino, st.st_mtime_ns, st.st_size)
