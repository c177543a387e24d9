"""The `replay` command line (click): one module per group of commands.

run.py (run, env, addon), inspect.py (ls, show, stats), verify.py (verify, over
audit.py), drift.py (drift), maintain.py (prune, rm, init), convert.py
(import, export), compact.py (compact), share.py (push, pull); common.py holds
the group, the shared options and the error handling (one line, exit 0/1/2), render.py the
output (tables, progress bars, plain text when not a terminal or NO_COLOR).
"""

from __future__ import annotations

import click

from replay import __version__
from replay.cli.common import ReplayGroup
from replay.cli.compact import compact
from replay.cli.convert import export, import_
from replay.cli.drift import drift
from replay.cli.inspect import ls, show, stats
from replay.cli.maintain import init, prune, rm
from replay.cli.run import addon, env, run
from replay.cli.share import pull, push
from replay.cli.verify import verify


@click.group(cls=ReplayGroup)
@click.version_option(__version__, prog_name="replay")
def main() -> None:
    """Record-and-replay cassette proxy for LLM provider APIs."""


for _command in (
    addon,
    env,
    run,
    ls,
    show,
    stats,
    verify,
    drift,
    prune,
    rm,
    init,
    import_,
    export,
    compact,
    push,
    pull,
):
    main.add_command(_command)
