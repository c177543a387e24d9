"""The lifecycle of a synthetic Responses API response, and what is remembered between calls.

Owns how a finished Response object unfolds in time: its stream of events
(`stream_events`: lifecycle events, each output item's events, the final response;
PROTOCOLS.md §2.4) and its look before it has output (`pending`). Owns `ResponsesState`, kept
per run in `Session.slot("responses", ResponsesState)`: a bounded LRU of `Stored` responses
(the finished response, its own input items, what a follow-up inherits through
`previous_response_id`), and the status changes that retrieve, cancel and delete make: a
background response goes queued → in_progress → its final status one retrieve at a time, and
only an active background response can be cancelled. A stream replay rebuilds the events
from the finished response (`stream_events` is deterministic) rather than keeping them.

Does not own the Response object, its items, the reply or the endpoints
(`openai_responses.py` builds and serves them).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from replay.providers.base import split_json
from replay.providers.text import split_tokens

CAPACITY = 10_000
"""At most this many responses are kept; the least recently used is forgotten first."""
BUDGET = 64 * 2**20
"""And at most about this many bytes of them (inputs can hold base64 images)."""

ACTIVE = frozenset({"queued", "in_progress"})
"""Statuses of a background response that has not finished yet."""

LIFECYCLE = frozenset({"response.created", "response.queued", "response.in_progress"})
"""Event types sent before any output: all a cancelled response's stream replay holds."""


def pending(response: Mapping[str, Any], status: str) -> dict[str, Any]:
    """`response` as it looks before it has output: `status`, no output, no usage."""
    return {
        **response,
        "status": status,
        "output": [],
        "usage": None,
        "completed_at": None,
        "incomplete_details": None,
    }


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored response. Immutable: a status change stores a new `Stored`."""

    response: Mapping[str, Any]
    """The finished Response object (status `completed` or `incomplete`, full output)."""
    input_items: tuple[Mapping[str, Any], ...]
    """Its own input, as items with ids (not the history it continues)."""
    context_tokens: int
    """Tokens of the history it continued plus its own input (instructions are not carried)."""
    background: bool
    status: str
    """Its status now: `queued`, `in_progress`, `cancelled` or the finished one."""

    @property
    def id(self) -> str:
        return str(self.response["id"])

    @property
    def finished(self) -> str:
        return str(self.response["status"])

    def view(self) -> dict[str, Any]:
        """The Response object as a retrieve sees it now."""
        if self.status == self.finished:
            return dict(self.response)
        return pending(self.response, self.status)

    def inherited_tokens(self) -> int:
        """What a response continuing this one counts as history: its context and, once it
        has finished, its output."""
        if self.status != self.finished:
            return self.context_tokens
        usage = self.response.get("usage") or {}
        return self.context_tokens + int(usage.get("output_tokens", 0))

    @property
    def size(self) -> int:
        """Roughly the bytes it holds: its response and input as JSON."""
        return len(json.dumps([self.response, self.input_items], default=str))

    def replay(self, after: int) -> list[Mapping[str, Any]]:
        """The stream events after sequence number `after` (a cancelled response never got
        past its lifecycle events). Rebuilt from the finished response (the same events
        its stream sent: `stream_events` is deterministic), not kept: one event a token
        would hold many times the response's size."""
        events: Sequence[Mapping[str, Any]] = stream_events(self.response, self.background)
        if self.status == "cancelled":
            events = tuple(e for e in events if e["type"] in LIFECYCLE)
        return [e for e in events if int(e["sequence_number"]) > after]


class ResponsesState:
    """The stored responses of one run, least recently used first; thread-safe."""

    def __init__(self, capacity: int = CAPACITY, budget: int = BUDGET) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.budget = budget
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Stored] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._bytes = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def put(self, stored: Stored) -> None:
        """Keep `stored` (replacing one with the same id), forgetting the oldest past capacity."""
        size = stored.size
        with self._lock:
            self._bytes += size - self._sizes.get(stored.id, 0)
            self._sizes[stored.id] = size
            self._items[stored.id] = stored
            self._items.move_to_end(stored.id)
            while len(self._items) > 1 and (
                len(self._items) > self.capacity or self._bytes > self.budget
            ):
                gone, _ = self._items.popitem(last=False)
                self._bytes -= self._sizes.pop(gone, 0)

    def get(self, response_id: str) -> Stored | None:
        with self._lock:
            return self._touch(response_id)

    def delete(self, response_id: str) -> Stored | None:
        """Forget a response; the one forgotten, or None if there was none."""
        with self._lock:
            self._bytes -= self._sizes.pop(response_id, 0)
            return self._items.pop(response_id, None)

    def advance(self, response_id: str) -> Stored | None:
        """A retrieve: an active background response moves one step (queued → in_progress
        → finished); anything else is returned as it is."""
        with self._lock:
            stored = self._touch(response_id)
            if stored is None or stored.status not in ACTIVE:
                return stored
            status = "in_progress" if stored.status == "queued" else stored.finished
            return self._set(stored, status)

    def finish(self, response_id: str) -> Stored | None:
        """A stream replay shows the whole run: an active response is finished after it."""
        with self._lock:
            stored = self._touch(response_id)
            if stored is None or stored.status not in ACTIVE:
                return stored
            return self._set(stored, stored.finished)

    def cancel(self, response_id: str) -> Stored | None:
        """Cancel an active background response; any other is returned unchanged (the caller
        refuses a response that was not created in the background)."""
        with self._lock:
            stored = self._touch(response_id)
            if stored is None or not stored.background or stored.status not in ACTIVE:
                return stored
            return self._set(stored, "cancelled")

    def _touch(self, response_id: str) -> Stored | None:
        stored = self._items.get(response_id)
        if stored is not None:
            self._items.move_to_end(response_id)
        return stored

    def _set(self, stored: Stored, status: str) -> Stored:
        changed = replace(stored, status=status)
        self._items[stored.id] = changed
        return changed


# --- the stream ------------------------------------------------------------------------------


class _Events:
    """The stream of one response, numbered from 0 as it is built: an item is added before
    its deltas, a content part before its text deltas (one per `split_tokens` piece), and
    arguments go in `split_json` fragments."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, kind: str, **fields: Any) -> None:
        self.events.append({"type": kind, "sequence_number": len(self.events), **fields})

    def message(self, index: int, item: dict[str, Any]) -> None:
        at = {"item_id": item["id"], "output_index": index}
        self.emit(
            "response.output_item.added",
            output_index=index,
            item={**item, "status": "in_progress", "content": []},
        )
        for c, part in enumerate(item["content"]):
            self.emit(
                "response.content_part.added",
                **at,
                content_index=c,
                part={**part, "text": ""},
            )
            for piece in split_tokens(part["text"]):
                self.emit(
                    "response.output_text.delta", **at, content_index=c, delta=piece, logprobs=[]
                )
            self.emit(
                "response.output_text.done", **at, content_index=c, text=part["text"], logprobs=[]
            )
            self.emit("response.content_part.done", **at, content_index=c, part=part)
        self.emit("response.output_item.done", output_index=index, item=item)

    def function_call(self, index: int, item: dict[str, Any]) -> None:
        at = {"item_id": item["id"], "output_index": index}
        self.emit(
            "response.output_item.added",
            output_index=index,
            item={**item, "status": "in_progress", "arguments": ""},
        )
        for fragment in split_json(item["arguments"]):
            self.emit("response.function_call_arguments.delta", **at, delta=fragment)
        self.emit("response.function_call_arguments.done", **at, arguments=item["arguments"])
        self.emit("response.output_item.done", output_index=index, item=item)


def stream_events(final: Mapping[str, Any], background: bool) -> list[dict[str, Any]]:
    """The full stream of the finished response `final`: lifecycle events (queued first in
    the background), each output item's events, then `response.completed` or
    `response.incomplete` with the whole response."""
    out = _Events()
    if background:
        out.emit("response.created", response=pending(final, "queued"))
        out.emit("response.queued", response=pending(final, "queued"))
    else:
        out.emit("response.created", response=pending(final, "in_progress"))
    out.emit("response.in_progress", response=pending(final, "in_progress"))
    for index, item in enumerate(final["output"]):
        if item["type"] == "message":
            out.message(index, item)
        else:
            out.function_call(index, item)
    out.emit(f"response.{final['status']}", response=final)
    return out.events
