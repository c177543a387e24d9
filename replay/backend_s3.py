"""The S3 backend: a store's files as objects under `s3://bucket/prefix/`, for AWS S3 and
every S3-compatible store (MinIO, R2, GCS in S3 mode).

Owns the S3 client (boto3, from the optional extra `s3`; the standard AWS credential chain
and `AWS_ENDPOINT_URL`), the mapping of errors (a missing object is absent; a refused write
means read-only credentials; anything that keeps failing means the store is unavailable, and
the error names it), and claims: `create` is a conditional put (`If-None-Match: *`), so two
proxies that record the same name never overwrite each other. boto3 rather than s3fs/fsspec:
conditional puts, ETags and error codes are first-class there, and it is the client every
S3-compatible vendor documents.

Reads go through the local read-through cache (readcache.py): a cached file costs one stat
and no request, a file not cached one GET (then cached). Lookups use a client that retries
once with a short timeout, and after a failed one the store counts as down for a few seconds
(lookups fail at once, the cache answers what it can), so a dead store costs one timeout,
not one a request; writes (on the store's writer thread,
never in a client's way) use one that retries with exponential backoff. A put is atomic on
S3: no one ever sees half an object.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from replay.backend import Refused, Signature, max_file_bytes, parse_entry_name
from replay.config import parse_s3_url
from replay.errors import StoreError, StoreReadOnly, StoreUnavailable
from replay.readcache import DEFAULT_CACHE_BYTES, ReadCache, default_cache_dir

logger = logging.getLogger(__name__)

_ABSENT = frozenset({"NoSuchKey", "404", "NotFound"})
_DENIED = frozenset({"AccessDenied", "403", "AllAccessDisabled", "AccessDeniedException"})
_TAKEN = frozenset({"PreconditionFailed", "412"})
_RACING = frozenset({"ConditionalRequestConflict", "409"})
PROBE_DIR = ".replay-probe"
"""Dot-named: never read as an interaction."""
DOWN_SECONDS = 5.0
"""After a lookup fails, lookups fail at once (the cache answers what it can) this long."""


class S3Backend:
    """Objects under `s3://bucket/prefix/` (see the module docstring)."""

    local = False

    def __init__(
        self,
        url: str,
        cache_dir: str | Path | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.location = url
        self.bucket, prefix = parse_s3_url(url)
        self._prefix = f"{prefix}/" if prefix else ""
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
        session = boto3.session.Session()
        lookups = Config(
            connect_timeout=3,
            read_timeout=10,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=32,
        )
        writes = Config(
            connect_timeout=3,
            read_timeout=30,
            retries={"max_attempts": 6, "mode": "standard"},
        )
        self._reader: Any = session.client("s3", config=lookups)
        self._writer: Any = session.client("s3", config=writes)
        self.cache = ReadCache(
            cache_dir or default_cache_dir(), f"{endpoint}|{self.bucket}|{prefix}", cache_bytes
        )
        self._down_lock = threading.Lock()
        self._down_until = 0.0
        self._down: StoreUnavailable | None = None

    def describe(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._prefix}{name}"

    def _unavailable(self, doing: str, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"the store {self.location} cannot be used ({doing}): {exc}")

    def _lookup_failed(self, doing: str, exc: Exception) -> StoreUnavailable:
        """The error of a failed lookup; lookups fail at once for DOWN_SECONDS after it, so
        that a dead store costs one timeout, not one a request (logged once an outage)."""
        error = self._unavailable(doing, exc)
        with self._down_lock:
            first = self._down is None
            self._down, self._down_until = error, time.monotonic() + DOWN_SECONDS
        if first:
            logger.warning("replay: %s; lookups answer from the local cache", error)
        return error

    def _fail_fast(self) -> None:
        """Raise the last lookup error while the store counts as down."""
        with self._down_lock:
            if self._down is None:
                return
            if time.monotonic() < self._down_until:
                raise StoreUnavailable(str(self._down))
            self._down = None  # time to try again

    def read(
        self, name: str, max_body: int, unless: Signature | None = None
    ) -> tuple[Signature, bytes | None] | None:
        cached = self.cache.read(name, max_body, unless)
        if cached is not None:
            return cached
        self._fail_fast()
        limit = max_file_bytes(max_body)
        try:
            answer = self._reader.get_object(Bucket=self.bucket, Key=self._prefix + name)
            size = int(answer.get("ContentLength", 0))
            if size > limit:
                answer["Body"].close()
                reason = f"{size} bytes, larger than any file of at most {max_body} decoded"
                raise Refused(self.describe(name), reason + " bytes (replay_max_body)", ("", size))
            data = answer["Body"].read(limit + 1)
        except ClientError as exc:
            if _code(exc) in _ABSENT:
                return None
            raise self._lookup_failed(f"reading {name}", exc) from None
        except BotoCoreError as exc:
            raise self._lookup_failed(f"reading {name}", exc) from None
        if len(data) > limit:
            raise Refused(self.describe(name), "larger than its announced length", ("", size))
        signature = self.cache.put(name, data) or ("uncached", str(answer.get("ETag")))
        return signature, data

    def occurrences(
        self, shard: str, fingerprint: str, stale_ok: bool = False
    ) -> dict[int, Signature]:
        found: dict[int, Signature] = {}
        try:
            self._fail_fast()
            for item in self._list(f"{self._prefix}{shard}/{fingerprint}.", self._reader):
                parsed = parse_entry_name(item["Key"].rsplit("/", 1)[-1])
                if parsed is not None and parsed[0] == fingerprint:
                    found[parsed[1]] = (str(item.get("ETag")), int(item.get("Size", 0)))
        except (ClientError, BotoCoreError, StoreUnavailable) as exc:
            error = exc if isinstance(exc, StoreUnavailable) else None
            error = error or self._lookup_failed(f"listing {shard}", exc)
            if stale_ok:
                return self.cache.occurrences(shard, fingerprint)
            raise error from None
        return found

    def create(self, name: str, data: bytes) -> Signature | None:
        key = self._prefix + name
        for _ in range(3):  # a 409 means a concurrent conditional put: ask again
            try:
                answer = self._writer.put_object(
                    Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*"
                )
            except ClientError as exc:
                code = _code(exc)
                if code in _RACING:
                    continue
                if code in _TAKEN:
                    return self._taken(name, data)
                self._write_failed(name, exc)
            except BotoCoreError as exc:
                raise self._unavailable(f"writing {name}", exc) from None
            self.cache.put(name, data)
            return (str(answer.get("ETag")), len(data))
        return self._taken(name, data)

    def _taken(self, name: str, data: bytes) -> Signature | None:
        """The name was taken: by another writer (None), or by our own put that a retry
        repeated after its answer was lost (its signature: the bytes are ours)."""
        try:
            answer = self._writer.get_object(Bucket=self.bucket, Key=self._prefix + name)
            theirs = answer["Body"].read(len(data) + 1)
        except (ClientError, BotoCoreError):
            return None
        self.cache.put(name, theirs)
        return (str(answer.get("ETag")), len(data)) if theirs == data else None

    def replace(self, name: str, data: bytes) -> Signature:
        try:
            answer = self._writer.put_object(Bucket=self.bucket, Key=self._prefix + name, Body=data)
        except ClientError as exc:
            self._write_failed(name, exc)
        except BotoCoreError as exc:
            raise self._unavailable(f"writing {name}", exc) from None
        self.cache.put(name, data)
        return (str(answer.get("ETag")), len(data))

    def _write_failed(self, name: str, exc: ClientError) -> Any:
        if _code(exc) in _DENIED:
            raise StoreReadOnly(
                f"the store {self.location} refuses writes ({_code(exc)}): "
                "read-only credentials, recording is off"
            ) from None
        raise self._unavailable(f"writing {name}", exc) from None

    def delete(self, name: str) -> None:
        try:
            self._writer.delete_object(Bucket=self.bucket, Key=self._prefix + name)
        except ClientError as exc:
            if _code(exc) not in _ABSENT:
                self._write_failed(name, exc)
        except BotoCoreError as exc:
            raise self._unavailable(f"deleting {name}", exc) from None

    def names(self, prefix: str = "") -> Iterator[str]:
        start = self._prefix + (prefix.rstrip("/") + "/" if prefix else "")
        self._fail_fast()
        try:
            for item in self._list(start, self._reader):
                name = item["Key"][len(self._prefix) :]
                if not any(part.startswith(".") for part in name.split("/")):
                    yield name
        except (ClientError, BotoCoreError) as exc:
            raise self._lookup_failed("listing", exc) from None

    def _list(self, prefix: str, client: Any) -> Iterator[dict[str, Any]]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        for page in pages:
            yield from page.get("Contents", ())

    def check_claims(self) -> bool:
        """Put a probe object twice, the second time with `If-None-Match: *`: a store that
        accepts both ignores claims (StoreError). False if the first put is refused
        (read-only credentials). The probe is deleted (if the credentials allow)."""
        name = f"{PROBE_DIR}/{secrets.token_hex(8)}"
        key = self._prefix + name
        try:
            self._writer.put_object(Bucket=self.bucket, Key=key, Body=b"", IfNoneMatch="*")
        except ClientError as exc:
            if _code(exc) in _DENIED:
                return False
            raise self._unavailable("checking conditional writes", exc) from None
        except BotoCoreError as exc:
            raise self._unavailable("checking conditional writes", exc) from None
        try:
            self._writer.put_object(Bucket=self.bucket, Key=key, Body=b"", IfNoneMatch="*")
            enforced = False
        except ClientError as exc:
            if _code(exc) not in _TAKEN:
                raise self._unavailable("checking conditional writes", exc) from None
            enforced = True
        except BotoCoreError as exc:
            raise self._unavailable("checking conditional writes", exc) from None
        try:
            self._writer.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            logger.info("replay: could not delete the probe %s: %s", self.describe(name), exc)
        if not enforced:
            raise StoreError(
                f"the store {self.location} ignores conditional writes (If-None-Match: *): "
                "proxies recording there in auto mode would overwrite each other; "
                "refusing to record (use a store that enforces them, or record mode)"
            )
        return True


def _code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code if code and not code.isdigit() else str(status or code)
