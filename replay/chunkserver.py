"""The loopback chunk server: sends a playback's chunks, each at its own time.

mitmproxy sends a response made by an addon in one piece, so a timed stream has to come
from a peer. The addon registers a playback here, points the flow at one of our ports on
127.0.0.1 with a job header, and lets mitmproxy relay what we send. We write the recorded
status line and headers raw (order and case kept), then each chunk at
`t_request + ttfb + offset` on an absolute schedule (timer jitter never piles up; a chunk
more than SLIP_AFTER late moves the rest back, so a busy loop stretches a stream rather
than squeezing its gaps into a catch-up burst), flushing each one:
one HTTP/1.1 chunk per recorded chunk under chunked framing (mitmproxy's h11 reader never
merges chunks, so boundaries survive even at speed 0), raw bytes under content-length.

Several ports are opened because mitmproxy allows 5 connections per (client connection,
server address): an HTTP/2 client multiplexing many replayed streams is spread over them.
A client that leaves closes mitmproxy's connection to us, which ends that stream only.

Runs in mitmproxy's event loop but imports nothing of mitmproxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from dataclasses import dataclass

from replay.player import Framing, Interruption, Playback

logger = logging.getLogger(__name__)

JOB_HEADER = "x-replay-job"
_MAX_HEAD = 64 * 1024
SLIP_AFTER = 0.002
"""Lateness (seconds) beyond which the rest of a stream's schedule moves back."""


class Schedule:
    """When each chunk of one stream is due: `t_headers + offset`, absolute.

    Timer jitter below SLIP_AFTER is absorbed (the next chunk is still due on time). A chunk
    sent later than that (the event loop was busy, e.g. taking in 50 requests at once)
    moves everything after it back by its lateness: the recorded gaps are kept and the
    stream ends later, instead of the overdue chunks going out back to back.
    """

    def __init__(self, t_headers: float) -> None:
        self.t_headers = t_headers

    def due(self, offset: float) -> float:
        return self.t_headers + offset

    def sent(self, due: float, now: float) -> None:
        if (late := now - due) > SLIP_AFTER:
            self.t_headers += late


@dataclass(frozen=True, slots=True)
class _Job:
    playback: Playback
    t_request: float
    """Loop time at which the request was complete; the schedule is anchored here."""


class ChunkServer:
    """A pool of loopback HTTP/1.1 listeners that play registered jobs."""

    def __init__(self, ports: int = 16) -> None:
        self._wanted = ports
        self._servers: list[asyncio.Server] = []
        self._ports: list[int] = []
        self._jobs: dict[str, _Job] = {}
        self._rotation = itertools.count()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def size(self) -> int:
        """How many ports the pool opens."""
        return self._wanted

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(self._ports)

    async def start(self) -> None:
        """Open the listeners (once; later calls return at once)."""
        if self._servers:
            return
        async with self._lock:
            if self._servers:
                return
            for _ in range(self._wanted):
                server = await asyncio.start_server(
                    self._serve, "127.0.0.1", 0, limit=_MAX_HEAD, backlog=128
                )
                self._servers.append(server)
                self._ports.append(server.sockets[0].getsockname()[1])
            logger.debug("chunk server listening on 127.0.0.1 ports %s", self._ports)

    def close(self) -> None:
        """Stop listening and end every stream in flight."""
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        self._servers.clear()
        self._ports.clear()
        self._jobs.clear()

    def register(self, playback: Playback, t_request: float) -> str:
        """Queue `playback`; returns the job id the request must carry in JOB_HEADER."""
        job_id = secrets.token_hex(12)
        self._jobs[job_id] = _Job(playback, t_request)
        return job_id

    def cancel(self, job_id: str) -> None:
        """Forget a job whose request never reached us."""
        self._jobs.pop(job_id, None)

    def port_for(self, affinity: str | None) -> int:
        """A port: stable for an affinity key (HTTP/1 keep-alive reuse), else rotating."""
        if not self._ports:
            raise RuntimeError("chunk server not started")
        if affinity is not None:
            return self._ports[hash(affinity) % len(self._ports)]
        return self._ports[next(self._rotation) % len(self._ports)]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while True:
                head = await _read_request(reader)
                if head is None:
                    return
                job = self._jobs.pop(head.get(JOB_HEADER, ""), None)
                if job is None:
                    writer.write(_UNKNOWN_JOB)
                    await writer.drain()
                    continue
                if not await _play(job, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away: this stream ends, nothing else does
        except ValueError as e:
            logger.warning("chunk server: bad request from mitmproxy: %s", e)
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


_UNKNOWN_JOB_BODY = b"replay: unknown or expired replay job\n"
_UNKNOWN_JOB = (
    b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_UNKNOWN_JOB_BODY), _UNKNOWN_JOB_BODY)
)


async def _read_request(reader: asyncio.StreamReader) -> dict[str, str] | None:
    """Read one request head and drain its body; lower-cased headers, or None at EOF."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise
    lines = raw.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"malformed header line {line!r}")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        await _drain_chunked(reader)
    elif (length := int(headers.get("content-length", "0") or 0)) > 0:
        await reader.readexactly(length)
    return headers


async def _drain_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return
        await reader.readexactly(size + 2)


def _head(playback: Playback) -> bytes:
    lines = [f"HTTP/1.1 {playback.status} {playback.reason}"]
    lines += [f"{name}: {value}" for name, value in playback.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def _play(job: _Job, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Send one playback on its schedule; True: the connection can serve the next one."""
    loop = asyncio.get_running_loop()
    playback = job.playback
    head_due = job.t_request + playback.ttfb
    await _sleep_until(loop, head_due)
    schedule = Schedule(max(head_due, loop.time()))  # picked up late: chunks count from now
    writer.write(_head(playback))
    await writer.drain()
    chunked = playback.framing is Framing.CHUNKED
    cut = playback.interruption
    for index, chunk in enumerate(playback.chunks):
        if cut is not None and index == cut.after:
            return await _interrupt(cut, reader, writer)
        due = schedule.due(chunk.offset)
        await _sleep_until(loop, due)
        schedule.sent(due, loop.time())
        if chunked:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk.data), chunk.data))
        else:
            writer.write(chunk.data)
        await writer.drain()
    if cut is not None:  # fewer chunks than `after`: the end never comes
        return await _interrupt(cut, reader, writer)
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    return True


async def _interrupt(
    cut: Interruption, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    """A fault: stall as long as asked (or until the peer leaves), then drop the
    connection without ending the body. Never reused."""
    if cut.hold or cut.stall is not None:
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(1), None if cut.hold else cut.stall)
    writer.transport.abort()
    return False
