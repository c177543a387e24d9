"""replay's options as mitmproxy sees them: registration, lazy connections, typos.

Owns registering the `replay_*` options from OPTION_SPECS, tidying the values mitmproxy
holds for them until they are registered (`tidy_deferred`: a `--set` given twice, a number
for a text option in config.yaml — either would otherwise make mitmproxy drop the whole
script without a word, and every request would go upstream), telling whether the user chose
`connection_strategy` themselves (replay sets it to `lazy` otherwise: a replay never opens a
connection upstream), and finding misspelt `replay_*` options, which mitmproxy keeps aside
unapplied instead of refusing.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from mitmproxy import ctx

from replay.config import OPTION_SPECS


def tidy_deferred() -> list[str]:
    """Make the pending values of replay's options ones mitmproxy can apply; the problems
    that cannot be tidied, one line each (the caller refuses to run with them).

    A `--set` repeated with one value is that value; repeated with different values it is
    a problem (the last one is kept so that mitmproxy still loads the addon, which then
    refuses every request). A number or a bool given in config.yaml for a text option
    (`replay_speed: 0`) is taken as its text.
    """
    problems = []
    types = {spec.name: spec.typespec for spec in OPTION_SPECS}
    deferred = ctx.options.deferred
    for name, value in list(deferred.items()):
        if name not in types:
            continue
        strings = getattr(value, "val", None)  # `--set`: a list of unparsed strings
        if isinstance(strings, list) and len(strings) > 1:
            if len(set(strings)) > 1:
                problems.append(f"{name} is given {len(strings)} times: {', '.join(strings)}")
            value.val = strings[-1:]
        elif isinstance(value, bool | int | float) and types[name] in (str, str | None):
            deferred[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return problems


def register(loader: Any) -> None:
    """Declare every option of OPTION_SPECS to mitmproxy."""
    for spec in OPTION_SPECS:
        choices = list(spec.choices) if spec.choices else None
        loader.add_option(spec.name, spec.typespec, spec.default, spec.help, choices=choices)


def user_set_connection_strategy() -> bool:
    """Whether the user chose `connection_strategy`, even its default (`eager`).

    mitmproxy keeps no record of which options were set explicitly, and a script loads
    after the command line was applied, so the command line and config.yaml are read.
    """
    if ctx.options.has_changed("connection_strategy"):
        return True
    if any("connection_strategy" in arg for arg in sys.argv[1:]):
        return True
    confdir = Path(os.path.expanduser(ctx.options.confdir))
    for name in ("config.yaml", "config.yml"):
        with contextlib.suppress(OSError):
            if "connection_strategy" in (confdir / name).read_text(errors="replace"):
                return True
    return False


def unknown() -> list[str]:
    """`replay_*` options that mitmproxy deferred because no addon declared them."""
    return sorted(n for n in ctx.options.deferred if n.startswith("replay_"))
