"""`replay ls`, `show` and `stats` over a store written as the proxy writes it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support import cassettes

from replay.cli import main

STREAM = [
    b'data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n',
    b'data: {"choices":[{"index":0,"delta":{"content":"lo"}}]}\n\ndata: [DONE]\n\n',
]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "cassettes"
    cassettes.write(
        root,
        [
            cassettes.interaction(cassettes.chat("hi"), [cassettes.completion("Hello")]),
            cassettes.interaction(
                cassettes.chat("hi"), [cassettes.completion("Again")], occurrence=1
            ),
            cassettes.interaction(
                cassettes.chat("stream", stream=True),
                STREAM,
                headers=cassettes.SSE,
                recorded_at="2026-01-01T00:00:00+00:00",
            ),
            cassettes.interaction(
                cassettes.request(
                    {"model": "claude-x", "max_tokens": 5, "messages": []},
                    path="/v1/messages",
                    host="api.anthropic.com",
                ),
                [b'{"type":"message"}'],
                namespace="anthropic_tests",
                provider="anthropic",
                model="claude-x",
                status=429,
            ),
        ],
    )
    return root


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def ls_json(*args: str) -> list[dict[str, object]]:
    result = cli("ls", "--json", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_ls_lists_every_interaction_with_its_columns(store: Path) -> None:
    result = cli("ls", "--dir", str(store))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["namespace", "fingerprint", "occ", "method"]
    assert len(lines) == 5
    assert "api.anthropic.com" in result.output and "claude-x" in result.output
    assert "\x1b[" not in result.output  # plain text when not a terminal


def test_ls_json_rows(store: Path) -> None:
    rows = ls_json("--dir", str(store))
    assert len(rows) == 4
    streamed = [r for r in rows if r["streamed"]]
    assert len(streamed) == 1 and streamed[0]["chunks"] == 2
    assert {r["namespace"] for r in rows} == {"default", "anthropic_tests"}
    assert all(len(str(r["fingerprint"])) == 64 for r in rows)


def test_ls_filters(store: Path) -> None:
    d = ("--dir", str(store))
    assert len(ls_json(*d, "--namespace", "default")) == 3
    assert [r["host"] for r in ls_json(*d, "--host", "*.anthropic.com")] == ["api.anthropic.com"]
    assert {r["model"] for r in ls_json(*d, "--model", "gpt-*")} == {"gpt-4o-mini"}
    older = ls_json(*d, "--older-than", "100d")
    assert [r["recorded_at"] for r in older] == ["2026-01-01T00:00:00+00:00"]
    assert len(ls_json(*d, "--newer-than", "100d")) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ls", "--dir", "/nonexistent/store"], "no store at /nonexistent/store"),
        (["ls", "--older-than", "soon"], "not an age"),
        (["show", "zz"], "not a fingerprint prefix"),
        (["show", "0000"], "no interaction matches"),
        (["ls", "--namespace", "nope"], "no namespace"),
    ],
)
def test_usage_errors_are_one_line_exit_2(store: Path, args: list[str], message: str) -> None:
    if "--dir" not in args:
        args = [*args, "--dir", str(store)]
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and message in result.output


def test_show_by_prefix_with_request_response_and_stream(store: Path) -> None:
    row = next(r for r in ls_json("--dir", str(store)) if r["streamed"])
    result = cli("show", str(row["fingerprint"])[:8], "--dir", str(store))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "POST https://api.openai.com/v1/chat/completions" in out
    assert '"content": "stream"' in out  # the request body, pretty-printed
    assert "## sse stream (openai-chat): the text a client sees\nHello\n" in out
    assert "+   10.0 ms  [DONE]" in out


def test_show_occurrence_and_raw(store: Path) -> None:
    fp = str(next(r for r in ls_json("--dir", str(store)) if r["occurrence"] == 1)["fingerprint"])
    result = cli("show", fp, "--occurrence", "1", "--dir", str(store))
    assert result.exit_code == 0 and '"content": "Again"' in result.output
    raw = cli("show", fp, "--raw", "--dir", str(store))
    document = json.loads(raw.output)
    assert document["format"] == "llm-replay" and document["key"]["occurrence"] == 0
    missing = cli("show", fp, "--occurrence", "7", "--dir", str(store))
    assert missing.exit_code == 2 and "has no occurrence 7 (it has 0, 1)" in missing.output


def test_show_an_ambiguous_prefix(tmp_path: Path) -> None:
    reqs = [cassettes.chat(f"q{n}") for n in range(40)]
    cassettes.write(tmp_path, [cassettes.interaction(r, [b"{}"]) for r in reqs])
    fps = [str(r["fingerprint"]) for r in ls_json("--dir", str(tmp_path))]
    first = Counter(fp[0] for fp in fps).most_common(1)[0][0]
    result = cli("show", first, "--dir", str(tmp_path))
    assert result.exit_code == 2 and "ambiguous" in result.output


def test_a_corrupt_file_is_named_and_exits_1(store: Path) -> None:
    path = next(store.rglob("*.zst"))
    path.write_bytes(path.read_bytes()[:20])
    result = cli("ls", "--dir", str(store))
    assert result.exit_code == 1
    assert f"replay: corrupt: {path}:" in result.output
    assert len(result.output.splitlines()) == 1 + 1 + 3  # the line, header, 3 good rows
    fp = path.name.split(".")[0]
    shown = cli("show", fp, "--occurrence", path.name.split(".")[1], "--dir", str(store))
    assert shown.exit_code == 1 and shown.output.startswith("replay: error: corrupt:")
    assert len(shown.output.splitlines()) == 1


def test_stats(store: Path) -> None:
    result = cli("stats", "--json", "--dir", str(store))
    assert result.exit_code == 0, result.output
    s = json.loads(result.output)
    assert s["interactions"] == 4 and s["bytes"] > 0 and s["corrupt"] == 0
    assert s["by_namespace"] == {"default": 3, "anthropic_tests": 1}
    assert s["by_provider"] == {"openai": 3, "anthropic": 1}
    assert s["by_status"] == {"200": 3, "429": 1}
    assert s["streamed_share"] == 0.25
    assert s["oldest"] == "2026-01-01T00:00:00+00:00"
    assert s["newest"] == "2026-11-30T12:00:00+00:00"
    text = cli("stats", "--dir", str(store))
    assert text.exit_code == 0 and text.output.startswith("4 interactions, ")
    assert "25% streamed" in text.output
