"""Namespaces from pytest node ids: readable, valid, portable and unique."""

from __future__ import annotations

import hashlib

import pytest

from replay.config import check_namespace
from replay.testnames import SEGMENT_BYTES, namespace_for, safe_segment


def tag(original: str) -> str:
    return hashlib.sha256(original.encode()).hexdigest()[:8]


@pytest.mark.parametrize(
    ("nodeid", "namespace"),
    [
        ("tests/test_chat.py::test_summary[gpt-4o]", "tests/test_chat/test_summary[gpt-4o]"),
        ("tests/test_chat.py::TestChat::test_one", "tests/test_chat/TestChat/test_one"),
        ("test_top.py::test_x", "test_top/test_x"),
        ("tests\\win.py::test_x", "tests/win/test_x"),
        ("tests/test_a.py::test_p[a::b]", f"tests/test_a/test_p[a__b]-{tag('test_p[a::b]')}"),
        ("tests/test_a.py::test_p[a/b]", f"tests/test_a/test_p[a_b]-{tag('test_p[a/b]')}"),
        ("tests/test_a.py::test_p[x-y]", "tests/test_a/test_p[x-y]"),
        ("../outside/test_o.py::test_o", f"__-{tag('..')}/outside/test_o/test_o"),
        ("tests/.hidden/test_h.py::t", f"tests/_hidden-{tag('.hidden')}/test_h/t"),
        ("tests/test_doc.txt::README", "tests/test_doc.txt/README"),
        ("tests/test_u.py::test_u[é]", f"tests/test_u/test_u[_]-{tag('test_u[é]')}"),
    ],
)
def test_node_ids_become_nested_namespaces(nodeid: str, namespace: str) -> None:
    assert namespace_for(nodeid) == namespace
    assert check_namespace(namespace) == namespace


@pytest.mark.parametrize(
    "segment", ["CON", "con.txt", "Lpt1", "a:b", "a*b", "a?b", 'a"b', "a|b", "a<b>", "dot.", "sp "]
)
def test_segments_that_some_file_system_refuses_are_changed(segment: str) -> None:
    safe = safe_segment(segment)
    assert safe != segment and safe.endswith(tag(segment))
    assert not any(c in safe for c in '<>:"/\\|?*')
    assert not safe.endswith((".", " "))


def test_changed_segments_stay_apart() -> None:
    variants = ["a:b", "a|b", "a?b", "a_b"]
    assert len({safe_segment(v) for v in variants}) == len(variants)
    assert safe_segment("a_b") == "a_b"


def test_long_segments_are_cut_with_a_hash() -> None:
    long_one = "test_x[" + "p" * 300 + "]"
    other = "test_x[" + "p" * 299 + "q]"
    cut = safe_segment(long_one)
    assert len(cut.encode()) <= SEGMENT_BYTES and cut.endswith(tag(long_one))
    assert cut != safe_segment(other)
    assert check_namespace(namespace_for(f"tests/t.py::{long_one}"))
