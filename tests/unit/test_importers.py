"""Reading other tools' files: VCR.py body shapes, HAR content and timings, event splitting,
and the interactions made from them (fingerprints, occurrences, provenance)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest

from replay.fingerprint import FingerprintPolicy, fingerprint
from replay.importers import ImportFormatError, har, interactions, split_events, vcr

VCR_YAML = """\
interactions:
- request:
    body: '{"model": "gpt-4o-mini", "messages": []}'
    headers:
      Content-Type: [application/json]
      Authorization: [Bearer sk-test-0123456789abcdefghijklmn]
    method: POST
    uri: https://api.openai.com/v1/chat/completions?api-version=1
  response:
    body: {string: '{"ok": true}'}
    headers:
      Content-Type: [application/json]
    status: {code: 200, message: OK}
- request:
    body: null
    headers: {}
    method: GET
    uri: https://api.openai.com/v1/models
  response:
    body: {base64_string: eyJkYXRhIjogW119}
    headers: {}
    status: {code: 200, message: OK}
- request:
    body: !!binary |
      eyJtb2RlbCI6ICJ4In0=
    headers: {}
    method: POST
    uri: https://api.openai.com/v1/chat/completions
  response:
    body:
      string: !!binary |
        GZIP
    headers:
      Content-Encoding: [gzip]
    status: {code: 200, message: OK}
version: 1
"""


def test_vcr_bodies_of_every_shape(tmp_path: Path) -> None:
    packed = base64.b64encode(gzip.compress(b'{"zipped": 1}')).decode()
    path = tmp_path / "c.yaml"
    path.write_text(VCR_YAML.replace("GZIP", packed))
    plain, listed, zipped = vcr.read(path)
    assert plain.request.query == (("api-version", "1"),)
    assert plain.request.header("authorization") == "Bearer sk-test-0123456789abcdefghijklmn"
    assert plain.body == b'{"ok": true}' and plain.status == 200
    assert listed.request.method == "GET" and listed.request.body == b""
    assert listed.body == b'{"data": []}'
    assert zipped.request.body == b'{"model": "x"}'
    assert gzip.decompress(zipped.body) == b'{"zipped": 1}'  # stored as received
    assert ("Content-Encoding", "gzip") in zipped.headers


def test_vcr_json_serializer_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    doc = {
        "interactions": [
            {
                "request": {"body": "", "headers": {}, "method": "GET", "uri": "http://h:1/x"},
                "response": {"body": {"string": "ok"}, "headers": {}, "status": {"code": 204}},
            }
        ],
        "version": 1,
    }
    path.write_text(json.dumps(doc))
    [only] = vcr.read(path)
    assert (only.request.port, only.status) == (1, 204)
    path.write_text("interactions: [{request: {uri: 'ftp://x'}}]")
    with pytest.raises(ImportFormatError, match=r"interactions\[0\]"):
        vcr.read(path)
    path.write_text("- a list\n")
    with pytest.raises(ImportFormatError, match="no `interactions` list"):
        vcr.read(path)


def test_vcr_loading_is_safe(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("interactions: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ImportFormatError):
        vcr.read(path)


def test_har_content_headers_and_timings(tmp_path: Path) -> None:
    entry = {
        "startedDateTime": "2026-11-30T12:00:00.000Z",
        "request": {
            "method": "POST",
            "url": "https://api.anthropic.com/v1/messages",
            "headers": [
                {"name": "content-length", "value": "9"},
                {"name": ":authority", "value": "x"},
            ],
            "postData": {"mimeType": "application/json", "text": '{"a": 1}'},
        },
        "response": {
            "status": 200,
            "statusText": "OK",
            "httpVersion": "HTTP/2.0",
            "headers": [
                {"name": "content-encoding", "value": "gzip"},
                {"name": "content-type", "value": "text/event-stream"},
            ],
            "content": {
                "text": base64.b64encode(b"data: 1\n\ndata: 2\n\n").decode(),
                "encoding": "base64",
            },
        },
        "timings": {"wait": 250, "receive": 100},
    }
    path = tmp_path / "t.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": [entry]}}))
    [ex] = har.read(path)
    assert ex.request.headers == ()  # framing and pseudo-headers dropped
    assert ex.headers == (("content-type", "text/event-stream"),)  # content is decoded in HAR
    assert ex.body == b"data: 1\n\ndata: 2\n\n"
    assert (ex.ttfb, ex.duration, ex.http_version) == (0.25, 0.1, "HTTP/2.0")
    [i] = interactions([ex], "ns", "har:t.har")
    assert [c.data for c in i.chunks] == [b"data: 1\n\n", b"data: 2\n\n"]
    assert [c.offset for c in i.chunks] == [0.0, 0.1]
    assert i.provenance.provider == "anthropic"
    assert "imported from har:t.har" in i.provenance.tool_version
    assert i.provenance.recorded_at == "2026-11-30T12:00:00.000Z"


def test_interactions_number_occurrences_per_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(VCR_YAML.replace("GZIP", base64.b64encode(b"x").decode()))
    exchanges = vcr.read(path)
    made = list(interactions([exchanges[0], exchanges[1], exchanges[0]], "default", "vcr:c"))
    assert [i.key.occurrence for i in made] == [0, 0, 1]
    assert made[0].key.fingerprint == fingerprint(exchanges[0].request, FingerprintPolicy()).hex
    assert made[0].provenance.model == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("body", "ctype", "pieces"),
    [
        (b"a\n\nb\n\n", "text/event-stream", [b"a\n\n", b"b\n\n"]),
        (b"a\n\nb", "text/event-stream", [b"a\n\n", b"b"]),
        (b'{"a":1}\n{"b":2}\n', "application/x-ndjson", [b'{"a":1}\n', b'{"b":2}\n']),
        (b"a\r\n\r\nb\r\n\r\n", "text/event-stream", [b"a\r\n\r\nb\r\n\r\n"]),
        (b"{}", "application/json", [b"{}"]),
        (b"", "application/json", []),
    ],
)
def test_split_events(body: bytes, ctype: str, pieces: list[bytes]) -> None:
    assert split_events(body, ctype) == pieces
