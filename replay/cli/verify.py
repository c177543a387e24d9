"""`replay verify`: the secrets gate and integrity check run before a store is committed.

Runs `replay.cli.audit` over every file of the store (or a namespace), prints one line per
finding (file, field, kind, what), and exits 1 if there is any. Ships as a pre-commit hook
(`.pre-commit-hooks.yaml` at the repository root).
"""

from __future__ import annotations

import click

from replay.cli import render
from replay.cli.audit import Auditor, Finding, store_files
from replay.cli.common import check_namespace, dir_option, json_option, namespace_option, open_store
from replay.errors import ReplayError


@click.command()
@dir_option
@namespace_option
@click.option(
    "--rules",
    type=click.Path(exists=True, dir_okay=False),
    help="Rules file: its verify_allow excuses, its redact patterns are searched too.",
)
@json_option
def verify(store_dir: str, namespace: str | None, rules: str | None, as_json: bool) -> int:
    """Check every file of a store: it decodes, its name matches, no credential is in it."""
    store = open_store(store_dir)
    check_namespace(store, namespace)
    from replay.rules import load_rules  # the YAML parser only when a rules file is given

    try:
        settings = load_rules(rules).settings if rules else None
    except ReplayError as e:
        raise click.BadParameter(str(e), param_hint="--rules") from None
    auditor = Auditor(settings)
    start = store.root / namespace if namespace else None
    files = problems = secrets = 0
    for path, is_interaction in render.progress(store_files(store.root, start), None, "verifying"):
        files += 1
        for finding in auditor.check(path, is_interaction):
            problems += 1
            secrets += finding.secret
            _print(finding, as_json)
    if not as_json:
        verdict = "ok" if not problems else f"{problems} problem(s), {secrets} secret(s)"
        click.echo(f"replay verify: {files} file(s) in {store.root}: {verdict}", err=True)
    return 1 if problems else 0


def _print(finding: Finding, as_json: bool) -> None:
    if as_json:
        render.json_line(
            {
                "path": str(finding.path),
                "field": finding.field,
                "kind": finding.kind,
                "message": finding.message,
                "secret": finding.secret,
            }
        )
        return
    where = f" {finding.field}:" if finding.field else ""
    click.echo(f"{finding.path}:{where} {finding.kind}: {finding.message}")
