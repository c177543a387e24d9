"""The exception tree of replay. Owns error types only; the edges translate them.

    ReplayError
    ├── ConfigError          an option or setting has an invalid value (stops startup)
    ├── StoreError           the store cannot be used (root not a directory, bad namespace)
    │   ├── CorruptEntry     one interaction file cannot be decoded (treated as a miss)
    │   │   └── FormatVersionError   a file written by a format version we do not know
    │   └── StoreLocked      another live process writes the namespace (writes refused)
    ├── BadNamespace         a namespace that is not a plain relative name (answered with 400)
    └── RequestRefused       a request body the proxy will not process as sent
        ├── BodyTooLarge     its decoded size passes `replay_max_body` (answered with 413)
        └── JsonTooDeep      its JSON nests deeper than canonical.MAX_JSON_DEPTH (answered 400)

The mitmproxy glue turns ConfigError into mitmproxy's OptionsError, the CLI turns any
ReplayError into one line and a non-zero exit, and the request path never lets one escape.
"""

from __future__ import annotations


class ReplayError(Exception):
    """Base of every error replay raises on purpose."""


class ConfigError(ReplayError):
    """An option or setting has an invalid value; the message names it."""


class StoreError(ReplayError):
    """The store cannot be used as asked."""


class CorruptEntry(StoreError):
    """An interaction file cannot be read; carries the path and the reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class FormatVersionError(CorruptEntry):
    """An interaction file of a format version this release cannot read."""


class BadNamespace(ReplayError):
    """A namespace name that is not a plain relative name."""


class StoreLocked(StoreError):
    """Another live process holds the write lock of a namespace; carries its pid and host."""

    def __init__(self, namespace: str, pid: int, host: str, lock_path: str) -> None:
        who = f"pid {pid} on {host}" if pid else "a process that has not said who it is"
        super().__init__(
            f"namespace {namespace!r} is being recorded by another replay process "
            f"({who}, lock {lock_path}): this proxy does not write it"
        )
        self.namespace = namespace
        self.pid = pid
        self.host = host
        self.lock_path = lock_path


class RequestRefused(ReplayError):
    """A request body that is not processed as sent; the message says why, for the client."""


class BodyTooLarge(RequestRefused):
    """Content that decodes (or already is) larger than `limit` bytes; decoding stopped there."""

    def __init__(self, limit: int, what: str = "request body") -> None:
        super().__init__(f"the {what} is larger than {limit} bytes once decoded (replay_max_body)")
        self.limit = limit
        self.what = what


class JsonTooDeep(RequestRefused):
    """JSON nested deeper than `limit` arrays and objects."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the JSON body nests deeper than {limit} levels")
        self.limit = limit
