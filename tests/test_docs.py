"""The documents name tests as evidence (SECURITY.md above all): every test they name
exists. A reference is `tests/…/test_x.py::test_name`; a bare `::test_other` that
follows in the same paragraph or table row names another test of the same file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from testbed.paths import ROOT

DOCS = [
    ROOT / "README.md",
    ROOT / "tests" / "README.md",
    ROOT / "custom_components" / "homeseal" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "firmware" / "README.md",
]
REFERENCE = re.compile(r"(tests/[\w/]+\.py)?((?:::\w+)+)?")
TOKEN = re.compile(r"`([^`]+)`")


def _tests_in(path: Path) -> set[str]:
    """`name` and `Class::name` of every test function in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            )
            names.add(node.name)
    return names


def references(text: str) -> list[tuple[str, str | None]]:
    """(file, test or None) for each test a text names."""
    found: list[tuple[str, str | None]] = []
    for block in re.split(r"\n\s*\n|\n(?=\|)", text):  # paragraphs and table rows
        current: str | None = None
        for token in TOKEN.findall(block):
            match = REFERENCE.fullmatch(token.split("[")[0].strip())
            if match is None or not any(match.groups()):
                continue
            path, test = match.groups()
            if path is not None:
                current = path
            if current is None:
                continue
            found.append((current, test[2:] if test else None))
    return found


def test_the_reference_parser_reads_rows_and_continuations() -> None:
    row = "| x | fix | `tests/a/test_b.py::test_one`, `::test_two[case]`, `tests/c.py` |"
    assert references(row) == [
        ("tests/a/test_b.py", "test_one"),
        ("tests/a/test_b.py", "test_two"),
        ("tests/c.py", None),
    ]
    assert references("`::test_orphan` and `tests/` alone") == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_test_a_document_names_exists(doc: Path) -> None:
    missing = []
    for path, test in references(doc.read_text(encoding="utf-8")):
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
        elif test is not None and test not in _tests_in(file):
            missing.append(f"{path}::{test}")
    assert not missing, f"{doc.relative_to(ROOT)} names tests that do not exist: {missing}"
