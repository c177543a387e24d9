"""One interaction as text for people (`replay show`) and for git (`show --textconv`).

Owns the layout: a header (key, provenance), the request (line, headers, body
pretty-printed when JSON), the response (status, headers, body), and for a stream the text
and tool calls a client would see (replay.transcript) plus its events. The git form is
stable: no chunk offsets or timings, so a re-recording diffs only where the content changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from replay.canonical import decode_content
from replay.models import Headers, Interaction
from replay.transcript import transcript


def body_text(data: bytes, content_type: str | None, encoding: str | None = None) -> str:
    """A body for reading: content-decoded, JSON indented, text as is, else a byte count."""
    if not data:
        return "(empty body)"
    if encoding and encoding.strip().lower() != "identity":
        try:
            data = decode_content(data, encoding)
        except Exception:
            return f"({len(data)} bytes, {encoding}-encoded, not decodable)"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"({len(data)} bytes of binary{', ' + content_type if content_type else ''})"
    if content_type is None or "json" in content_type.lower() or text[:1] in "{[":
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=False)
        except ValueError:
            pass
    return text


def _headers(headers: Headers) -> Iterator[str]:
    for name, value in headers:
        yield f"{name}: {value}"


def render(interaction: Interaction, *, stable: bool = False) -> str:
    """The whole interaction as text; `stable` leaves out timings (the `--textconv` form)."""
    i, req, resp = interaction, interaction.request, interaction.response
    prov = i.provenance
    out = [
        f"# replay interaction {i.key.fingerprint} occurrence {i.key.occurrence}",
        f"# namespace {i.key.namespace}",
        f"# recorded {prov.recorded_at} by replay {prov.tool_version}; provider {prov.provider}"
        f"; model {prov.model or '-'}; complete {'yes' if i.complete else 'no'}",
        "",
        f"{req.method} {req.url}",
        *_headers(req.headers),
        "",
        body_text(req.body, req.header("content-type")),
        "",
        f"{resp.http_version} {resp.status} {resp.reason}".strip(),
        *_headers(resp.headers),
    ]
    if not stable:
        out.append(f"# time to first byte {i.ttfb * 1000:.0f} ms, {len(i.chunks)} chunk(s)")
    out.append("")
    stream = transcript(i)
    if stream is None:
        out.append(body_text(i.body, resp.header("content-type"), resp.header("content-encoding")))
        return "\n".join(out) + "\n"
    out.append(f"## {stream.framing} stream ({stream.provider}): the text a client sees")
    out.append(stream.text if stream.text else "(no text)")
    if stream.tool_calls:
        out.append("## tool calls")
        for call in stream.tool_calls:
            ident = f" [{call.id}]" if call.id else ""
            out.append(f"{call.name}({call.arguments}){ident}")
    out.append(f"## {len(stream.events)} event(s)")
    for event in stream.events:
        name = f"{event.name}: " if event.name else ""
        when = "" if stable else f"+{event.offset * 1000:7.1f} ms  "
        out.append(f"{when}{name}{event.data}")
    return "\n".join(out) + "\n"
