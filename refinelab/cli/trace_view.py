"""Render trace.jsonl as a tree: name, type, tokens (own and nested) and duration per run.

A trace file is untrusted (a run folder from elsewhere): its text is printed with `common.safe_text`.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from rich.tree import Tree

from refinelab.cli.common import safe_text
from refinelab.tools.tracing import read_trace

GROUP_OVER = 3  # siblings with the same name beyond this are summarised on one line
Shown = dict[str, Any] | list[dict[str, Any]]  # a run, or runs of one name summarised on one line


def _seconds(run: dict[str, Any]) -> float:
    if not run.get("end_time"):
        return 0.0
    return (datetime.fromisoformat(run["end_time"]) - datetime.fromisoformat(run["start_time"])).total_seconds()


def subtree_tokens(runs: list[dict[str, Any]]) -> dict[str, int]:
    """Each run's tokens with those of every run below it. Children before parents, by an explicit
    post-order walk: a recursive sum went one Python frame per level, and a 3,000-deep chain of parents (a
    trace from elsewhere; `read_trace` refuses cycles, not depth) ended in a RecursionError naming no file."""
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        children[run["parent_run_id"]].append(run)
    totals: dict[str, int] = {}
    for start in runs:
        stack: list[tuple[dict[str, Any], bool]] = [(start, False)]
        while stack:
            run, expanded = stack.pop()
            if run["id"] in totals:
                continue
            kids = children[run["id"]]
            if expanded:
                own = (run.get("usage") or {}).get("total_tokens", 0)
                totals[run["id"]] = own + sum(totals[c["id"]] for c in kids)
            else:
                stack.append((run, True))
                stack.extend((c, False) for c in kids if c["id"] not in totals)
    return totals


def render_tree(path: Path, depth: int = 3) -> Tree:
    """The run tree of a trace file, `depth` levels deep. Built from an explicit stack, not by
    recursion, so a deep trace and a large `--depth` cannot exhaust Python's stack; only what the tree
    shows is read (`read_trace(tree_only=True)`)."""
    runs = read_trace(path, tree_only=True)
    by_parent: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    ids = {r["id"] for r in runs}
    for run in runs:
        parent = run["parent_run_id"] if run["parent_run_id"] in ids else None
        by_parent[parent].append(run)
    tokens = subtree_tokens(runs)
    root = Tree(Text(f"trace {safe_text(runs[0]['trace_id']) if runs else '(empty)'}: {len(runs)} runs, "
                     f"{sum((r.get('usage') or {}).get('total_tokens', 0) for r in runs)} tokens"))

    def add(node: Tree, run: dict[str, Any], level: int) -> list[tuple[Tree, Shown, int]]:
        """Add `run` under `node`; what is still to add beneath it, in order: a run, or a list of runs of one
        name shown as one summary line."""
        # names and errors come from a trace file (untrusted): styled, never read as markup, controls escaped
        label = Text.assemble((safe_text(run["name"]), "bold"), f" ({safe_text(run['run_type'])}) {tokens[run['id']]} "
                              f"tok {_seconds(run):.2f}s",
                              (f" error: {safe_text(str(run['error'])[:80])}", "red") if run.get("error") else "")
        child = node.add(label)
        kids = sorted(by_parent[run["id"]], key=lambda r: r["start_time"])
        if level + 1 >= depth:
            if kids:
                child.add(Text(f"… {len(kids)} more run(s)"))
            return []
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for kid in kids:
            groups[kid["name"]].append(kid)
        pending: list[tuple[Tree, Shown, int]] = []
        for kid in kids:
            same = groups[kid["name"]]
            if len(same) <= GROUP_OVER:
                pending.append((child, kid, level + 1))
            elif kid is same[0]:  # many runs of one name: one summary line
                pending.append((child, same, level + 1))
        return pending

    def summarise(node: Tree, same: list[dict[str, Any]]) -> None:
        kid = same[0]
        errors = sum(1 for r in same if r.get("error"))
        node.add(Text.assemble((safe_text(kid["name"]), "bold"), f" ({safe_text(kid['run_type'])}) ×{len(same)}: "
                               f"{sum(tokens[r['id']] for r in same)} tok, "
                               f"{sum(_seconds(r) for r in same):.2f}s total",
                               (f", {errors} error(s)", "red") if errors else ""))

    tops = sorted(by_parent[None], key=lambda r: r["start_time"])
    stack: list[tuple[Tree, Shown, int]] = [(root, run, 0) for run in tops]
    stack.reverse()
    while stack:
        node, shown, level = stack.pop()
        if isinstance(shown, list):
            summarise(node, shown)
        else:
            stack.extend(reversed(add(node, shown, level)))
    return root
