"""The session proxy's pieces that need no proxy: strict verdicts and messages, the clean-up
of a re-recorded namespace, attaching errors, and the environment it exports."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from replay.models import Key
from replay.report import ReportLine
from replay.sessionproxy import (
    SessionProxy,
    SessionProxyError,
    prune,
    strict_failures,
    strict_message,
)


def line(outcome: str, nearest: dict[str, object] | None = None) -> ReportLine:
    return ReportLine(
        "POST",
        "https://api.openai.com/v1/chat/completions",
        "tests/t/test_x",
        "ab" * 32,
        0,
        outcome,
        200,
        1.0,
        model="gpt-4o",
        nearest=nearest,
    )


def test_strict_fails_misses_synthetic_forwards_and_errors_only() -> None:
    lines = [line(o) for o in ("hit", "recorded", "miss", "synthetic", "forwarded", "error")]
    assert [ln.outcome for ln in strict_failures(lines)] == [
        "miss",
        "synthetic",
        "forwarded",
        "error",
    ]


def test_strict_message_names_the_nearest_recording_and_the_first_difference() -> None:
    near = {"fingerprint": "cd" * 32, "occurrence": 1, "url": "u", "field": "body.json.model"}
    text = strict_message("tests/t/test_x", [line("synthetic", near), line("miss")])
    assert text.splitlines() == [
        "replay strict: 2 request(s) of this test were not replayed from its cassette "
        "(namespace 'tests/t/test_x'):",
        "  synthetic POST https://api.openai.com/v1/chat/completions (gpt-4o) "
        f"tests/t/test_x/{'ab' * 6}#0; nearest {'cd' * 6}#1, first difference: body.json.model",
        "  miss POST https://api.openai.com/v1/chat/completions (gpt-4o) "
        f"tests/t/test_x/{'ab' * 6}#0; nothing recorded in this namespace",
        "Record them with --replay-mode=record (or auto), or see docs/matching.md for why a "
        "request misses.",
    ]


def test_prune_keeps_what_the_test_recorded_and_nothing_nested(tmp_path: Path) -> None:
    def put(key: Key) -> Path:
        path = tmp_path / key.namespace / key.fingerprint[:2]
        path.mkdir(parents=True, exist_ok=True)
        file = path / f"{key.fingerprint}.{key.occurrence}.zst"
        file.write_bytes(b"x")
        return file

    a, b = "ab" * 32, "cd" * 32
    kept = [put(Key("t", a, 0)), put(Key("t", a, 1))]
    stale = [put(Key("t", a, 2)), put(Key("t", b, 0))]
    nested = put(Key("t/inner", b, 0))
    other = put(Key("u", b, 0))
    (tmp_path / "t" / "notes.txt").write_text("not an interaction")
    assert prune(tmp_path, "t", {(a, 0), (a, 1)}) == 2
    assert all(p.exists() for p in [*kept, nested, other, tmp_path / "t" / "notes.txt"])
    assert not any(p.exists() for p in stale)
    assert prune(tmp_path, "absent", set()) == 0


@pytest.mark.parametrize("url", ["https://127.0.0.1:8080", "127.0.0.1:8080", "http://h:1/path"])
def test_attach_wants_an_http_proxy_url(tmp_path: Path, url: str) -> None:
    with pytest.raises(SessionProxyError, match="expected http://host:port"):
        SessionProxy.attach(url, tmp_path / "ca.pem")


def test_attach_says_when_the_ca_is_missing(tmp_path: Path) -> None:
    with pytest.raises(SessionProxyError, match=r"--replay-ca .*ca\.pem"):
        SessionProxy.attach("http://127.0.0.1:9", tmp_path / "ca.pem")


def test_attach_says_when_nothing_answers(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SessionProxyError, match=f"127.0.0.1:{port} did not answer GET /"):
        SessionProxy.attach(f"http://127.0.0.1:{port}", ca)


def test_export_then_restore_leaves_the_environment_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://corporate:3128")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    proxy = SessionProxy("http://127.0.0.1:1", {"HTTPS_PROXY": "x", "SSL_CERT_FILE": "b.pem"})
    proxy.export()
    assert os.environ["HTTPS_PROXY"] == "x" and os.environ["SSL_CERT_FILE"] == "b.pem"
    proxy.restore()
    assert os.environ["HTTPS_PROXY"] == "http://corporate:3128"
    assert "SSL_CERT_FILE" not in os.environ
