"""Reassembling recorded streams per provider: text, tool calls, events with offsets."""

from __future__ import annotations

import gzip
import json

from support import cassettes

from replay.transcript import transcript


def sse(*events: object, named: bool = False) -> list[bytes]:
    out = []
    for e in events:
        data = e if isinstance(e, str) else json.dumps(e)
        name = f"event: {json.loads(data)['type']}\n" if named else ""
        out.append(f"{name}data: {data}\n\n".encode())
    return out


def stream_of(chunks: list[bytes], ctype: str = "text/event-stream", **kw: object):  # type: ignore[no-untyped-def]
    i = cassettes.interaction(
        cassettes.chat("q", stream=True), chunks, headers=[("content-type", ctype)], **kw
    )
    t = transcript(i)
    assert t is not None
    return t


def test_openai_chat_text_and_tool_calls_across_chunk_boundaries() -> None:
    chunks = sse(
        {"choices": [{"index": 0, "delta": {"content": "Hel"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "function": {"name": "get", "arguments": '{"ci'},
                            }
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"P"}'}}]},
                }
            ]
        },
        "[DONE]",
    )
    joined = b"".join(chunks)
    t = stream_of([joined[:30], joined[30:77], joined[77:]])  # cut mid-event
    assert t.provider == "openai-chat" and t.text == "Hello"
    assert [(c.name, c.arguments, c.id) for c in t.tool_calls] == [
        ("get", '{"city":"P"}', "call_1")
    ]
    assert len(t.events) == 5 and t.events[-1].data == "[DONE]"
    assert t.events[0].offset == 0.01  # completed by the second chunk
    assert t.events[-1].offset == 0.02


def block(kind: str, index: int, **data: object) -> dict[str, object]:
    """An Anthropic content_block_* event."""
    return {"type": f"content_block_{kind}", "index": index, **data}


def test_anthropic_text_and_tool_use() -> None:
    tool = {"type": "tool_use", "id": "tu_1", "name": "calc"}
    t = stream_of(
        sse(
            {"type": "message_start", "message": {}},
            block("start", 0, content_block={"type": "text", "text": ""}),
            block("delta", 0, delta={"type": "text_delta", "text": "Hi "}),
            block("delta", 0, delta={"type": "text_delta", "text": "there"}),
            block("start", 1, content_block=tool),
            block("delta", 1, delta={"type": "input_json_delta", "partial_json": '{"x":'}),
            block("delta", 1, delta={"type": "input_json_delta", "partial_json": "1}"}),
            {"type": "message_stop"},
            named=True,
        )
    )
    assert t.provider == "anthropic" and t.text == "Hi there"
    assert [(c.name, c.arguments, c.id) for c in t.tool_calls] == [("calc", '{"x":1}', "tu_1")]
    assert t.events[0].name == "message_start"


def test_responses_api() -> None:
    t = stream_of(
        sse(
            {"type": "response.output_text.delta", "delta": "A"},
            {"type": "response.output_text.delta", "delta": "B"},
            {
                "type": "response.output_item.done",
                "output_index": 1,
                "item": {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "c1",
                    "name": "f",
                    "arguments": "{}",
                },
            },
            named=True,
        )
    )
    assert (t.provider, t.text) == ("openai-responses", "AB")
    assert [(c.name, c.arguments, c.id) for c in t.tool_calls] == [("f", "{}", "c1")]


def test_gemini_sse() -> None:
    t = stream_of(
        sse(
            {"candidates": [{"content": {"parts": [{"text": "Bon"}], "role": "model"}}]},
            {
                "candidates": [
                    {
                        "content": {
                            "parts": [
                                {"text": "jour"},
                                {"functionCall": {"name": "g", "args": {"a": 1}}},
                            ]
                        }
                    }
                ]
            },
        )
    )
    assert (t.provider, t.text) == ("gemini", "Bonjour")
    assert [(c.name, c.arguments) for c in t.tool_calls] == [("g", '{"a": 1}')]


def test_ollama_ndjson() -> None:
    lines = [
        b'{"message":{"role":"assistant","content":"Hal"},"done":false}\n',
        b'{"message":{"role":"assistant","content":"lo","tool_calls":[{"function":{"name":"t","arguments":{"k":"v"}}}]},"done":false}\n{"done":true}\n',
    ]
    t = stream_of(lines, "application/x-ndjson")
    assert (t.framing, t.provider, t.text) == ("ndjson", "ollama", "Hallo")
    assert [(c.name, c.arguments) for c in t.tool_calls] == [("t", '{"k": "v"}')]
    assert len(t.events) == 3


def test_gzip_encoded_stream_is_decoded_piece_by_piece() -> None:
    raw = b"".join(sse({"choices": [{"index": 0, "delta": {"content": "zip"}}]}, "[DONE]"))
    packed = gzip.compress(raw)
    i = cassettes.interaction(
        cassettes.chat("q"),
        [packed[:10], packed[10:]],
        headers=[("content-type", "text/event-stream"), ("content-encoding", "gzip")],
    )
    t = transcript(i)
    assert t is not None and t.text == "zip" and len(t.events) == 2


def test_not_a_stream() -> None:
    i = cassettes.interaction(cassettes.chat("q"), [cassettes.completion("x")])
    assert transcript(i) is None


def test_garbage_events_are_listed_and_ignored() -> None:
    t = stream_of([b"data: {not json\n\n", b": comment only\n\n", b"data: [1,2]\n\n"])
    assert (
        t.text == "" and t.tool_calls == [] and [e.data for e in t.events] == ["{not json", "[1,2]"]
    )
