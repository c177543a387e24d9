"""What every `replay` command shares: the group that turns errors into one line, the
`--dir`/`--namespace`/`--json` options, opening a store, and reading its files one by one.

Every option can also be given as an environment variable, REPLAY_<COMMAND>_<OPTION>
(`REPLAY_LS_DIR=store`, `REPLAY_RUN_SET="a=1 b=2"`): click's automatic variables.

Exit codes (SPEC.md): 0 fine, 1 the command found a problem (`Problem`), 2 a usage error
(click's own, a missing store, a bad prefix). Nothing reaches the user as a traceback.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from replay.codec import decode
from replay.errors import CorruptEntry, ReplayError
from replay.models import Interaction, Key
from replay.store import Store


class Problem(click.ClickException):
    """The command found a problem (exit 1): a secret, a corrupt file, a strict-mode miss."""

    exit_code = 1


class ReplayGroup(click.Group):
    """A click group whose errors are one line on stderr, never a traceback."""

    def main(  # type: ignore[override]
        self, args: list[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> None:
        extra.pop("standalone_mode", None)
        extra.setdefault("auto_envvar_prefix", "REPLAY")  # REPLAY_<COMMAND>_<OPTION>
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.UsageError as e:
            _fail(e.format_message(), e.exit_code)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except click.exceptions.Abort:
            _fail("interrupted", 130)
        except ReplayError as e:
            _fail(str(e), 1)
        except OSError as e:
            _fail(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}", 1)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as e:  # the promise: one line, never a traceback
            _fail(f"internal error: {type(e).__name__}: {e}", 1)
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    click.echo(f"replay: error: {first}", err=True)
    sys.exit(code)


def dir_option[F: Callable[..., Any]](f: F) -> F:
    return click.option(
        "--dir",
        "store_dir",
        default="cassettes",
        show_default=True,
        metavar="DIR",
        help="The store root.",
    )(f)


def namespace_option[F: Callable[..., Any]](f: F) -> F:
    return click.option("--namespace", metavar="NAME", help="Only this namespace.")(f)


def json_option[F: Callable[..., Any]](f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")(f)


def open_store(store_dir: str) -> Store:
    """The store at `store_dir`; a usage error (exit 2) if there is no such directory."""
    if store_dir.startswith("s3://"):
        raise click.UsageError("s3:// stores are not supported by this release's commands")
    root = Path(store_dir)
    if not root.is_dir():
        raise click.UsageError(f"no store at {store_dir} (not a directory; see --dir)")
    return Store(root)


def check_namespace(store: Store, namespace: str | None) -> None:
    if namespace is not None and not (store.root / namespace).is_dir():
        raise click.UsageError(f"no namespace {namespace!r} in {store.root}")


@dataclass(frozen=True, slots=True)
class Entry:
    """One interaction file: its key, size, and what decoding it gave."""

    path: Path
    key: Key
    size: int
    interaction: Interaction | None
    error: CorruptEntry | None


def read_entry(path: Path, key: Key) -> Entry:
    """Decode one file; a bad file gives an Entry with `error` set, never an exception."""
    try:
        if path.is_symlink() or not path.is_file():
            raise CorruptEntry(str(path), "not a regular file")
        data = path.read_bytes()
        interaction = decode(data, str(path))
    except CorruptEntry as e:
        return Entry(path, key, _size(path), None, e)
    except OSError as e:
        return Entry(path, key, 0, None, CorruptEntry(str(path), e.strerror or str(e)))
    return Entry(path, key, len(data), interaction, None)


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def read_entries(store: Store, namespace: str | None = None) -> Iterator[Entry]:
    """Every interaction file of the store (or a namespace), decoded one at a time."""
    for path, key in store.entries(namespace):
        yield read_entry(path, key)


_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(value: str) -> timedelta:
    """`90s`, `15m`, `12h`, `7d`, `2w` (or a sum such as `1d12h`) as a timedelta."""
    text = value.strip().lower()
    parts = _AGE.findall(text)
    if not parts or _AGE.sub("", text).strip():
        raise click.BadParameter(f"{value!r} is not an age such as 90s, 15m, 12h, 7d or 2w")
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def recorded_at(interaction: Interaction) -> datetime | None:
    try:
        moment = datetime.fromisoformat(interaction.provenance.recorded_at)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
