"""The shipped `.pre-commit-hooks.yaml`, run by pre-commit itself on a repository whose
cassettes hold a key: the commit gate fails naming the file, and passes once it is gone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from support import cassettes

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-proj-" + "Q1w2E3r4T5y6U7i8O9p0A1s2D3f4"


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_pre_commit_runs_replay_verify(tmp_path: Path) -> None:
    # The hook repository: this repository's .pre-commit-hooks.yaml, committed.
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    shutil.copy(REPO_ROOT / ".pre-commit-hooks.yaml", hooks)
    git(hooks, "init", "-q")
    git(hooks, "add", ".")
    git(hooks, "commit", "-qm", "hooks")
    rev = git(hooks, "rev-parse", "HEAD")

    project = tmp_path / "project"
    project.mkdir()
    git(project, "init", "-q")
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hooks}\n    rev: {rev}\n    hooks:\n      - id: replay-verify-system\n"
    )
    bad = cassettes.interaction(cassettes.chat(f"my key {KEY}"), [b"{}"])
    path = cassettes.write_unredacted(project / "cassettes", bad)
    git(project, "add", ".")

    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    cmd = [sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"]
    failed = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "replay verify" in failed.stdout and "Failed" in failed.stdout
    assert f"{path.relative_to(project)}: request.body.text: openai-key" in failed.stdout
    assert KEY not in failed.stdout

    path.unlink()
    clean = cassettes.interaction(cassettes.chat("no key here"), [b"{}"])
    cassettes.write(project / "cassettes", [clean])
    git(project, "add", "-A")
    passed = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout
