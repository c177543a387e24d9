"""What a client makes of a recorded streamed answer: its events, its text, its tool calls.

Owns reading a stored response body (SSE or NDJSON, content-decoded chunk by chunk, so each
event keeps the offset of the chunk that completed it) and reassembling it the way each
provider's SDK does: OpenAI chat and legacy completions (`choices[].delta` / `.text`), the
OpenAI Responses API (`response.output_text.delta`, function-call items), Anthropic
(`content_block_*`), Gemini (`candidates[].content.parts`) and Ollama (`message` or
`response`). The shape of each event decides, never the host. Pure and total: a body that is
not a stream gives None, odd events are listed and otherwise ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from replay.canonical import decode_content, incremental_decoder
from replay.models import Interaction


@dataclass(frozen=True, slots=True)
class Event:
    offset: float
    """Seconds after the response headers at which the event was complete."""
    name: str | None
    """The SSE `event:` field, if any."""
    data: str


@dataclass
class ToolCall:
    name: str
    arguments: str = ""
    id: str | None = None


@dataclass
class Transcript:
    framing: str
    """`sse` or `ndjson`."""
    events: list[Event]
    provider: str = "unknown"
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


def framing_of(interaction: Interaction) -> str | None:
    """`sse`, `ndjson`, or None, from the response's content-type."""
    return stream_framing(interaction.response.header("content-type"))


def stream_framing(content_type: str | None) -> str | None:
    """`sse`, `ndjson`, or None (not a stream), from a content-type."""
    ctype = (content_type or "").lower()
    if "text/event-stream" in ctype:
        return "sse"
    if "ndjson" in ctype or "jsonl" in ctype or "json-seq" in ctype:
        return "ndjson"
    return None


def decoded_pieces(interaction: Interaction) -> list[tuple[float, bytes]]:
    """The body's chunks content-decoded one by one, each with its offset (when the coding
    cannot be undone piece by piece, the whole body at the last chunk's offset)."""
    coding = (interaction.response.header("content-encoding") or "").strip()
    chunks = interaction.chunks
    if not coding or coding.lower() == "identity":
        return [(c.offset, c.data) for c in chunks]
    decoder = incremental_decoder(coding) if "," not in coding else None
    if decoder is not None:
        try:
            return [(c.offset, decoder(c.data)) for c in chunks]
        except Exception:  # a damaged body: fall through to the whole-body attempt
            pass
    last = chunks[-1].offset if chunks else 0.0
    try:
        return [(last, decode_content(interaction.body, coding))]
    except Exception:
        return [(last, interaction.body)]


def events(pieces: list[tuple[float, bytes]], framing: str) -> list[Event]:
    """The SSE events (blank-line separated) or NDJSON lines, in order, with offsets."""
    out: list[Event] = []
    buffer = b""
    separator = b"\n\n" if framing == "sse" else b"\n"
    for offset, data in pieces:
        buffer += data.replace(b"\r\n", b"\n")
        start = 0  # one pass over the piece, however many events it holds
        while (cut := buffer.find(separator, start)) >= 0:
            block, start = buffer[start:cut], cut + len(separator)
            if (event := _event(block, framing, offset)) is not None:
                out.append(event)
        buffer = buffer[start:]
    if buffer.strip() and (event := _event(buffer, framing, pieces[-1][0])) is not None:
        out.append(event)
    return out


def _event(block: bytes, framing: str, offset: float) -> Event | None:
    text = block.decode("utf-8", "replace")
    if framing == "ndjson":
        return Event(offset, None, text) if text.strip() else None
    name, data = None, []
    for line in text.split("\n"):
        field_name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field_name == "event":
            name = value
        elif field_name == "data":
            data.append(value)
    if name is None and not data:
        return None
    return Event(offset, name, "\n".join(data))


def transcript(interaction: Interaction) -> Transcript | None:
    """The reassembled stream of a recorded answer, or None if it is not SSE or NDJSON."""
    framing = framing_of(interaction)
    if framing is None:
        return None
    result = Transcript(framing, events(decoded_pieces(interaction), framing))
    tools: dict[str, ToolCall] = {}
    for event in result.events:
        try:
            obj = json.loads(event.data)
        except ValueError:
            continue
        if isinstance(obj, dict):
            _fold(result, tools, obj)
    result.tool_calls = list(tools.values())
    return result


def _fold(result: Transcript, tools: dict[str, ToolCall], obj: dict[str, Any]) -> None:
    """Add one decoded event to the text and tool calls, by its shape."""
    kind = obj.get("type")
    if isinstance(kind, str) and kind.startswith("response."):
        _responses(result, tools, obj, kind)
    elif isinstance(kind, str) and kind.startswith(("content_block", "message_")):
        _anthropic(result, tools, obj, kind)
    elif isinstance(obj.get("choices"), list):
        _openai(result, tools, obj["choices"])
    elif isinstance(obj.get("candidates"), list):
        _gemini(result, tools, obj["candidates"])
    elif isinstance(obj.get("message"), dict) or isinstance(obj.get("response"), str):
        _ollama(result, tools, obj)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _tool(tools: dict[str, ToolCall], key: str) -> ToolCall:
    return tools.setdefault(key, ToolCall(""))


def _openai(result: Transcript, tools: dict[str, ToolCall], choices: list[Any]) -> None:
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        if isinstance(choice.get("text"), str):  # legacy completions
            result.provider = "openai-completions"
            result.text += choice["text"]
            continue
        result.provider = "openai-chat"
        delta = _dict(choice.get("delta"))
        if isinstance(delta.get("content"), str):
            result.text += delta["content"]
        for call in delta.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            tool = _tool(tools, str(call.get("index", 0)))
            tool.id = call.get("id") or tool.id
            function = _dict(call.get("function"))
            tool.name += function.get("name") or ""
            tool.arguments += function.get("arguments") or ""


def _responses(
    result: Transcript, tools: dict[str, ToolCall], obj: dict[str, Any], kind: str
) -> None:
    result.provider = "openai-responses"
    if kind == "response.output_text.delta" and isinstance(obj.get("delta"), str):
        result.text += obj["delta"]
    item = _dict(obj.get("item"))
    if kind == "response.output_item.done" and item.get("type") == "function_call":
        tool = _tool(tools, str(item.get("id") or obj.get("output_index")))
        tool.name, tool.id = str(item.get("name", "")), item.get("call_id")
        tool.arguments = str(item.get("arguments", ""))


def _anthropic(
    result: Transcript, tools: dict[str, ToolCall], obj: dict[str, Any], kind: str
) -> None:
    result.provider = "anthropic"
    index = str(obj.get("index", 0))
    block = _dict(obj.get("content_block"))
    if kind == "content_block_start" and block.get("type") == "tool_use":
        tool = _tool(tools, index)
        tool.name, tool.id = str(block.get("name", "")), block.get("id")
    delta = obj.get("delta")
    if kind == "content_block_delta" and isinstance(delta, dict):
        if delta.get("type") == "text_delta":
            result.text += str(delta.get("text", ""))
        elif delta.get("type") == "input_json_delta":
            _tool(tools, index).arguments += str(delta.get("partial_json", ""))


def _gemini(result: Transcript, tools: dict[str, ToolCall], candidates: list[Any]) -> None:
    result.provider = "gemini"
    content = _dict(_dict(candidates[0] if candidates else None).get("content"))
    for part in content.get("parts") or []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            result.text += part["text"]
        call = part.get("functionCall")
        if isinstance(call, dict):
            tool = _tool(tools, str(len(tools)))
            tool.name = str(call.get("name", ""))
            tool.arguments = json.dumps(call.get("args", {}), sort_keys=True)


def _ollama(result: Transcript, tools: dict[str, ToolCall], obj: dict[str, Any]) -> None:
    result.provider = "ollama"
    if isinstance(obj.get("response"), str):
        result.text += obj["response"]
    message = _dict(obj.get("message"))
    if isinstance(message.get("content"), str):
        result.text += message["content"]
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            tool = _tool(tools, str(len(tools)))
            tool.name = str(function.get("name", ""))
            tool.arguments = json.dumps(function.get("arguments", {}), sort_keys=True)
