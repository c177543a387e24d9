"""`replay drift`: do the recordings still match what the providers answer today?

Re-sends recorded requests to the real providers (drift_run.py: credentials from the
environment, nothing written anywhere) and compares each live answer's shape with the
recording's (drift.py: JSON keys and types, event names and order, the headers that matter;
never the generated text). One line per interaction (`same`, `drift` with its differences,
`unchecked` or `skipped` with the reason), a summary on stderr, exit 1 if anything drifted
or could not be checked. Meant for a scheduled CI job (docs/ci.md).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import Any

import click

from replay import drift_run
from replay.cli import render
from replay.cli.common import (
    check_namespace,
    dir_option,
    json_option,
    namespace_option,
    open_store,
    read_entries,
)
from replay.drift import Difference, compare, stream_error
from replay.models import Interaction, Key
from replay.store import Store


@click.command()
@dir_option
@namespace_option
@click.option("--sample", type=click.IntRange(min=1), metavar="K", help="Check K of them.")
@click.option("--seed", type=int, help="The sample's seed (default: random, printed).")
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="Send this header with every request (a key the environment does not name).",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="PATH",
    help="A key path (glob) that may differ, e.g. 'choices[].logprobs*' or '[ping]'.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=120.0,
    show_default=True,
    help="Seconds a request.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be sent and with which keys.")
@json_option
def drift(
    store_dir: str,
    namespace: str | None,
    sample: int | None,
    seed: int | None,
    headers: tuple[str, ...],
    ignore: tuple[str, ...],
    timeout: float,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Re-send recorded requests to the real providers and report where the shape of the
    answers has changed (exit 1 on drift). Uses real keys from the environment and costs
    real tokens; nothing is written to the store."""
    try:
        overrides = drift_run.parse_header_options(headers)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--header") from None
    store = open_store(store_dir)
    check_namespace(store, namespace)
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    unreadable: list[Key] = []
    chosen, total = drift_run.choose(_interactions(store, namespace, unreadable), sample, seed)
    if unreadable:
        click.echo(
            f"replay drift: {len(unreadable)} file(s) could not be read and are not checked "
            "(replay verify names them)",
            err=True,
        )
    if not chosen:
        raise click.UsageError(f"no complete recording to check in {store_dir}")
    tally = {"same": 0, "drift": 0, "unchecked": 0, "ready": 0, "skipped": 0}
    with drift_run.client(timeout) as http:
        for key, interaction in render.progress(chosen, len(chosen), "checking"):
            result = _check(http, interaction, overrides, ignore, dry_run)
            tally[result["result"]] += 1
            _print(key, interaction, result, as_json)
    _summary(tally, len(chosen), total, sample, seed, dry_run)
    return 1 if tally["drift"] or tally["unchecked"] else 0


def _interactions(
    store: Store, namespace: str | None, unreadable: list[Key]
) -> Iterator[tuple[Key, Interaction]]:
    for entry in read_entries(store, namespace):
        if entry.interaction is not None:
            yield entry.key, entry.interaction
        else:
            unreadable.append(entry.key)


def _check(
    http: Any,
    interaction: Interaction,
    overrides: dict[str, str],
    ignore: tuple[str, ...],
    dry_run: bool,
) -> dict[str, Any]:
    if (reason := drift_run.not_resendable(interaction)) is not None:
        return {"result": "skipped", "reason": reason}
    try:
        request = drift_run.live_request(interaction, os.environ, overrides)
    except drift_run.MissingCredential as e:
        return {"result": "unchecked", "reason": str(e)}
    if dry_run:
        keys = ", ".join(request.credentials) or "no key"
        return {"result": "ready", "reason": f"would be sent with {keys}"}
    try:
        live = drift_run.send(http, request)
    except drift_run.LiveError as e:
        return {"result": "unchecked", "reason": str(e)}
    recorded = drift_run.recorded_answer(interaction)
    if drift_run.unavailable(live) and live.status != recorded.status:
        return {"result": "unchecked", "reason": f"the provider answered {live.status}"}
    if stream_error(recorded, live):
        return {"result": "unchecked", "reason": "the provider's stream ended in an error event"}
    differences = compare(recorded, live, ignore)
    if live.status == 401 and recorded.status != 401:  # the job's key, not the API
        return {
            "result": "unchecked",
            "reason": f"the provider refused the key: {differences[0].live}",
        }
    return {"result": "drift" if differences else "same", "differences": differences}


def _label(key: Key) -> str:
    return f"{key.namespace}/{key.fingerprint[:12]}#{key.occurrence}"


def _print(key: Key, interaction: Interaction, result: dict[str, Any], as_json: bool) -> None:
    request = interaction.request
    differences: list[Difference] = result.get("differences", [])
    if as_json:
        render.json_line(
            {
                "namespace": key.namespace,
                "fingerprint": key.fingerprint,
                "occurrence": key.occurrence,
                "method": request.method,
                "url": f"{request.scheme}://{request.authority}{request.path}",
                "model": interaction.provenance.model,
                "result": result["result"],
                "reason": result.get("reason"),
                "differences": [d.as_dict() for d in differences],
            }
        )
        return
    model = f"  {interaction.provenance.model}" if interaction.provenance.model else ""
    head = f"{request.method} {request.authority}{request.path}{model}"
    click.echo(f"{result['result']:<9} {_label(key)}  {head}")
    if "reason" in result:
        click.echo(f"          {result['reason']}")
    for difference in differences:
        click.echo(f"          {difference}")


def _summary(
    tally: dict[str, int], checked: int, total: int, sample: int | None, seed: int, dry: bool
) -> None:
    scope = f"{checked} of {total} (sample, seed {seed})" if sample and sample < total else total
    if dry:
        click.echo(
            f"replay drift: dry run, {scope} request(s): {tally['ready']} ready to send, "
            f"{tally['unchecked']} lack a key",
            err=True,
        )
        return
    skipped = f", {tally['skipped']} skipped" if tally["skipped"] else ""
    click.echo(
        f"replay drift: {scope} request(s) checked: {tally['drift']} drifted, "
        f"{tally['same']} the same, {tally['unchecked']} could not be checked{skipped}",
        err=True,
    )
