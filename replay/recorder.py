"""Taps a response stream chunk by chunk, with each chunk's time offset.

Owns `Recording`: its `tap` has the shape of mitmproxy's `response.stream` callable (called
once per received piece, then once with b"" at the end of the message) and passes every byte
through unchanged and at once, so nothing is buffered on the way to the client. Knows nothing
of mitmproxy, fingerprints or the store: the engine turns a finished recording into an
interaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from replay.models import Chunk


class Recording:
    """The chunks of one response as they arrive. An aborted recording is never complete."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._t_headers = clock()
        self._chunks: list[Chunk] = []
        self._ended = False
        self._abort_reason: str | None = None

    def tap(self, data: bytes) -> bytes:
        """Record `data` with its offset from the headers and hand it back unchanged."""
        if data:
            if not self._ended and self._abort_reason is None:
                self._chunks.append(Chunk(self._clock() - self._t_headers, bytes(data)))
        else:
            self._ended = True
        return data

    def abort(self, reason: str) -> None:
        """The stream was cut (client gone, upstream reset): this recording will not be kept."""
        if self._abort_reason is None:
            self._abort_reason = reason

    @property
    def complete(self) -> bool:
        """True once the end of the message was seen and nothing aborted the recording."""
        return self._ended and self._abort_reason is None

    @property
    def abort_reason(self) -> str | None:
        return self._abort_reason

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return tuple(self._chunks)
