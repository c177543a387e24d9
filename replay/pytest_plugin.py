"""The pytest plugin (entry point `pytest11`): a cassette per test, through a session proxy.

Owns the plugin's options and ini keys, the `replay` marker and fixture, and the test
lifecycle: inactive unless asked for (`--replay`, `replay = true` in the ini file, or a test
marked `@pytest.mark.replay`); one proxy per pytest process (so per xdist worker), started
before the first test that needs it and stopped cleanly after the last; before each test, a
switch of the proxy's namespace to the test's own (occurrence counters from 0); after it,
`--replay-strict`'s verdict and, in record mode, what the test recorded, so that its stale
recordings are removed once the proxy has stopped. The only module that imports pytest;
everything else is `replay.sessionproxy` and `replay.testnames`.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from replay.config import MissPolicy, Mode, check_namespace
from replay.errors import ConfigError, ReplayError
from replay.report import ReportLine
from replay.sessionproxy import (
    CA_CERT,
    SessionProxy,
    TestSettings,
    prune,
    strict_failures,
    strict_message,
)
from replay.testnames import namespace_for

MARKER = (
    "replay(cassette=None, mode=None, rules=None, miss=None): run the test through the "
    "replay proxy, in the namespace `cassette` (default: from its node id), with its own "
    "mode, rules file and miss policy"
)
_STATE = pytest.StashKey["_TestState"]()


@dataclass
class _TestState:
    settings: TestSettings
    exported: bool = False
    failed: bool = False
    outcomes: list[ReportLine] | None = None


@dataclass
class Replay:
    """What the `replay` fixture gives a test."""

    proxy_url: str
    namespace: str
    _proxy: SessionProxy = field(repr=False)

    @property
    def outcomes(self) -> list[ReportLine]:
        """The report lines of the test's own requests so far (`outcome`, `fingerprint`,
        `url`, `occurrence`, `status`, `nearest`...)."""
        return self._proxy.outcomes()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("replay", "record and replay LLM traffic (llm-replay)")
    group.addoption("--replay", action="store_true", default=None, help="use the plugin")
    parser.addini("replay", "use the replay plugin for every test", type="bool", default=False)
    flags: list[tuple[str, str, tuple[str, ...] | None]] = [
        ("mode", "replay, record, auto or passthrough (default replay)", tuple(Mode)),
        ("miss", "on a miss: synthetic, error or forward (default synthetic)", tuple(MissPolicy)),
        ("dir", "the store, relative to the rootdir (default cassettes)", None),
        ("speed", "replay timing: 1 = as recorded, 0 = no delays (default 0)", None),
        ("rules", "a rules file, relative to the rootdir", None),
        ("proxy", "use the replay proxy running at this URL (or REPLAY_PROXY)", None),
        ("ca", "the CA certificate of --replay-proxy (default ~/.mitmproxy's)", None),
    ]
    for name, text, choices in flags:
        group.addoption(
            f"--replay-{name}", dest=f"replay_{name}", default=None, choices=choices, help=text
        )
        parser.addini(f"replay_{name}", text)
    group.addoption(
        "--replay-strict",
        action="store_true",
        default=None,
        help="fail a test that made a miss, synthetic answer, forward or error",
    )
    parser.addini("replay_strict", "as --replay-strict", type="bool", default=False)
    group.addoption(
        "--replay-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a further mitmproxy option for the proxy the plugin starts (repeatable)",
    )
    group.addoption(
        "--replay-script",
        action="append",
        default=[],
        metavar="FILE",
        help="a further mitmproxy addon script for the proxy the plugin starts (repeatable)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    config.pluginmanager.register(ReplayPlugin(config), "replay-session")


class ReplayPlugin:
    """The session's proxy and the per-test switches."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.everywhere = bool(config.getoption("replay") or config.getini("replay"))
        self.proxy: SessionProxy | None = None
        self.failure: str | None = None
        self.attached: dict[str, Any] = {}
        """An attached proxy's own mode, miss policy and rules, given back after a test
        whose marker changed them."""
        self.recorded: dict[str, set[tuple[str, int]]] = {}
        self.spoiled: set[str] = set()
        """Namespaces recorded by a test that failed: their old recordings are kept."""

    def option(self, name: str, default: str | None = None) -> str | None:
        """A `--replay-NAME` value: the command line, else the ini file, else `default`."""
        value = self.config.getoption(f"replay_{name}")
        if value is None:
            value = self.config.getini(f"replay_{name}") or None
        return value if value is not None else default

    def path_option(self, name: str, default: str | None = None) -> str | None:
        value = self.option(name, default)
        return str(self.config.rootpath / value) if value else None

    # --- the proxy ------------------------------------------------------------------------

    def session_proxy(self) -> SessionProxy:
        """The running proxy, started (or attached) on first use; a failure is kept and
        repeated for every later test rather than retried."""
        if self.proxy is not None:
            return self.proxy
        if self.failure is None:
            try:
                self.proxy = self._open()
            except ReplayError as e:
                self.failure = f"replay: {e}"
        if self.proxy is None:
            pytest.fail(self.failure or "replay: no proxy", pytrace=False)
        if self.everywhere:
            self.proxy.export()  # for the rest of the session
        return self.proxy

    def _open(self) -> SessionProxy:
        url = self.option("proxy") or os.environ.get("REPLAY_PROXY")
        if url:
            ca = self.option("ca") or os.path.join("~", ".mitmproxy", CA_CERT)
            proxy = SessionProxy.attach(url, Path(os.path.expanduser(ca)))
            self.attached = proxy.state()
            return proxy
        options = {
            "replay_mode": self.option("mode", "replay"),
            "replay_miss": self.option("miss", "synthetic"),
            "replay_dir": self.path_option("dir", "cassettes"),
            "replay_speed": self.option("speed", "0"),
            "replay_rules": self.path_option("rules"),
        }
        extra = []
        for pair in self.config.getoption("replay_set"):
            name, sep, value = pair.partition("=")
            if not sep or not name:
                raise ConfigError(f"--replay-set {pair!r}: expected NAME=VALUE")
            extra.append((name.strip(), value))
        scripts = [str(self.config.rootpath / s) for s in self.config.getoption("replay_script")]
        given = {k: v for k, v in options.items() if v is not None}
        return SessionProxy.start(given, scripts, extra)

    def marker_for(self, item: pytest.Item) -> tuple[str, dict[str, Any]]:
        """The test's namespace and its marker's arguments, checked (a failed setup if bad)."""
        marker = item.get_closest_marker("replay")
        kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
        unknown = set(kwargs) - {"cassette", "mode", "rules", "miss"}
        if unknown or (marker is not None and marker.args):
            pytest.fail(
                f"@pytest.mark.replay takes cassette=, mode=, rules=, miss= "
                f"(got {sorted(unknown) or list(marker.args if marker else ())})",
                pytrace=False,
            )
        cassette = kwargs.get("cassette")
        problem = None
        try:
            namespace = check_namespace(cassette) if cassette else namespace_for(item.nodeid)
        except ConfigError as e:
            problem = f"@pytest.mark.replay cassette: {e}"
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        return namespace, kwargs

    def settings_for(self, namespace: str, kwargs: dict[str, Any]) -> TestSettings:
        """What the test asks of the proxy. After a marked test, the next one gets the
        session's values back: the command line's or the ini file's, else the defaults (a
        proxy we started) or the proxy's own (an attached one, as it was at the start)."""
        own = self.attached
        mode = kwargs.get("mode") or self.option("mode", own.get("mode")) or "replay"
        miss = kwargs.get("miss") or self.option("miss", own.get("miss")) or "synthetic"
        rules = kwargs.get("rules")
        rules = str(self.config.rootpath / rules) if rules else self.path_option("rules")
        return TestSettings(namespace, mode, miss, rules if rules else own.get("rules") or "")

    # --- each test ------------------------------------------------------------------------

    def active(self, item: pytest.Item) -> bool:
        return self.everywhere or item.get_closest_marker("replay") is not None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if not self.active(item):
            return
        namespace, kwargs = self.marker_for(item)
        proxy = self.session_proxy()
        settings = self.settings_for(namespace, kwargs)
        problem = None
        try:
            proxy.switch(settings)
        except ReplayError as e:
            problem = f"replay: {e}"
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        state = item.stash[_STATE] = _TestState(settings)
        if not self.everywhere:
            proxy.export()
            state.exported = True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        result = yield  # raises if the test failed: no verdict on top of it
        state = item.stash.get(_STATE, None)
        if state is not None and self.proxy is not None and self.strict:
            state.outcomes = self.proxy.outcomes()
            failures = strict_failures(state.outcomes)
            if failures:
                pytest.fail(strict_message(state.settings.namespace, failures), pytrace=False)
        return result

    @property
    def strict(self) -> bool:
        flag = self.config.getoption("replay_strict")
        return bool(flag if flag is not None else self.config.getini("replay_strict"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        state = item.stash.get(_STATE, None)
        if state is not None and report.failed:
            state.failed = True
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            return (yield)
        finally:
            state = item.stash.get(_STATE, None)
            if state is not None and self.proxy is not None:
                if state.exported:
                    self.proxy.restore()
                if state.settings.mode == Mode.RECORD and self.proxy.process is not None:
                    self._note_recorded(state)

    def _note_recorded(self, state: _TestState) -> None:
        namespace = state.settings.namespace
        if state.failed:
            self.spoiled.add(namespace)
            return
        lines = self.proxy.outcomes() if self.proxy is not None else []
        kept = self.recorded.setdefault(namespace, set())
        kept.update((ln.fingerprint, ln.occurrence) for ln in lines if ln.namespace == namespace)

    # --- the end --------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.close()

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.close()

    def close(self) -> None:
        proxy, self.proxy = self.proxy, None
        if proxy is None:
            return
        proxy.close()
        if proxy.process is None:
            return  # an attached proxy writes on: its clean-up is its own
        root = Path(self.path_option("dir", "cassettes") or "cassettes")
        for namespace, keep in self.recorded.items():
            if namespace not in self.spoiled:
                prune(root, namespace, keep)


@pytest.fixture
def replay(request: pytest.FixtureRequest) -> Replay:
    """The test's proxy URL, namespace, and the outcomes of its requests so far."""
    plugin = request.config.pluginmanager.get_plugin("replay-session")
    state = request.node.stash.get(_STATE, None)
    if not isinstance(plugin, ReplayPlugin) or plugin.proxy is None or state is None:
        pytest.fail(
            "the replay fixture needs the replay plugin: run pytest with --replay, set "
            "`replay = true` in the ini file, or mark the test @pytest.mark.replay",
            pytrace=False,
        )
    return Replay(plugin.proxy.url, state.settings.namespace, plugin.proxy)
