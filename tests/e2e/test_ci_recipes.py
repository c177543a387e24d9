"""docs/ci.md: the shell steps of the GitHub Actions and GitLab CI recipes, run as written.

A small project (one test calling the OpenAI SDK) gets the recipe's jobs in order: record
(its "API" is the fake upstream, reached through PYTEST_ADDOPTS pinning options, as the real
one would be through the network), the replay jobs (the fake must see nothing more), verify.
Each job gets a fresh HOME (mitmproxy creates its CA there), the project's venv on PATH,
pip without an index (everything is installed already), port 8080 replaced by a free one,
and `${{ secrets.X }}` / CI variables from a dict. GitHub's `uses:` steps are not shell and
are left out; `$GITHUB_ENV` is carried from step to step as the runner does.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from support.certs import TestCerts
from support.fake_upstream import FakeUpstream, ShapeChange
from support.proxy import PIN_HOSTS_SCRIPT, ProxyFactory, client_env, subprocess_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]  # several pytest runs each
ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ci.md"
APP_TEST = """
import openai


def test_answer():
    client = openai.OpenAI(max_retries=0)
    r = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "What is CI?"}]
    )
    assert r.choices[0].message.content == "echo: What is CI? #0"
"""
SECRETS = {"OPENAI_API_KEY": "sk-test-ci-recipe-0000000000000000000"}


def recipe(name: str) -> Any:
    text = DOC.read_text().split(f"<!-- recipe: {name} -->", 1)[1]
    match = re.search(r"^```yaml\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    assert match, f"no yaml block for {name}"
    return YAML(typ="safe").load(match.group(1))


class Project:
    def __init__(self, path: Path, upstream: FakeUpstream, certs: TestCerts) -> None:
        self.path = path
        path.mkdir()
        (path / "test_app.py").write_text(APP_TEST)
        git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid"]
        for args in (["init", "-q"], ["add", "test_app.py"], ["commit", "-qm", "app"]):
            subprocess.run([*git, *args], cwd=path, check=True, capture_output=True, timeout=60)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = str(s.getsockname()[1])
        self.addopts = " ".join(
            [
                "-p no:cacheprovider",
                f"--replay-script={PIN_HOSTS_SCRIPT}",
                f"--replay-set=pin_upstream={upstream.pin}",
                f"--replay-set=ssl_verify_upstream_trusted_ca={certs.ca_cert}",
            ]
        )
        self.jobs = 0

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        self.jobs += 1
        home = self.path.parent / f"home-{self.jobs}"
        home.mkdir()
        bin_dir = str(Path(sys.executable).parent)
        return subprocess_env(
            {
                "HOME": str(home),
                "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
                "PIP_NO_INDEX": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PYTEST_ADDOPTS": self.addopts,
                **extra,
            }
        )

    def sh(self, script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        script = script.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
        script = script.replace("-p 8080", f"-p {self.port}")
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=self.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )


def secret(value: str) -> str:
    return re.sub(r"\$\{\{\s*secrets\.(\w+)\s*\}\}", lambda m: SECRETS[m[1]], value)


def run_github_job(
    project: Project,
    workflow: dict[str, Any],
    job: dict[str, Any],
    runner: dict[str, str] | None = None,
) -> list[tuple[str, int, str]]:
    """Each `run:` step as the runner does it; (step, exit code, output) of those run.
    `runner`: the runner's own environment (its way to the network)."""
    github_env = project.path.parent / f"github_env_{project.jobs}"
    github_env.write_text("")
    top = {k: secret(str(v)) for k, v in workflow.get("env", {}).items()}
    env = project.env({**(runner or {}), **top, "GITHUB_ENV": str(github_env)})
    ran, failed = [], False
    for step in job["steps"]:
        if "run" not in step or (failed and step.get("if") != "always()"):
            continue
        step_env = {**env, **{k: secret(str(v)) for k, v in step.get("env", {}).items()}}
        for line in github_env.read_text().splitlines():
            name, _, value = line.partition("=")
            step_env[name] = value
        done = project.sh(step["run"], step_env)
        ran.append((step.get("name", step["run"]), done.returncode, done.stdout + done.stderr))
        failed = failed or done.returncode != 0
    return ran


def run_gitlab_job(
    project: Project, pipeline: dict[str, Any], job: str, variables: dict[str, str]
) -> list[tuple[str, int, str]]:
    """before_script and script in one shell, then after_script in another, as a runner;
    the CI/CD `variables` given win over the file's."""
    default, job_spec = pipeline["default"], pipeline[job]
    env = project.env({**pipeline.get("variables", {}), **variables})
    lines = [*default.get("before_script", []), *job_spec["script"]]
    done = project.sh("\n".join(lines), env)
    ran = [("script", done.returncode, done.stdout + done.stderr)]
    if "after_script" in job_spec:
        after = project.sh("\n".join(job_spec["after_script"]), env)
        ran.append(("after_script", after.returncode, after.stdout + after.stderr))
    return ran


def copy_namespace_for_the_mitmdump_jobs(project: Project) -> None:
    shutil.copytree(
        project.path / "cassettes" / "test_app" / "test_answer", project.path / "cassettes" / "ci"
    )


def check_replay(project: Project, ran: list[tuple[str, int, str]]) -> None:
    for name, code, output in ran:
        assert code == 0, f"{name}:\n{output}"
    text = "\n".join(output for _, _, output in ran)
    assert "1 passed" in text


def check_mitmdump_summary(ran: list[tuple[str, int, str]]) -> None:
    output = ran[-1][2]
    assert "replay: 1 request(s): 1 hit" in output, output  # the clean stop's summary


def check_verify(ran: list[tuple[str, int, str]]) -> None:
    [(_, code, output)] = ran[-1:]
    assert code == 0, output  # every file decodes, is keyed right, holds no credential


@pytest.fixture
def project(tmp_path: Path, fake_upstream: FakeUpstream, certs: TestCerts) -> Project:
    return Project(tmp_path / "app", fake_upstream, certs)


def test_github_actions_recipe(project: Project, fake_upstream: FakeUpstream) -> None:
    workflow = recipe("github")
    jobs = workflow["jobs"]
    assert set(jobs) == {"record", "replay-pytest", "replay-mitmdump", "verify"}
    recorded = run_github_job(project, workflow, jobs["record"])
    assert all(code == 0 for _, code, _ in recorded), recorded
    assert "?? cassettes/" in recorded[-1][2]  # git status: the new cassettes
    asked = len(fake_upstream.requests)
    assert asked == 1
    copy_namespace_for_the_mitmdump_jobs(project)
    check_replay(project, run_github_job(project, workflow, jobs["replay-pytest"]))
    mitmdump = run_github_job(project, workflow, jobs["replay-mitmdump"])
    check_replay(project, mitmdump)
    check_mitmdump_summary(mitmdump)
    check_verify(run_github_job(project, workflow, jobs["verify"]))
    assert len(fake_upstream.requests) == asked


def test_gitlab_ci_recipe(project: Project, fake_upstream: FakeUpstream) -> None:
    pipeline = recipe("gitlab")
    assert pipeline["default"]["image"].startswith("python:3.")
    record_vars = {"CI_PIPELINE_SOURCE": "web", "RECORD": "true", **SECRETS}
    recorded = run_gitlab_job(project, pipeline, "record", record_vars)
    assert recorded[0][1] == 0, recorded
    asked = len(fake_upstream.requests)
    assert asked == 1
    copy_namespace_for_the_mitmdump_jobs(project)
    check_replay(project, run_gitlab_job(project, pipeline, "replay-pytest", {}))
    mitmdump = run_gitlab_job(project, pipeline, "replay-mitmdump", {})
    check_replay(project, mitmdump)
    check_mitmdump_summary(mitmdump)
    check_verify(run_gitlab_job(project, pipeline, "verify", {}))
    assert len(fake_upstream.requests) == asked


def test_drift_recipes(
    project: Project, fake_upstream: FakeUpstream, proxy_factory: ProxyFactory, bundle: Path
) -> None:
    """The scheduled drift jobs, after the record job: the runner reaches "the providers"
    through a proxy that pins their hosts to the fake (HTTPS_PROXY, SSL_CERT_FILE)."""
    workflow = recipe("github")
    recorded = run_github_job(project, workflow, workflow["jobs"]["record"])
    assert all(code == 0 for _, code, _ in recorded), recorded
    network = client_env(proxy_factory(upstream_port=fake_upstream.port), bundle)
    scheduled = recipe("github-drift")
    assert "schedule" in scheduled["on"]
    [job] = scheduled["jobs"].values()
    pipeline = recipe("gitlab")
    assert pipeline["drift"]["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "schedule"'}]
    schedule = {**network, "CI_PIPELINE_SOURCE": "schedule", **SECRETS}
    asked = len(fake_upstream.requests)

    def runs() -> list[tuple[str, int, str]]:
        return [
            run_github_job(project, scheduled, job, network)[-1],
            run_gitlab_job(project, pipeline, "drift", schedule)[-1],
        ]

    for name, code, output in runs():
        assert code == 0, f"{name}:\n{output}"
        assert "1 request(s) checked: 0 drifted, 1 the same" in output
    assert len(fake_upstream.requests) == asked + 2
    fake_upstream.shape = ShapeChange(rename={"finish_reason": "stop_reason"})
    for name, code, output in runs():
        assert code == 1, f"{name}:\n{output}"
        assert "- choices[].finish_reason: no longer sent (was string)" in output
        assert "1 drifted" in output
