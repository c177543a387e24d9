"""The seam below the store: where its files live (a local directory or an object store).

Owns the `Backend` interface and `open_backend`, which picks the implementation from the
store's root (`s3://bucket/prefix` or a directory path). A backend deals in names only:
relative POSIX paths such as `<namespace>/<fp[:2]>/<fp>.<occurrence>.zst`; it does not know
what a namespace, a fingerprint or the file format is (that is `store.py` and `codec.py`).
Nothing above the store knows which backend it has.

Signatures: `read` returns a signature of what it read (a local file's inode, mtime and
size; for an object store, its local cached copy's), so that the store's decoded-file cache
is checked with one stat. `occurrences`, `create` and `replace` return signatures of the
stored file itself (for an object store its ETag), which the store compares to decide what a
run may delete (`Store.remove_above`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from replay.errors import CorruptEntry, StoreError

Signature = tuple[int | str, ...]
"""Changes whenever the file changes (see the module docstring)."""

SUFFIX = ".zst"
_ENTRY = re.compile(r"([0-9a-f]{2,128})\.(0|[1-9][0-9]{0,17})\.zst")


def entry_name(fingerprint: str, occurrence: int) -> str:
    """The file name of an occurrence: `<fingerprint>.<occurrence>.zst`."""
    return f"{fingerprint}.{occurrence}{SUFFIX}"


def parse_entry_name(name: str) -> tuple[str, int] | None:
    """(fingerprint, occurrence) of an interaction file's name, None for any other name."""
    m = _ENTRY.fullmatch(name)
    return (m[1], int(m[2])) if m else None


class Refused(CorruptEntry):
    """An entry not read at all (not a regular file, or too large); its signature is cached
    with the verdict so that it is logged once per version."""

    def __init__(self, path: str, reason: str, signature: Signature) -> None:
        super().__init__(path, reason)
        self.signature = signature


def max_file_bytes(max_body: int) -> int:
    """The largest file that can hold a document of at most `max_body` bytes: zstd adds at
    most 3 bytes a 128 KiB block, plus a frame header and checksum."""
    return max_body + max_body // 1024 + 4096


class Backend(Protocol):
    """Where a store's files live. Every method may be called from several threads."""

    location: str
    """The store as the user named it (a path or `s3://bucket/prefix`), for messages."""
    local: bool
    """True for a local directory: names are files under `location` (namespace locks)."""

    def describe(self, name: str) -> str:
        """`name` as a user would find it (a path, or an `s3://` URL), for messages."""
        ...

    def read(
        self, name: str, max_body: int, unless: Signature | None = None
    ) -> tuple[Signature, bytes | None] | None:
        """(signature, bytes) of `name`; (signature, None) when the signature equals
        `unless` (the caller has it already); None when there is no such file. Reads at most
        `max_file_bytes(max_body)`. Raises Refused for a file it will not read, OSError when
        a local file cannot be read, StoreUnavailable when the store cannot be reached."""
        ...

    def occurrences(
        self, shard: str, fingerprint: str, stale_ok: bool = False
    ) -> dict[int, Signature]:
        """The occurrences of `fingerprint` stored under the directory name `shard`, with
        their signatures. `stale_ok`: if the store cannot be reached, what a local copy knows
        (else StoreUnavailable)."""
        ...

    def create(self, name: str, data: bytes) -> Signature | None:
        """Write `data` as `name` only if no file has that name: its signature, or None
        when another writer's file is there (kept as it is). Atomic: never half-written."""
        ...

    def replace(self, name: str, data: bytes) -> Signature:
        """Write `data` as `name`, replacing any file there. Atomic: never half-written."""
        ...

    def delete(self, name: str) -> None:
        """Remove `name`; nothing if it is not there."""
        ...

    def names(self, prefix: str = "") -> Iterator[str]:
        """Every file name under the directory name `prefix` (all if empty), at any depth,
        skipping dot-named files and directories."""
        ...

    def check_claims(self) -> bool:
        """Whether this store can be written with claims (`create`): True if so, False if
        the credentials are read-only; StoreError if the store ignores claims."""
        ...


def open_backend(root: str | Path, cache_dir: str | Path | None = None) -> Backend:
    """The backend of the store root `root`: an object store for `s3://bucket/prefix` (read
    through a local cache in `cache_dir`, see readcache.py), else a local directory. Nothing
    is read, listed or fetched here."""
    text = str(root)
    if text.startswith("s3://"):
        try:
            from replay.backend_s3 import S3Backend
        except ImportError:  # pragma: no cover - depends on the extra being installed
            raise StoreError(s3_extra_missing(text)) from None
        return S3Backend(text, cache_dir)
    from replay.backend_local import LocalBackend

    return LocalBackend(root)


def s3_extra_missing(url: str) -> str:
    """The one line that stops startup when an `s3://` store has no S3 client installed."""
    return f"{url}: an s3:// store needs the S3 client: pip install 'llm-replay[s3]'"
