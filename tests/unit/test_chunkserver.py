"""The loopback chunk server, driven over real loopback sockets at speed 0 (no sleeps)."""

from __future__ import annotations

import asyncio
import contextlib

from replay.chunkserver import JOB_HEADER, ChunkServer
from replay.models import Chunk
from replay.player import Framing, Interruption, Playback, modified


def playback(
    chunks: list[bytes], framing: Framing = Framing.CHUNKED, offsets: list[float] | None = None
) -> Playback:
    offs = offsets or [0.0] * len(chunks)
    frame = (
        ("Transfer-Encoding", "chunked")
        if framing is Framing.CHUNKED
        else ("content-length", str(sum(map(len, chunks))))
    )
    return Playback(
        200,
        "OK",
        (("Content-Type", "text/event-stream"), frame, ("X-Id", "a")),
        0.0,
        tuple(Chunk(o, c) for o, c in zip(offs, chunks, strict=True)),
        framing,
    )


def request(job: str, body: bytes = b'{"x": 1}') -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n{JOB_HEADER}: {job}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_head(reader: asyncio.StreamReader) -> list[str]:
    return (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")[:-2]


async def read_chunks(reader: asyncio.StreamReader) -> list[bytes]:
    chunks = []
    for _ in range(1000):
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        data = await reader.readexactly(size + 2)
        if size == 0:
            return chunks
        chunks.append(data[:-2])
    raise AssertionError("no terminating chunk")


def test_each_recorded_chunk_is_its_own_http_chunk_and_head_is_verbatim() -> None:
    async def main() -> None:
        server = ChunkServer(ports=2)
        await server.start()
        try:
            events = [b"data: a\n\n", b"data: bb\n\n", b"data: [DONE]\n\n"]
            job = server.register(playback(events), asyncio.get_running_loop().time())
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port_for("c1"))
            writer.write(request(job))
            head = await read_head(reader)
            assert head == [
                "HTTP/1.1 200 OK",
                "Content-Type: text/event-stream",
                "Transfer-Encoding: chunked",
                "X-Id: a",
            ]
            assert await read_chunks(reader) == events
            # keep-alive: a second job on the same connection
            job2 = server.register(playback([b"x", b"y"]), asyncio.get_running_loop().time())
            writer.write(request(job2, b""))
            await read_head(reader)
            assert await read_chunks(reader) == [b"x", b"y"]
            writer.write(request(job2, b""))  # a job is played once, then forgotten
            assert (await read_head(reader))[0] == "HTTP/1.1 502 Bad Gateway"
            writer.close()
        finally:
            server.close()

    asyncio.run(main())


def test_content_length_body_is_sent_raw() -> None:
    async def main() -> None:
        server = ChunkServer(ports=1)
        await server.start()
        try:
            job = server.register(playback([b'{"a"', b": 1}"], Framing.LENGTH), 0.0)
            reader, writer = await asyncio.open_connection("127.0.0.1", server.ports[0])
            writer.write(request(job))
            head = await read_head(reader)
            assert "content-length: 8" in head
            assert await reader.readexactly(8) == b'{"a": 1}'
            writer.close()
        finally:
            server.close()

    asyncio.run(main())


def test_unknown_job_gets_502_and_connection_survives() -> None:
    async def main() -> None:
        server = ChunkServer(ports=1)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.ports[0])
            writer.write(request("nope"))
            head = await read_head(reader)
            assert head[0].startswith("HTTP/1.1 502")
            length = int(next(h for h in head if h.startswith("content-length")).split(":")[1])
            assert b"unknown" in await reader.readexactly(length)
            job = server.register(playback([b"ok", b"!"]), 0.0)
            writer.write(request(job))
            await read_head(reader)
            assert await read_chunks(reader) == [b"ok", b"!"]
            writer.close()
        finally:
            server.close()

    asyncio.run(main())


def test_a_client_that_leaves_ends_its_own_stream_only() -> None:
    async def main() -> None:
        server = ChunkServer(ports=1)
        await server.start()
        try:
            loop = asyncio.get_running_loop()
            # This stream's second chunk is due in an hour: the client leaves before it.
            slow = server.register(
                playback([b"first", b"later"], offsets=[0.0, 3600.0]), loop.time()
            )
            r1, w1 = await asyncio.open_connection("127.0.0.1", server.ports[0])
            w1.write(request(slow))
            await read_head(r1)
            assert await r1.readuntil(b"first\r\n")
            w1.close()
            fast = server.register(playback([b"1", b"2", b"3"]), loop.time())
            r2, w2 = await asyncio.open_connection("127.0.0.1", server.ports[0])
            w2.write(request(fast))
            await read_head(r2)
            assert await read_chunks(r2) == [b"1", b"2", b"3"]
            w2.close()
        finally:
            server.close()

    asyncio.run(main())


def test_ports_rotate_without_affinity_and_stick_with_it() -> None:
    async def main() -> None:
        server = ChunkServer(ports=4)
        await server.start()
        try:
            assert len(set(server.ports)) == 4
            assert len({server.port_for(None) for _ in range(8)}) == 4
            assert len({server.port_for("client-a") for _ in range(8)}) == 1
        finally:
            server.close()

    asyncio.run(main())


def test_chunked_request_bodies_are_drained() -> None:
    async def main() -> None:
        server = ChunkServer(ports=1)
        await server.start()
        try:
            job = server.register(playback([b"a", b"b"]), 0.0)
            reader, writer = await asyncio.open_connection("127.0.0.1", server.ports[0])
            writer.write(
                (
                    f"POST / HTTP/1.1\r\n{JOB_HEADER}: {job}\r\n"
                    "transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                ).encode()
            )
            await read_head(reader)
            assert await read_chunks(reader) == [b"a", b"b"]
            writer.close()
        finally:
            server.close()

    asyncio.run(main())


def test_schedule_absorbs_jitter_and_slips_when_the_loop_runs_late() -> None:
    from replay.chunkserver import SLIP_AFTER, Schedule

    s = Schedule(10.0)
    assert s.due(0.05) == 10.05
    s.sent(10.05, 10.05 + SLIP_AFTER / 2)  # jitter: the next chunk stays on time
    assert s.due(0.1) == 10.1
    s.sent(10.1, 10.13)  # 30 ms late: the rest of the stream keeps its gaps
    assert abs(s.due(0.15) - 10.18) < 1e-9
    s.sent(s.due(0.15), s.due(0.15))
    assert abs(s.due(0.2) - 10.23) < 1e-9


def _with_cut(p: Playback, cut: Interruption) -> Playback:
    return modified(p, interruption=cut)


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    data = b""
    for _ in range(1000):
        piece = await reader.read(65536)
        if not piece:
            return data
        data += piece
    raise AssertionError("connection never closed")


def test_a_cut_drops_the_connection_after_n_chunks_without_the_terminator() -> None:
    async def main() -> None:
        server = ChunkServer(ports=1)
        await server.start()
        try:
            events = [b"data: a\n\n", b"data: b\n\n", b"data: c\n\n"]
            p = _with_cut(playback(events), Interruption(after=2))
            assert p.streamed
            job = server.register(p, asyncio.get_running_loop().time())
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port_for(None))
            writer.write(request(job))
            await read_head(reader)
            rest = await _read_until_closed(reader)
            assert rest == b"9\r\ndata: a\n\n\r\n9\r\ndata: b\n\n\r\n"  # no c, no 0-chunk
            writer.close()
        finally:
            server.close()

    asyncio.run(main())


def test_a_cut_past_the_last_chunk_still_never_ends_the_body() -> None:
    async def main() -> None:
        server = ChunkServer(ports=1)
        await server.start()
        try:
            body = b'{"ok": true}'
            p = _with_cut(playback([body], Framing.LENGTH), Interruption(after=5))
            job = server.register(p, asyncio.get_running_loop().time())
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port_for(None))
            writer.write(request(job))
            head = await read_head(reader)
            # A whole body under a content-length would look complete: the fault switches
            # the playback to chunked framing, whose missing last chunk shows the break.
            assert "transfer-encoding: chunked" in head
            assert not any(h.lower().startswith("content-length") for h in head)
            assert await _read_until_closed(reader) == b"c\r\n" + body + b"\r\n"
            writer.close()
        finally:
            server.close()

    asyncio.run(main())


def test_a_held_stall_lasts_until_the_client_leaves() -> None:
    async def main() -> None:
        server = ChunkServer(ports=1)
        await server.start()
        try:
            p = _with_cut(playback([b"a", b"b"]), Interruption(after=1, hold=True))
            job = server.register(p, asyncio.get_running_loop().time())
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port_for(None))
            writer.write(request(job))
            await read_head(reader)
            assert await reader.readexactly(6) == b"1\r\na\r\n"
            with contextlib.suppress(TimeoutError):  # nothing more comes while held
                extra = await asyncio.wait_for(reader.read(1), 0.05)
                raise AssertionError(f"stalled stream sent {extra!r}")
            writer.close()  # the client gives up: the server's task ends
            for _ in range(200):
                if not server._tasks:
                    break
                await asyncio.sleep(0.005)
            assert not server._tasks
        finally:
            server.close()

    asyncio.run(main())


def test_a_timed_stall_drops_the_connection_afterwards() -> None:
    async def main() -> None:
        server = ChunkServer(ports=1)
        await server.start()
        try:
            p = _with_cut(playback([b"a", b"b"]), Interruption(after=1, stall=0.0))
            job = server.register(p, asyncio.get_running_loop().time())
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port_for(None))
            writer.write(request(job))
            await read_head(reader)
            assert await _read_until_closed(reader) == b"1\r\na\r\n"
            writer.close()
        finally:
            server.close()

    asyncio.run(main())
