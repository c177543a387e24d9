"""`replay push` and `replay pull` between a local store and an S3 one (moto's real S3 API
server on 127.0.0.1), and the read-only commands on an s3:// store."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.s3server import MotoServer, s3_env

from replay.cli import main
from replay.models import Chunk, Interaction, Key, Provenance, Request, ResponseHead
from replay.redact import redact
from replay.store import Store

pytestmark = pytest.mark.e2e


FP = "ab" * 32


def make(fp: str, text: str = "hello", namespace: str = "default") -> Interaction:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()
    return Interaction(
        key=Key(namespace, fp, 0),
        fingerprint_version=1,
        ignore=(),
        request=Request(
            "POST", "https", "api.openai.com", 443, "/v1/chat/completions", (), (), body
        ),
        response=ResponseHead(200, "OK", "HTTP/1.1", (("content-type", "application/json"),)),
        ttfb=0.01,
        chunks=(Chunk(0.0, b'{"answer": "' + text.encode() + b'"}'),),
        complete=True,
        provenance=Provenance("2026-12-01T00:00:00Z", "openai", "m", None, 200, "0.1.0"),
    )


def interactions(store: Path) -> dict[str, bytes]:
    return {
        p.relative_to(store).as_posix(): p.read_bytes()
        for p in sorted(store.rglob("*.zst"))
        if not p.name.startswith(".")
    }


def test_push_then_pull_round_trips_a_store_and_copies_only_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "local"
    with Store(local) as store:
        for n in range(3):
            store.put(redact(make(fp=f"{n:02x}" + FP[2:], text=f"answer {n}")))
        store.put(redact(make(fp="ee" + FP[2:], namespace="suite/nested")))
    runner = CliRunner()
    with MotoServer() as moto:
        for name, value in {**s3_env(moto.endpoint), "XDG_CACHE_HOME": str(tmp_path)}.items():
            monkeypatch.setenv(name, value)
        url = f"s3://{moto.bucket('share-' + secrets.token_hex(4))}/team"
        pushed = runner.invoke(main, ["push", "--dir", str(local), url])
        assert pushed.exit_code == 0, pushed.output
        assert "4 file(s) copied" in pushed.output and "0 already there" in pushed.output
        again = runner.invoke(main, ["push", "--dir", str(local), url])
        assert "0 file(s) copied" in again.output and "4 already there" in again.output
        listed = runner.invoke(main, ["ls", "--dir", url, "--json"])
        assert listed.exit_code == 0, listed.output
        rows = [json.loads(line) for line in listed.output.splitlines()]
        assert sorted(r["namespace"] for r in rows) == ["default"] * 3 + ["suite/nested"]
        refused = runner.invoke(main, ["rm", "--dir", url, "--dry-run", "00"])
        assert refused.exit_code == 2 and "local store" in refused.output
        objects = sorted(o["Key"] for o in moto.client().list_objects_v2(
            Bucket=url.split("/")[2])["Contents"])  # fmt: skip
        drift = runner.invoke(main, ["drift", "--dir", url, "--dry-run", "--json"])
        assert drift.exit_code == 0, drift.output
        planned = [json.loads(line) for line in drift.output.splitlines() if line.startswith("{")]
        assert len(planned) == 4 and {p["result"] for p in planned} == {"ready"}
        after = moto.client().list_objects_v2(Bucket=url.split("/")[2])["Contents"]
        assert sorted(o["Key"] for o in after) == objects  # drift read it, wrote nothing
        copy = tmp_path / "copy"
        pulled = runner.invoke(main, ["pull", "--dir", str(copy), url])
        assert pulled.exit_code == 0 and "4 file(s) copied" in pulled.output
    assert interactions(copy) == interactions(local)  # byte for byte
    with Store(copy) as store:
        assert len(list(store.entries())) == 4
