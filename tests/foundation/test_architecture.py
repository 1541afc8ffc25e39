"""One home per concept, checked on the source: operation names are spelled once (in the registry), no
run options travel in an untyped bag, and neither library code nor evals import the command line."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from refinelab.operations import OPERATION_NAMES

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("refinelab",)


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def _string_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_operation_names_are_spelled_once_outside_tests_and_prompts() -> None:
    counts: Counter[str] = Counter()
    where: dict[str, list[str]] = {}
    for path in _sources(*PRODUCT, "evals"):
        for literal in _string_literals(path):
            if literal in OPERATION_NAMES:
                counts[literal] += 1
                where.setdefault(literal, []).append(str(path.relative_to(REPO)))
    assert set(counts) == set(OPERATION_NAMES), counts
    assert all(n == 1 for n in counts.values()), where
    assert {w for places in where.values() for w in places} == {"refinelab/operations.py"}


def test_no_untyped_option_bag() -> None:
    offenders = [str(p.relative_to(REPO)) for p in _sources(*PRODUCT, "evals", "tests")
                 if ".extras" in p.read_text() and p.name != "test_architecture.py"]
    assert offenders == []


def test_library_and_evals_never_import_the_cli() -> None:
    offenders = []
    for path in _sources(*PRODUCT, "evals"):
        if path.is_relative_to(REPO / "refinelab" / "cli") or path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.startswith("refinelab.cli")]
    assert offenders == []
