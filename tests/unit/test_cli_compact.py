"""`replay compact`: the dictionary at the store root, every file rewritten with it and still
read the same (by the store, `verify`, `zstd -D`), later recordings compressed with it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import zstandard
from click.testing import CliRunner, Result
from support import cassettes

from replay.cli import main
from replay.codec import decode, find_dictionary
from replay.errors import CorruptEntry
from replay.models import Interaction
from replay.store import Store


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def made(n: int, namespace: str = "default") -> list[Interaction]:
    out = []
    for k in range(n):
        text = f"Answer number {k}: the invoice INV-{k:05d} is paid in full."
        out.append(
            cassettes.interaction(
                cassettes.chat(f"Is invoice {k} paid?"),
                [cassettes.completion(text)],
                namespace=namespace,
            )
        )
    return out


def dict_id(path: Path) -> int:
    return zstandard.get_frame_parameters(path.read_bytes()[:32]).dict_id


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "cassettes"
    cassettes.write(root, made(40) + made(10, "other"))
    return root


def test_compact_rewrites_every_file_with_the_dictionary(store: Path) -> None:
    before = {p: decode(p.read_bytes(), str(p)) for p in store.rglob("*.zst")}
    size_before = sum(p.stat().st_size for p in before)
    result = cli("compact", "--dir", str(store), "--size", "2048")
    assert result.exit_code == 0, result.output
    assert "50 file(s)" in result.output and "dictionary" in result.output
    [dictionary] = list(store.glob("*.dict"))
    ident = int(dictionary.stem)
    for path, interaction in before.items():
        assert dict_id(path) == ident
        assert decode(path.read_bytes(), str(path)) == interaction
    assert sum(p.stat().st_size for p in before) + dictionary.stat().st_size < size_before
    assert not list(store.rglob(".*"))  # no temporary file left
    # The store (what the proxy reads) and the commands still read every file.
    with Store(store) as s:
        some = next(iter(before.values()))
        assert s.get(some.key) is not None
    assert cli("verify", "--dir", str(store)).exit_code == 0
    assert len(cli("ls", "--json", "--dir", str(store)).output.splitlines()) == 50


def test_later_recordings_use_the_dictionary(store: Path) -> None:
    assert cli("compact", "--dir", str(store), "--size", "2048").exit_code == 0
    [dictionary] = list(store.glob("*.dict"))
    [new] = made(41)[40:]
    [path] = cassettes.write(store, [new])
    assert dict_id(path) == int(dictionary.stem)
    assert decode(path.read_bytes(), str(path)).key == new.key


def test_a_second_compact_drops_the_dictionary_nothing_needs(store: Path) -> None:
    assert cli("compact", "--dir", str(store), "--size", "2048").exit_code == 0
    cassettes.write(store, made(60)[40:])
    assert cli("compact", "--dir", str(store), "--size", "4096").exit_code == 0
    [dictionary] = list(store.glob("*.dict"))
    assert {dict_id(p) for p in store.rglob("*.zst")} == {int(dictionary.stem)}


def test_a_namespace_only_keeps_the_other_dictionary(store: Path) -> None:
    assert cli("compact", "--dir", str(store), "--size", "2048").exit_code == 0
    first = {int(p.stem) for p in store.glob("*.dict")}
    assert (
        cli("compact", "--dir", str(store), "--namespace", "default", "--size", "4096").exit_code
        == 0
    )
    ids = {int(p.stem) for p in store.glob("*.dict")}
    assert first < ids  # "other" still needs the first one
    assert all(dict_id(p) in ids for p in store.rglob("*.zst"))


def test_a_missing_dictionary_is_a_clear_corrupt_entry(store: Path) -> None:
    assert cli("compact", "--dir", str(store), "--size", "2048").exit_code == 0
    [dictionary] = list(store.glob("*.dict"))
    dictionary.unlink()
    path = next(store.rglob("*.zst"))
    with pytest.raises(CorruptEntry, match=f"no {dictionary.name} in its directory or above"):
        decode(path.read_bytes(), str(path))
    result = cli("verify", "--dir", str(store))
    assert result.exit_code == 1 and f"no {dictionary.name}" in result.output


def test_too_few_files_to_train(tmp_path: Path) -> None:
    cassettes.write(tmp_path, made(2))
    result = cli("compact", "--dir", str(tmp_path))
    assert result.exit_code == 1 and "too few to train" in result.output
    assert not list(tmp_path.glob("*.dict"))


def test_the_documented_zstd_procedure_reads_a_compacted_file(store: Path) -> None:
    assert cli("compact", "--dir", str(store), "--size", "2048").exit_code == 0
    [dictionary] = list(store.glob("*.dict"))
    path = next(store.rglob("*.zst"))
    out = subprocess.run(
        ["zstd", "-q", "-dc", "-D", str(dictionary), str(path)], capture_output=True, check=True
    ).stdout
    assert json.loads(out)["format"] == "llm-replay"
    assert find_dictionary(int(dictionary.stem), str(path)) is not None
