"""The exception tree of replay. Owns error types only; the edges translate them.

    ReplayError
    ├── ConfigError          an option or setting has an invalid value (stops startup)
    ├── StoreError           the store cannot be used (root not a directory, bad namespace)
    │   └── CorruptEntry     one interaction file cannot be decoded (treated as a miss)
    │       └── FormatVersionError   a file written by a format version we do not know
    └── BadNamespace         a namespace that is not a plain relative name (answered with 400)

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
