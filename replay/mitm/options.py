"""replay's options as mitmproxy sees them: registration, lazy connections, typos.

Owns registering the `replay_*` options from OPTION_SPECS, telling whether the user chose
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
