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


def _seconds(run: dict[str, Any]) -> float:
    if not run.get("end_time"):
        return 0.0
    return (datetime.fromisoformat(run["end_time"]) - datetime.fromisoformat(run["start_time"])).total_seconds()


def subtree_tokens(runs: list[dict[str, Any]]) -> dict[str, int]:
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        children[run["parent_run_id"]].append(run)
    totals: dict[str, int] = {}

    def total(run: dict[str, Any]) -> int:
        if run["id"] not in totals:
            own = (run.get("usage") or {}).get("total_tokens", 0)
            totals[run["id"]] = own + sum(total(c) for c in children[run["id"]])
        return totals[run["id"]]

    for run in runs:
        total(run)
    return totals


def render_tree(path: Path, depth: int = 3) -> Tree:
    runs = read_trace(path)
    by_parent: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    ids = {r["id"] for r in runs}
    for run in runs:
        parent = run["parent_run_id"] if run["parent_run_id"] in ids else None
        by_parent[parent].append(run)
    tokens = subtree_tokens(runs)
    root = Tree(Text(f"trace {safe_text(runs[0]['trace_id']) if runs else '(empty)'}: {len(runs)} runs, "
                     f"{sum((r.get('usage') or {}).get('total_tokens', 0) for r in runs)} tokens"))

    def add(node: Tree, run: dict[str, Any], level: int) -> None:
        # names and errors come from a trace file (untrusted): styled, never read as markup, controls escaped
        label = Text.assemble((safe_text(run["name"]), "bold"), f" ({safe_text(run['run_type'])}) {tokens[run['id']]} "
                              f"tok {_seconds(run):.2f}s",
                              (f" error: {safe_text(str(run['error'])[:80])}", "red") if run.get("error") else "")
        child = node.add(label)
        kids = sorted(by_parent[run["id"]], key=lambda r: r["start_time"])
        if level + 1 >= depth:
            if kids:
                child.add(Text(f"… {len(kids)} more run(s)"))
            return
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for kid in kids:
            groups[kid["name"]].append(kid)
        for kid in kids:
            same = groups[kid["name"]]
            if len(same) <= GROUP_OVER:
                add(child, kid, level + 1)
            elif kid is same[0]:  # many runs of one name: one summary line
                errors = sum(1 for r in same if r.get("error"))
                child.add(Text.assemble((safe_text(kid["name"]), "bold"), f" ({safe_text(kid['run_type'])}) ×{len(same)}: "
                                        f"{sum(tokens[r['id']] for r in same)} tok, "
                                        f"{sum(_seconds(r) for r in same):.2f}s total",
                                        (f", {errors} error(s)", "red") if errors else ""))

    for run in sorted(by_parent[None], key=lambda r: r["start_time"]):
        add(root, run, 0)
    return root
