"""Finalize: refined.jsonl, changes.jsonl, report.json in the run folder, each written atomically."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.atomic import atomic_write_text
from refinelab.graph.review import recorded
from refinelab.io import write_jsonl
from refinelab.metrics.divergence import coverage_distribution, difficulty_distribution, jensen_shannon
from refinelab.operations import writes_new_item
from refinelab.schema import QAItem


def metrics(ctx: AgentContext, items: list[QAItem]) -> dict[str, Any]:
    """The headline figures of a set of items against the run's targets (report.json before/after)."""
    coverage = {cell.key: p for cell, p in coverage_distribution(items).items()} if items else {}
    target_cov = ({cell.key: p for cell, p in ctx.targets.coverage_cells().items()}
                  if ctx.targets.coverage else {k: 1 / len(coverage) for k in coverage})
    scores = [i.difficulty for i in items if i.difficulty is not None]
    difficulty = (difficulty_distribution(scores, ctx.targets.thresholds, ctx.targets.buckets) if scores
                  else dict.fromkeys(ctx.targets.buckets, 0.0))
    target_diff = ctx.targets.difficulty or {b: 1 / len(ctx.targets.buckets) for b in ctx.targets.buckets}
    errors = [ctx.store.diagnostic(i.id, "error") for i in items]
    p_errors = [float(d.evidence.get("p_error", 0)) if d and i.provenance.created_by == "original" else 0.0
                for d, i in zip(errors, items, strict=True)]
    return {
        "items": len(items),
        "coverage_jsd": jensen_shannon(coverage, target_cov) if coverage else None,
        "difficulty_jsd": jensen_shannon(difficulty, target_diff) if any(difficulty.values()) else None,
        "expected_errors": round(sum(p_errors), 4),
        "coverage": coverage, "difficulty": difficulty,
    }


def change_lines(ctx: AgentContext, edits: list[dict[str, Any]], originals: list[QAItem]) -> list[str]:
    """One line per attempt; a reviewed edit's last attempt carries `review` (decision, by, at, kind), and a
    decision on a flagged item no edit fixed is a line of its own (operation `review`)."""
    decisions = recorded(ctx)
    lines = []
    for e in edits:
        line = {k: e[k] for k in ("edit_id", "round", "attempt", "item_id", "operation", "target",
                                  "before", "after", "verdict", "reason", "evidence", "tokens")}
        case = decisions.get(e["edit_id"])
        if case is not None and case["request"].get("attempt") == e["attempt"]:
            line["review"] = {"kind": case["request"]["kind"], **case["decision"]}
        lines.append(json.dumps(line, ensure_ascii=False))
    by_id = {i.id: i for i in originals}
    statuses = ctx.store.statuses()
    for key, case in decisions.items():
        request = case["request"]
        if request["kind"] != "unfixable":
            continue
        before = by_id.get(request["item_id"])
        after = ctx.store.item(request["item_id"]) if statuses.get(request["item_id"]) != "removed" else None
        lines.append(json.dumps({
            "edit_id": key, "round": None, "attempt": 0, "item_id": request["item_id"], "operation": "review",
            "target": "", "before": before.model_dump() if before else None,
            "after": after.model_dump() if after else None, "verdict": case["decision"]["decision"],
            "reason": request["reason"], "evidence": {"method": "screening"}, "tokens": 0,
            "review": {"kind": "unfixable", **case["decision"]}}, ensure_ascii=False))
    return lines


def write_outputs(ctx: AgentContext, state: dict[str, Any]) -> dict[str, Path]:
    run_dir = ctx.run_dir
    refined = ctx.store.items(("kept", "edited", "new"))
    paths = {"refined": write_jsonl(refined, run_dir / "refined.jsonl")}

    edits = ctx.store.edits()
    originals = [QAItem.model_validate_json(r) for r in ctx.store.original_items()]
    atomic_write_text(run_dir / "changes.jsonl", "".join(x + "\n" for x in change_lines(ctx, edits, originals)))
    paths["changes"] = run_dir / "changes.jsonl"

    accounted = ctx.store.originals()
    outcomes = ctx.store.outcomes()
    statuses = ctx.store.statuses()
    unfixed = [{"item_id": d.item_id, "p_error": d.evidence.get("p_error"), "error_type": d.evidence.get("error_type")}
               for d in ctx.store.diagnostics("error") if d.flag
               and statuses.get(d.item_id) == "kept"]
    report = {
        "run_id": state.get("run_id"),
        "stop_reason": state.get("stop_reason", ""),
        "rounds": len(state.get("plans", [])),
        "input_items": len(accounted),
        "items_by_status": dict(Counter(status for _, status, _ in accounted)),
        "new_items": sum(1 for i in refined if writes_new_item(i.provenance.created_by)),
        "output_items": len(refined),
        "invalid_input": [{"id": i, "reason": r} for i, s, r in accounted if s == "failed"],
        "edits": {"attempts": len(edits), "outcomes": dict(Counter(f"{o['operation']}:{o['status']}" for o in outcomes))},
        "gave_up": [o for o in outcomes if o["status"] == "gave_up"],
        "unfixed_flagged_items": unfixed,
        "metrics_before": metrics(ctx, originals),
        "metrics_after": metrics(ctx, refined),
        "plans": state.get("plans", []),
        "reviews": dict(Counter(f"{r['request']['kind']}:{r['decision']['decision']}"
                                for r in recorded(ctx).values())),
        "ledger": ctx.ledger.summary(),
    }
    atomic_write_text(run_dir / "report.json", json.dumps(report, indent=2, ensure_ascii=False, default=str))
    paths["report"] = run_dir / "report.json"
    ctx.tracer.flush()
    return paths
