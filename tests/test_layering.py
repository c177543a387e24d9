"""The rules of dependency of docs/architecture.md, checked on the AST of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import replay

ROOT = Path(replay.__file__).parent
CORE_FORBIDDEN = ("replay.mitm", "replay.cli")


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = ".".join(("replay", *path.relative_to(ROOT).with_suffix("").parts))
        out[name.removesuffix(".__init__")] = ast.parse(path.read_text(), str(path))
    return out


def imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def starts(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_mitmproxy_only_in_replay_mitm() -> None:
    for name, tree in modules().items():
        if not starts(name, "replay.mitm"):
            assert not any(starts(i, "mitmproxy") for i in imports(tree)), name


def test_click_only_in_replay_cli() -> None:
    for name, tree in modules().items():
        if not starts(name, "replay.cli"):
            assert not any(starts(i, "click") for i in imports(tree)), name


def test_pytest_only_in_the_plugin() -> None:
    for name, tree in modules().items():
        if name != "replay.pytest_plugin":
            assert not any(starts(i, "pytest") for i in imports(tree)), name


def test_core_never_imports_the_edges() -> None:
    for name, tree in modules().items():
        if starts(name, "replay.mitm") or starts(name, "replay.cli") or name == "replay.__main__":
            continue
        for imp in imports(tree):
            assert not any(starts(imp, edge) for edge in CORE_FORBIDDEN), (name, imp)


def test_providers_do_not_import_store_or_engine() -> None:
    for name, tree in modules().items():
        if starts(name, "replay.providers"):
            assert not imports(tree) & {"replay.store", "replay.engine"}, name


def test_config_imports_only_errors_and_models() -> None:
    replay_imports = {i for i in imports(modules()["replay.config"]) if starts(i, "replay")}
    assert replay_imports <= {"replay.errors", "replay.models"}


def test_only_redact_constructs_redacted_interactions() -> None:
    for name, tree in modules().items():
        if name in ("replay.redact", "replay.models"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id != "RedactedInteraction", name


def test_every_module_has_a_docstring() -> None:
    for name, tree in modules().items():
        assert ast.get_docstring(tree), f"{name} has no module docstring"


def test_public_names() -> None:
    assert replay.__all__ == ["__version__"]
