"""`replay prune`, `rm` and `init`, and `show --textconv` as git runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support import cassettes

from replay.cli import main
from replay.models import Interaction


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, dict[str, Interaction]]:
    root = tmp_path / "cassettes"
    a = cassettes.chat("a")
    made = {
        "a0": cassettes.interaction(a, [b"{}"]),
        "a1": cassettes.interaction(a, [b"{}"], occurrence=1),
        "a2": cassettes.interaction(a, [b"{}"], occurrence=2),
        "b": cassettes.interaction(
            cassettes.chat("b"), [b"{}"], recorded_at="2025-01-01T00:00:00+00:00"
        ),
        "other": cassettes.interaction(
            cassettes.request({"model": "m"}, "/v1/messages", "api.anthropic.com"),
            [b"{}"],
            namespace="other",
        ),
    }
    cassettes.write(root, made.values())
    (root / ".lock").write_text("")
    return root, made


def report(path: Path, *lines: tuple[Interaction, int, str]) -> Path:
    with path.open("w") as f:
        for i, occurrence, outcome in lines:
            line = {
                "namespace": i.key.namespace,
                "fingerprint": i.key.fingerprint,
                "occurrence": occurrence,
                "outcome": outcome,
            }
            f.write(json.dumps(line) + "\n")
        f.write('{"partial')  # a report cut by a crash
    return path


def name(i: Interaction) -> str:
    fp = i.key.fingerprint
    return f"{i.key.namespace}/{fp[:2]}/{fp}.{i.key.occurrence}.zst"


def test_prune_keeps_what_the_reports_used(
    store: tuple[Path, dict[str, Interaction]], tmp_path: Path
) -> None:
    root, made = store
    r1 = report(tmp_path / "r1.jsonl", (made["a0"], 0, "hit"), (made["b"], 0, "miss"))
    r2 = report(tmp_path / "r2.jsonl", (made["other"], 5, "hit"))  # past the last: occ 0
    before = files(root)
    dry = cli("prune", "--dir", str(root), "--report", str(r1), "--report", str(r2), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert files(root) == before
    doomed = {name(made[k]) for k in ("a1", "a2", "b")}
    assert {
        line.split(str(root) + "/")[1]
        for line in dry.output.splitlines()
        if line.startswith("would remove ")
    } == doomed
    done = cli("prune", "--dir", str(root), "--report", str(r1), "--report", str(r2))
    assert done.exit_code == 0 and "removed 3 file(s)" in done.output
    assert files(root) == before - doomed
    assert ".lock" in files(root)


def test_prune_past_the_last_occurrence_keeps_the_last(
    store: tuple[Path, dict[str, Interaction]], tmp_path: Path
) -> None:
    root, made = store
    r = report(tmp_path / "r.jsonl", (made["a0"], 7, "hit"))
    cli("prune", "--dir", str(root), "--report", str(r))
    assert files(root) == {name(made["a2"]), ".lock"}
    assert not (root / "other").exists()  # emptied namespaces go too


def test_prune_refuses_an_empty_report(
    store: tuple[Path, dict[str, Interaction]], tmp_path: Path
) -> None:
    root, _ = store
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = cli("prune", "--dir", str(root), "--report", str(empty))
    assert result.exit_code == 2 and "nothing says what is used" in result.output


@pytest.mark.parametrize(
    ("args", "gone"),
    [
        (["--namespace", "other"], {"other"}),
        (["--host", "*.anthropic.com"], {"other"}),
        (["--older-than", "30d"], {"b"}),
        (["--namespace", "default", "--older-than", "30d"], {"b"}),
        (["PREFIX:a0"], {"a0", "a1", "a2"}),
    ],
)
def test_rm_filters(
    store: tuple[Path, dict[str, Interaction]], args: list[str], gone: set[str]
) -> None:
    root, made = store
    args = [
        made[a.split(":")[1]].key.fingerprint[:10] if a.startswith("PREFIX:") else a for a in args
    ]
    before = files(root)
    dry = cli("rm", "--dir", str(root), "--dry-run", *args)
    assert dry.exit_code == 0, dry.output and files(root) == before
    result = cli("rm", "--dir", str(root), *args)
    assert result.exit_code == 0, result.output
    assert before - files(root) == {name(made[k]) for k in gone}


def test_rm_needs_a_filter(store: tuple[Path, dict[str, Interaction]]) -> None:
    root, _ = store
    for args in ([], ["xyz"], ["--namespace", "nope"]):
        result = cli("rm", "--dir", str(root), *args)
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_init_and_textconv_make_a_rerecording_reviewable(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    first = cli("init", "--repo", str(repo))
    again = cli("init", "--repo", str(repo))
    assert first.exit_code == again.exit_code == 0
    assert (repo / ".gitattributes").read_text() == "*.zst diff=replay\n"  # written once
    config_line = first.output.strip().splitlines()[-1]
    assert config_line == 'git config diff.replay.textconv "replay show --textconv"'
    # What the printed line does, with this interpreter's replay:
    git(repo, "config", "diff.replay.textconv", f"{sys.executable} -m replay show --textconv")

    req = cassettes.chat("Summarise the meeting")
    stream = [
        b'data: {"choices":[{"index":0,"delta":{"content":"The team "}}]}\n\n',
        b'data: {"choices":[{"index":0,"delta":{"content":"agreed."}}]}\n\n',
    ]
    cassettes.write(repo / "cassettes", [cassettes.interaction(req, stream, headers=cassettes.SSE)])
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "record")
    stream[1] = b'data: {"choices":[{"index":0,"delta":{"content":"disagreed."}}]}\n\n'
    rerecorded = cassettes.interaction(
        req,
        [(0.3, stream[0]), (0.9, stream[1])],
        headers=cassettes.SSE,
        recorded_at="2026-12-01T09:00:00+00:00",
    )
    cassettes.write(repo / "cassettes", [rerecorded])
    diff = git(repo, "diff")
    changed = [ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    assert "-The team agreed." in changed and "+The team disagreed." in changed
    assert any(ln.startswith("-") and "2026-11-30" in ln for ln in changed)
    assert "Binary files" not in diff
    assert not any(" ms " in ln for ln in changed)  # no timings: offsets alone change nothing
    assert len(changed) == 6  # recorded-at, the text, and the one event that changed


def test_textconv_of_a_broken_file_and_an_lfs_pointer(tmp_path: Path) -> None:
    broken = tmp_path / "x.zst"
    broken.write_bytes(b"garbage")
    result = cli("show", "--textconv", str(broken))
    assert result.exit_code == 0 and result.output.startswith("# not a readable cassette file")
    pointer = tmp_path / "p.zst"
    pointer.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")
    result = cli("show", "--textconv", str(pointer))
    assert "git lfs pull" in result.output
