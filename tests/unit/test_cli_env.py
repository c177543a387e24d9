"""`replay env` and the client variables `replay run` hands its command."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from replay import clientenv
from replay.cli import main


def env_lines(*args: str) -> dict[str, str]:
    result = CliRunner().invoke(main, ["env", *args])
    assert result.exit_code == 0, result.output
    out = {}
    for line in result.output.splitlines():
        assert line.startswith("export ")
        name, _, value = line.removeprefix("export ").partition("=")
        out[name] = shlex.split(value)[0]
    return out


def test_forward_mode_sets_both_cases_no_proxy_and_one_bundle(tmp_path: Path) -> None:
    got = env_lines("--port", "9123", "--confdir", str(tmp_path / "conf"))
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        assert got[name] == "http://127.0.0.1:9123"
    assert got["NO_PROXY"] == got["no_proxy"] == "localhost,127.0.0.1,::1"
    bundle = Path(got["SSL_CERT_FILE"])
    assert bundle == tmp_path / "conf" / clientenv.BUNDLE_NAME
    for name in clientenv.CA_VARS:
        assert got[name] == str(bundle)
    # The CA was created in the confdir, and the bundle holds it plus the system roots.
    ca = (tmp_path / "conf" / "mitmproxy-ca-cert.pem").read_bytes()
    text = bundle.read_bytes()
    assert ca.strip() in text
    assert text.count(b"BEGIN CERTIFICATE") > 10


def test_the_ca_is_kept_across_calls(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    env_lines("--confdir", str(conf))
    ca = (conf / "mitmproxy-ca-cert.pem").read_bytes()
    env_lines("--confdir", str(conf))
    assert (conf / "mitmproxy-ca-cert.pem").read_bytes() == ca


@pytest.mark.parametrize(
    ("upstream", "name", "value"),
    [
        ("https://api.openai.com", "OPENAI_BASE_URL", "http://127.0.0.1:8080/v1"),
        ("https://api.anthropic.com", "ANTHROPIC_BASE_URL", "http://127.0.0.1:8080"),
        ("http://localhost:11434", "OLLAMA_HOST", "http://127.0.0.1:8080"),
        ("https://my.openai.azure.com", "AZURE_OPENAI_ENDPOINT", "http://127.0.0.1:8080"),
        (
            "https://generativelanguage.googleapis.com",
            "GOOGLE_GEMINI_BASE_URL",
            "http://127.0.0.1:8080",
        ),
        ("https://vllm.internal:8000", "OPENAI_BASE_URL", "http://127.0.0.1:8080/v1"),
    ],
)
def test_reverse_mode_exports_the_base_url(
    tmp_path: Path, upstream: str, name: str, value: str
) -> None:
    got = env_lines("--confdir", str(tmp_path), "--upstream", upstream)
    assert got[name] == value
    assert got["REPLAY_BASE_URL"] == "http://127.0.0.1:8080"
    assert "HTTPS_PROXY" not in got and "https_proxy" not in got
    assert got["NO_PROXY"] == "localhost,127.0.0.1,::1"


def test_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["env", "--json", "--confdir", str(tmp_path)])
    assert result.exit_code == 0
    assert json.loads(result.output)["HTTPS_PROXY"] == "http://127.0.0.1:8080"


@pytest.mark.parametrize("bad", ["ftp://x", "https://api.openai.com/v1", "not a url"])
def test_a_bad_upstream_is_a_usage_error(tmp_path: Path, bad: str) -> None:
    result = CliRunner().invoke(main, ["env", "--confdir", str(tmp_path), "--upstream", bad])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "--upstream" in result.output


def test_run_usage_errors_are_one_line(tmp_path: Path) -> None:
    for args in (
        ["run"],
        ["run", "--set", "nonsense", "--", "true"],
        ["run", "--upstream", "https://x/v1", "--", "true"],
        ["run", "--set", "replay_mood=x", "--", "true"],
        ["run", "--speed", "fast", "--", "true"],
        ["run", "--mode", "bogus", "--", "true"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert result.output.startswith("replay: error: ")
