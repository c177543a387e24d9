"""`replay verify`: a key planted in each place a store can hold one, and every way a file
can be wrong (truncated, renamed, an LFS pointer, a stray file, an unknown version), plus the
rules file's allow-list. The planted keys are fixed test strings, never real credentials."""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import replace
from pathlib import Path

import pytest
import zstandard
from click.testing import CliRunner, Result
from support import cassettes

from replay.cli import main
from replay.models import Chunk, Provenance, Request

OPENAI = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4"
ANTHROPIC = "sk-ant-api03-" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2"
GOOGLE = "AIza" + "SyA1234567890abcdefghijklmnopqrstuv"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
ALLOWED = "sk-test-fixture-" + "abcdefghijklmnop0123"


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def findings(store: Path, *args: str) -> tuple[int, list[dict[str, object]]]:
    result = cli("verify", "--json", "--dir", str(store), *args)
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return result.exit_code, lines


def planted(root: Path, n: int, request: Request | None = None, **changes: object) -> Path:
    """An interaction written without redaction, named by its request's fingerprint, with
    the other fields replaced by `changes`."""
    req = request or cassettes.chat(f"planted {n}")
    base = cassettes.interaction(req, [cassettes.completion("ok")])
    i = replace(base, **changes)  # type: ignore[arg-type]
    return cassettes.write_unredacted(root, i)


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    root = tmp_path / "cassettes"
    cassettes.write(root, [cassettes.interaction(cassettes.chat("fine"), [b'{"ok":true}'])])
    return root


def test_a_clean_store_passes(clean: Path) -> None:
    result = cli("verify", "--dir", str(clean))
    assert result.exit_code == 0, result.output
    assert "1 file(s)" in result.output and ": ok" in result.output


def test_a_key_in_each_place_is_named_by_file_field_and_kind(clean: Path) -> None:
    req = cassettes.chat("x")
    gz = gzip.compress(f"token {OPENAI}".encode())
    places = {
        "request-body": planted(clean, 1, request=cassettes.chat(f"my key is {OPENAI}")),
        "request-header": planted(
            clean, 2, request=replace(req, headers=(*req.headers, ("x-custom", ANTHROPIC)))
        ),
        "query": planted(clean, 3, request=replace(req, query=(("q", GOOGLE),))),
        "response-header": planted(
            clean,
            4,
            response=replace(
                cassettes.interaction(req, []).response, headers=(("x-echo", f"Bearer {AWS}"),)
            ),
        ),
        "response-text": planted(clean, 5, chunks=(Chunk(0, f'{{"k":"{AWS}"}}'.encode()),)),
        "response-binary": planted(
            clean, 6, chunks=(Chunk(0, b"\xff\xfe" + OPENAI.encode() + b"\x00"),)
        ),
        "response-gzip": planted(
            clean,
            7,
            chunks=(Chunk(0, gz[:9]), Chunk(0.1, gz[9:])),
            response=replace(
                cassettes.interaction(req, []).response,
                headers=(("content-encoding", "gzip"),),
            ),
        ),
        "base64-in-text": planted(
            clean,
            8,
            chunks=(
                Chunk(0, json.dumps({"b": base64.b64encode(ANTHROPIC.encode()).decode()}).encode()),
            ),
        ),
        "user-agent": planted(
            clean,
            9,
            provenance=Provenance(
                "2026-01-01T00:00:00Z", "openai", None, f"app {OPENAI}", 200, "0"
            ),
        ),
    }
    code, found = findings(clean)
    assert code == 1
    by_path: dict[str, list[tuple[object, object]]] = {}
    for f in found:
        by_path.setdefault(str(f["path"]), []).append((f["field"], f["kind"]))
    expected = {
        "request-body": ("request.body.text", "openai-key"),
        "request-header": ("request.headers[2][1]", "anthropic-key"),
        "query": ("request.query[0][1]", "google-key"),
        "response-header": ("response.headers[0][1]", "aws-key-id"),
        "response-text": ("response.chunks[0].text", "aws-key-id"),
        "response-binary": ("response.chunks[0].base64 (decoded)", "openai-key"),
        "response-gzip": ("response.body (gzip-decoded)", "openai-key"),
        "base64-in-text": ("response.chunks[0].text (base64-decoded)", "anthropic-key"),
        "user-agent": ("provenance.user_agent", "openai-key"),
    }
    for place, path in places.items():
        assert expected[place] in by_path.get(str(path), []), (place, by_path.get(str(path)))
    assert len(by_path) == len(places)  # the clean file has nothing
    assert {kind for f in by_path.values() for _, kind in f} <= {
        "openai-key",
        "anthropic-key",
        "google-key",
        "aws-key-id",
        "bearer",
    }  # and no file is reported for anything but its secret
    assert all(OPENAI not in json.dumps(f) for f in found)  # findings never print a key


def test_text_output_names_file_field_kind(clean: Path) -> None:
    path = planted(clean, 1, request=cassettes.chat(f"key {OPENAI}"))
    result = cli("verify", "--dir", str(clean))
    assert result.exit_code == 1
    assert f"{path}: request.body.text: openai-key: openai-key sk-proj-" in result.output
    assert OPENAI not in result.output
    assert "1 problem(s), 1 secret(s)" in result.output


def test_broken_files(clean: Path) -> None:
    good = next(clean.rglob("*.zst"))
    truncated = planted(clean, 1)
    truncated.write_bytes(truncated.read_bytes()[:-7])
    renamed = good.parent / (good.name.replace(good.name[:64], good.name[:2] + "0" * 62))
    renamed.write_bytes(good.read_bytes())
    occurrence = good.with_name(good.name.replace(".0.zst", ".3.zst"))
    occurrence.write_bytes(good.read_bytes())
    lfs = good.parent / (good.name[:2] + "1" * 62 + ".0.zst")
    lfs.write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 812\n"
    )
    stray = clean / "default" / "notes.txt"
    stray.write_text("hello")
    (clean / "default" / ".lock").write_text("")  # dotfiles and dictionaries belong
    (clean / "123.dict").write_bytes(b"\x37\xa4\x30\xec")
    edited = planted(clean, 2)
    doc = json.loads(zstandard.ZstdDecompressor().decompress(edited.read_bytes()))
    doc["request"]["body"] = {"text": '{"model":"other"}'}
    edited.write_bytes(zstandard.ZstdCompressor().compress(json.dumps(doc).encode()))
    future = planted(clean, 3)
    doc = json.loads(zstandard.ZstdDecompressor().decompress(future.read_bytes()))
    doc["version"] = 99
    future.write_bytes(zstandard.ZstdCompressor().compress(json.dumps(doc).encode()))

    code, found = findings(clean)
    assert code == 1
    kinds = {(Path(str(f["path"])), f["kind"]) for f in found}
    assert kinds == {
        (truncated, "corrupt"),
        (renamed, "name-mismatch"),
        (occurrence, "name-mismatch"),
        (lfs, "lfs-pointer"),
        (stray, "stray-file"),
        (edited, "fingerprint-mismatch"),
        (future, "format-version"),
    }
    messages = {f["kind"]: f["message"] for f in found}
    assert "git lfs pull" in str(messages["lfs-pointer"])


def test_the_rules_allow_list_excuses_an_example_key(clean: Path, tmp_path: Path) -> None:
    planted(clean, 1, request=cassettes.chat(f"fixture {ALLOWED}"))
    code, found = findings(clean)
    assert code == 1 and [f["kind"] for f in found] == ["openai-key"]
    rules = tmp_path / "rules.yaml"
    rules.write_text('settings:\n  verify_allow:\n    - "^sk-test-fixture-"\n')
    code, found = findings(clean, "--rules", str(rules))
    assert (code, found) == (0, [])


def test_the_rules_redact_patterns_are_searched(clean: Path, tmp_path: Path) -> None:
    planted(clean, 1, request=cassettes.chat("customer cust_123456 called"))
    rules = tmp_path / "rules.yaml"
    rules.write_text('settings:\n  redact:\n    - "cust_[0-9]{6}"\n')
    code, found = findings(clean, "--rules", str(rules))
    # A proxy with these rules keys the request with the match replaced: a file named
    # without them (written by hand here) is also reported as not matching its name.
    assert code == 1 and [(f["kind"], f["field"]) for f in found] == [
        ("user-pattern", "request.body.text"),
        ("fingerprint-mismatch", "request"),
    ]


def test_a_bad_rules_file_is_a_usage_error(clean: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("settings: [")
    result = cli("verify", "--dir", str(clean), "--rules", str(rules))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


def test_request_built_for_http_default_ports_is_clean(clean: Path) -> None:
    req = Request("GET", "https", "api.openai.com", 443, "/v1/models", (), (), b"")
    cassettes.write(clean, [cassettes.interaction(req, [b"{}"])])
    assert findings(clean) == (0, [])
