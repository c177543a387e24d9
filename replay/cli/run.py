"""`replay run`, `replay env` and `replay addon`: a proxy around a command, and the
variables that point a client at one.

`run` starts mitmdump with the addon on a free port (replay.launch), gives the command the
variables of `env` (replay.clientenv), forwards SIGINT/SIGTERM/SIGHUP to it, stops the
proxy cleanly once it has ended (a recording drained, stale occurrences removed), prints a
summary from the run's report on stderr (replay.summary) and exits with the command's code
(`--strict`: 1 when it passed but a request was a miss, synthetic, forwarded or an error).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType

import click

from replay import clientenv
from replay.cli.common import Problem
from replay.cli.render import json_line
from replay.config import OPTION_NAMES, MissPolicy, Mode, parse_speed
from replay.errors import ConfigError
from replay.launch import ADDON_SCRIPT, ProxyProcess, ProxyStartError
from replay.report import describe
from replay.summary import read_lines, summarize

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEFAULT_CONFDIR = "~/.mitmproxy"

confdir_option = click.option(
    "--confdir",
    default=DEFAULT_CONFDIR,
    show_default=True,
    metavar="DIR",
    help="mitmproxy's confdir: its CA is created there if missing, the combined bundle kept.",
)


def _bundle(confdir: str) -> Path:
    """The combined CA bundle in `confdir` (the CA created first if missing)."""
    from replay.mitm.ca import ensure_ca  # mitmproxy is imported only when needed

    path = Path(confdir).expanduser()
    return clientenv.write_bundle(path, ensure_ca(path))


@click.command()
def addon() -> None:
    """Print the path of the addon script to give `mitmdump -s`."""
    click.echo(str(ADDON_SCRIPT))


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@confdir_option
@click.option("--upstream", metavar="URL", help="A reverse-mode proxy toward URL.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of exports.")
def env(port: int, confdir: str, upstream: str | None, as_json: bool) -> None:
    """Print the variables that send a client through a proxy on 127.0.0.1:PORT.

    Use it as `eval "$(replay env)"`.
    """
    variables = client_variables(f"http://127.0.0.1:{port}", _bundle(confdir), upstream)
    if as_json:
        json_line(variables)
    else:
        click.echo("\n".join(clientenv.export_lines(variables)))


def client_variables(proxy_url: str, bundle: Path, upstream: str | None) -> dict[str, str]:
    """Forward mode: proxy and CA variables. Reverse mode: CA, NO_PROXY and base URLs."""
    if upstream is None:
        return clientenv.proxy_env(proxy_url, bundle)
    try:
        upstream = clientenv.check_upstream(upstream)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    return {
        "NO_PROXY": clientenv.NO_PROXY,
        "no_proxy": clientenv.NO_PROXY,
        **clientenv.ca_env(bundle),
        **clientenv.base_url_env(upstream, proxy_url),
    }


def _set_pairs(values: tuple[str, ...]) -> list[str]:
    out = []
    for value in values:
        name, sep, _ = value.partition("=")
        if not sep or not name.strip():
            raise click.UsageError(f"--set {value!r}: expected NAME=VALUE")
        if name.startswith("replay_") and name not in OPTION_NAMES:
            raise click.UsageError(f"--set {name}: no such option")
        out += ["--set", value]
    return out


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("--mode", type=click.Choice([m.value for m in Mode]), default="replay")
@click.option("--miss", type=click.Choice([p.value for p in MissPolicy]))
@click.option("--speed", metavar="S", help="1 = recorded timing, 0 = no delays.")
@click.option("--dir", "store_dir", default="cassettes", show_default=True, metavar="DIR")
@click.option("--namespace", metavar="NAME", help="The namespace (replay_cassette).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="0: a free port.")
@click.option("--upstream", metavar="URL", help="Reverse mode toward URL.")
@click.option("--rules", type=click.Path(exists=True, dir_okay=False), help="Rules file.")
@click.option("--strict", is_flag=True, help="Exit 1 on any miss, synthetic, forward, error.")
@click.option("--report", type=click.Path(dir_okay=False), help="Keep the report here.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    envvar="REPLAY_RUN_SET",
    metavar="NAME=VALUE",
    help="Any proxy option.",
)
@click.option(
    "--script",
    "scripts",
    multiple=True,
    envvar="REPLAY_RUN_SCRIPT",
    type=click.Path(exists=True, dir_okay=False),
    help="Another mitmproxy script to load after the addon.",
)
@confdir_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    mode: str,
    miss: str | None,
    speed: str | None,
    store_dir: str,
    namespace: str | None,
    port: int,
    upstream: str | None,
    rules: str | None,
    strict: bool,
    report: str | None,
    sets: tuple[str, ...],
    scripts: tuple[str, ...],
    confdir: str,
    command: tuple[str, ...],
) -> int:
    """Run COMMAND with a replay proxy around it: `replay run -- pytest -q`."""
    if speed is not None:
        try:
            parse_speed(speed)
        except ConfigError as e:
            raise click.BadParameter(str(e), param_hint="--speed") from None
    extra = [arg for script in scripts for arg in ("-s", str(Path(script).resolve()))]
    extra += _set_pairs(sets)
    if upstream is not None:
        extra += ["--mode", f"reverse:{_checked_upstream(upstream)}"]
    bundle = _bundle(confdir)
    with tempfile.TemporaryDirectory(prefix="replay-run-") as tmp:
        report_path = Path(report).resolve() if report else Path(tmp) / "report.jsonl"
        offset = report_path.stat().st_size if report_path.is_file() else 0
        options = {
            "replay_mode": mode,
            "replay_dir": str(Path(store_dir).resolve()),
            "replay_report": str(report_path),
            "replay_miss": miss,
            "replay_speed": speed,
            "replay_cassette": namespace,
            "replay_rules": str(Path(rules).resolve()) if rules else None,
        }
        args = ["-s", str(ADDON_SCRIPT), "--set", f"confdir={Path(confdir).expanduser()}"]
        args += [f"--set={k}={v}" for k, v in options.items() if v is not None]
        args += extra
        try:
            proxy = ProxyProcess.start(args, Path(tmp) / "mitmdump.log", port=port)
        except ProxyStartError as e:
            raise Problem(str(e)) from None
        try:
            variables = client_variables(proxy.url, bundle, upstream)
            code = _run_child(command, {**os.environ, **variables})
        finally:
            stopped = proxy.stop()
        if stopped not in (0, -signal.SIGTERM):
            click.echo(f"replay: the proxy exited with {stopped}: {proxy.last_error()}", err=True)
        return _summarize(read_lines(report_path, offset), code, strict)


def _checked_upstream(upstream: str) -> str:
    try:
        return clientenv.check_upstream(upstream)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None


def _run_child(command: tuple[str, ...], env: dict[str, str]) -> int:
    """Run `command` to its end with signals forwarded; its exit code (128+N if killed by N).

    With a terminal, the command shares our process group, so a Ctrl-C reaches it directly
    and is not sent twice; otherwise it gets its own group and every signal is forwarded.
    """
    own_group = not sys.stdin.isatty()
    try:
        child = subprocess.Popen(list(command), env=env, process_group=0 if own_group else None)
    except OSError as e:
        raise click.UsageError(f"cannot run {command[0]!r}: {e.strerror or e}") from None

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and not own_group:
            return  # the terminal sent it to the whole group, the command included
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum) if own_group else child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


SUMMARY_LINES = 20
"""Problems listed in the summary (one screen); the report file has them all."""


def _summarize(lines: list[dict[str, object]], code: int, strict: bool) -> int:
    summary = summarize(lines)
    click.echo(f"replay: {summary.counts_line()}", err=True)
    for line in summary.problems[:SUMMARY_LINES]:
        click.echo(f"  {describe(line)}", err=True)
    if len(summary.problems) > SUMMARY_LINES:
        more = len(summary.problems) - SUMMARY_LINES
        click.echo(f"  ... and {more} more (all of them: --report FILE)", err=True)
    if strict and summary.problems and code == 0:
        click.echo(
            f"replay: --strict: {len(summary.problems)} request(s) not served from the store",
            err=True,
        )
        return 1
    return code
