"""The single source of truth for replay's options, and their validation.

Owns OPTION_SPECS (name, mitmproxy typespec, default, help, choices), the Mode, MissPolicy
and SyntheticTools enums, and `Settings.from_options`, which turns raw option values into
checked settings.
The addon registers its options from OPTION_SPECS, the README's table is checked against it.
Imports nothing of replay but errors; knows nothing of mitmproxy.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from replay.errors import ConfigError


class Mode(StrEnum):
    """What the proxy does with a request it handles."""

    REPLAY = "replay"
    """Serve from the store; on a miss, follow `replay_miss`. Never contacts upstream
    unless `replay_miss=forward`."""
    RECORD = "record"
    """Forward everything and store every answer, overwriting the same key."""
    AUTO = "auto"
    """Serve hits; forward and record misses."""
    PASSTHROUGH = "passthrough"
    """Forward everything, store nothing."""


class MissPolicy(StrEnum):
    """What replay mode does when nothing matches."""

    SYNTHETIC = "synthetic"
    ERROR = "error"
    FORWARD = "forward"


class SyntheticTools(StrEnum):
    """When a synthetic answer calls a tool the request offers."""

    AUTO = "auto"
    """Unless the request forbids it, until a tool result follows the last user message."""
    FORCED = "forced"
    """Only when the request forces a tool call."""


@dataclass(frozen=True, slots=True)
class OptionSpec:
    name: str
    typespec: Any
    """A type mitmproxy's `--set` can parse: str, bool, int or `str | None`."""
    default: Any
    help: str
    choices: tuple[str, ...] | None = None


OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "replay_mode",
        str,
        "replay",
        "replay: serve from cassettes, never contact upstream unless replay_miss=forward. "
        "record: forward and record everything (overwriting the same key). "
        "auto: replay hits, forward and record misses. passthrough: forward, record nothing.",
        tuple(m.value for m in Mode),
    ),
    OptionSpec(
        "replay_miss",
        str,
        "synthetic",
        "What replay mode does when nothing matches: synthetic (a made-up answer the SDKs "
        "parse, logged with the nearest recording), error (404 naming the fingerprint and the "
        "nearest recording; use it in CI), forward (send upstream, do not record).",
        tuple(p.value for p in MissPolicy),
    ),
    OptionSpec(
        "replay_dir",
        str,
        "cassettes",
        "The store root: a directory, or s3://bucket/prefix for a shared store on "
        "S3-compatible object storage (needs pip install 'llm-replay[s3]').",
    ),
    OptionSpec(
        "replay_cache",
        str | None,
        None,
        "Local read-through cache of a shared store (replay_dir=s3://...); by default "
        "llm-replay in the user's cache directory.",
    ),
    OptionSpec(
        "replay_cassette",
        str | None,
        None,
        "Namespace inside the store: a relative path of plain segments (a/b/c); a request "
        "header x-replay-cassette overrides it per request.",
    ),
    OptionSpec(
        "replay_speed",
        str,
        "1.0",
        "Timing of replayed answers: 1 = as recorded, 2 = twice as fast, 0 = no delays.",
    ),
    OptionSpec("replay_rules", str | None, None, "Rules file (YAML or JSON)."),
    OptionSpec(
        "replay_ignore",
        str | None,
        None,
        "Comma list of JSON body paths left out of the fingerprint, e.g. "
        "user,metadata.trace_id,messages.*.name.",
    ),
    OptionSpec(
        "replay_hosts",
        str | None,
        None,
        "Comma list of host globs the addon handles, or * for everything. By default: the "
        "known LLM provider hosts plus any host whose path is a known LLM API surface.",
    ),
    OptionSpec(
        "replay_report",
        str | None,
        None,
        "Path of a JSON Lines report, one line per handled request.",
    ),
    OptionSpec(
        "replay_record_errors",
        bool,
        False,
        "In auto mode, also store non-2xx answers (record mode always stores what came).",
    ),
    OptionSpec(
        "replay_synthetic_tools",
        str,
        "auto",
        "When a synthetic answer calls an offered tool: auto (as a model would: unless the "
        "request forbids it, one tool round per user message, then text), forced (only when "
        "the request forces a tool call).",
        tuple(t.value for t in SyntheticTools),
    ),
    OptionSpec(
        "replay_pacer_ports",
        int,
        16,
        "Loopback ports of the chunk server that paces replayed streams (each client "
        "connection may hold 5 connections per port).",
    ),
    OptionSpec(
        "replay_max_body",
        int,
        64 * 2**20,
        "The largest decoded request body and the largest decoded cassette file, in bytes "
        "(64 MiB by default). A larger request is refused with 413 and never stored; a "
        "larger file is reported as corrupt (a miss).",
    ),
    OptionSpec(
        "replay_strict",
        bool,
        False,
        "End the proxy with exit code 1 if anything it handled was a miss, a synthetic answer, "
        "a forward or an error (the summary at the stop lists them): for mitmdump in CI.",
    ),
)

OPTION_NAMES = frozenset(spec.name for spec in OPTION_SPECS)

MIN_MAX_BODY = 1024
MAX_MAX_BODY = 2**40
"""The bounds of `replay_max_body` (1 KiB .. 1 TiB)."""

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_IGNORE_SEGMENT = re.compile(r"^(\*|[^.*\s]+)$")


NAMESPACE_MAX = 1024
"""The longest namespace, in characters."""
SEGMENT_MAX = 255
"""The longest segment of a namespace, in UTF-8 bytes (a file name on most file systems)."""


def check_namespace(name: str) -> str:
    """`name` if it is a namespace, else ConfigError saying why.

    A namespace is a relative path of one or more segments separated by `/`
    (`tests/test_chat/test_summary[gpt-4o]`). Refused: an empty name or segment (`a//b`, a
    trailing `/`), a segment `.` or `..` or any segment starting with `.` (the store hides
    dot-names), a leading `/`, a backslash, a control character, a segment over SEGMENT_MAX
    bytes, a name over NAMESPACE_MAX characters. Any other character is kept as it is:
    making a name portable to every file system is the caller's choice (the pytest plugin
    does it for the names it derives from test ids).
    """
    problem = _namespace_problem(name)
    if problem is not None:
        raise ConfigError(f"invalid namespace {name!r}: {problem}")
    return name


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/prefix` (prefix without a trailing slash, may be
    empty), or ConfigError."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.rstrip("/")
    bad_prefix = any(
        not part or part.startswith(".") or any(ord(c) < 32 for c in part)
        for part in (prefix.split("/") if prefix else ())
    )
    if not url.startswith("s3://") or not _BUCKET.fullmatch(bucket) or bad_prefix:
        raise ConfigError(
            f"replay_dir: {url!r} is not s3://bucket/prefix (a bucket name of 3-63 "
            "lower-case letters, digits, '.' and '-'; prefix segments not empty nor dot-named)"
        )
    return bucket, prefix


def check_dir(value: str) -> str:
    """`replay_dir` if usable: a path, or an s3:// URL whose client is installed."""
    if not value:
        raise ConfigError("replay_dir: must not be empty")
    if value.startswith("s3://"):
        parse_s3_url(value)
        if importlib.util.find_spec("boto3") is None:
            raise ConfigError(
                f"replay_dir: {value} is an s3:// store, which needs the S3 client: "
                "pip install 'llm-replay[s3]'"
            )
    return value


def _namespace_problem(name: str) -> str | None:
    if not name:
        return "empty"
    if len(name) > NAMESPACE_MAX:
        return f"longer than {NAMESPACE_MAX} characters"
    if name.startswith("/"):
        return "a namespace is a relative path (no leading '/')"
    if "\\" in name:
        return "'\\' is not a separator (use '/')"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "control characters are not allowed"
    for segment in name.split("/"):
        if not segment:
            return "empty segment (a '//' or a trailing '/')"
        if segment.startswith("."):
            return f"segment {segment!r} starts with '.' (no '.', '..' or hidden names)"
        if len(segment.encode("utf-8", "surrogatepass")) > SEGMENT_MAX:
            return f"segment longer than {SEGMENT_MAX} bytes"
    return None


def _comma_list(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_speed(value: str) -> float:
    """`replay_speed` as a float >= 0, or ConfigError."""
    try:
        speed = float(value)
    except ValueError:
        raise ConfigError(f"replay_speed: {value!r} is not a number") from None
    if math.isnan(speed) or math.isinf(speed) or speed < 0:
        raise ConfigError(f"replay_speed: {value!r} must be a finite number >= 0")
    return speed


def parse_ignore(value: str | None) -> tuple[str, ...]:
    """`replay_ignore` as a tuple of dotted paths, each segment a key, an index or `*`."""
    paths = _comma_list(value)
    for path in paths:
        if not all(_IGNORE_SEGMENT.fullmatch(seg) for seg in path.split(".")):
            raise ConfigError(
                f"replay_ignore: {path!r} is not a dotted path (segments are keys, "
                "array indexes or *)"
            )
    return paths


@dataclass(frozen=True, slots=True)
class Settings:
    """Checked option values. Build it with `from_options`."""

    mode: Mode = Mode.REPLAY
    miss: MissPolicy = MissPolicy.SYNTHETIC
    dir: str = "cassettes"
    cache: str | None = None
    """`replay_cache`: the read-through cache of an s3:// store (None: the default)."""
    cassette: str | None = None
    speed: float = 1.0
    rules: str | None = None
    ignore: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    """Empty means the default set of LLM hosts and paths."""
    report: str | None = None
    record_errors: bool = False
    synthetic_tools: SyntheticTools = SyntheticTools.AUTO
    pacer_ports: int = 16
    max_body: int = 64 * 2**20
    """`replay_max_body`: the cap on decoded request bodies and cassette files, bytes."""
    strict: bool = False

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Settings:
        """Validate raw option values (missing ones take their defaults)."""
        values = {spec.name: options.get(spec.name, spec.default) for spec in OPTION_SPECS}
        mode = values["replay_mode"]
        if mode not in Mode.__members__.values():
            raise ConfigError(
                f"replay_mode: {mode!r} is not one of {', '.join(m.value for m in Mode)}"
            )
        miss = values["replay_miss"]
        if miss not in MissPolicy.__members__.values():
            raise ConfigError(
                f"replay_miss: {miss!r} is not one of {', '.join(p.value for p in MissPolicy)}"
            )
        check_dir(values["replay_dir"])
        cassette = values["replay_cassette"] or None
        if cassette is not None:
            try:
                check_namespace(cassette)
            except ConfigError as e:
                raise ConfigError(f"replay_cassette: {e}") from None
        tools = values["replay_synthetic_tools"]
        if tools not in SyntheticTools.__members__.values():
            raise ConfigError(
                f"replay_synthetic_tools: {tools!r} is not one of "
                f"{', '.join(t.value for t in SyntheticTools)}"
            )
        ports = values["replay_pacer_ports"]
        if not isinstance(ports, int) or not 1 <= ports <= 256:
            raise ConfigError(f"replay_pacer_ports: {ports!r} must be between 1 and 256")
        max_body = values["replay_max_body"]
        if isinstance(max_body, str) and max_body.strip().isdigit():
            max_body = int(max_body)  # a config.yaml may spell it as a string
        if (
            isinstance(max_body, bool)
            or not isinstance(max_body, int)
            or not MIN_MAX_BODY <= max_body <= MAX_MAX_BODY
        ):
            raise ConfigError(
                f"replay_max_body: {max_body!r} must be a number of bytes between "
                f"{MIN_MAX_BODY} and {MAX_MAX_BODY}"
            )
        return cls(
            mode=Mode(mode),
            miss=MissPolicy(miss),
            dir=values["replay_dir"],
            cache=values["replay_cache"] or None,
            cassette=cassette,
            speed=parse_speed(str(values["replay_speed"])),
            rules=values["replay_rules"] or None,
            ignore=parse_ignore(values["replay_ignore"]),
            hosts=_comma_list(values["replay_hosts"]),
            report=values["replay_report"] or None,
            record_errors=bool(values["replay_record_errors"]),
            synthetic_tools=SyntheticTools(tools),
            pacer_ports=ports,
            max_body=max_body,
            strict=bool(values["replay_strict"]),
        )
