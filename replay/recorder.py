"""Taps a response stream chunk by chunk, with each chunk's time offset, and judges its end.

Owns `Recording`: its `tap` has the shape of mitmproxy's `response.stream` callable (called
once per received piece, then once with b"" at the end of the message) and passes every byte
through unchanged and at once, so nothing is buffered on the way to the client. A recording
is `complete` when the message ended, or when the connection broke after the provider's own
protocol said the answer was over (`stream_end.body_ended`: an SDK that hangs up on
`data: [DONE]` loses nothing). Knows nothing of mitmproxy, fingerprints or the store: the
engine turns a finished recording into an interaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from replay.models import Chunk, ResponseHead
from replay.stream_end import body_ended


class Recording:
    """The chunks of one response as they arrive."""

    def __init__(
        self, head: ResponseHead | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.head = head
        self._clock = clock
        self._t_headers = clock()
        self._chunks: list[Chunk] = []
        self._ended = False
        self._abort_reason: str | None = None
        self._verdict: bool | None = None

    def tap(self, data: bytes) -> bytes:
        """Record `data` with its offset from the headers and hand it back unchanged."""
        if data:
            if not self._ended and self._abort_reason is None:
                self._chunks.append(Chunk(self._clock() - self._t_headers, bytes(data)))
        elif self._abort_reason is None:
            self._ended = True
        return data

    def abort(self, reason: str) -> None:
        """The connection broke (client gone, upstream reset): nothing more is recorded."""
        if self._abort_reason is None:
            self._abort_reason = reason

    @property
    def complete(self) -> bool:
        """The message ended, or its protocol says the answer was whole before the break."""
        if self._ended:
            return True
        if self._abort_reason is None:
            return False
        if self._verdict is None:
            self._verdict = self._protocol_ended()
        return self._verdict

    def _protocol_ended(self) -> bool:
        head = self.head
        if head is None:
            return False
        length = head.header("content-length")
        try:
            content_length = int(length) if length is not None else None
        except ValueError:
            content_length = None
        body = b"".join(c.data for c in self._chunks)
        return body_ended(
            head.header("content-type"), head.header("content-encoding"), content_length, body
        )

    @property
    def abort_reason(self) -> str | None:
        return self._abort_reason

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return tuple(self._chunks)
