"""Finalize: refined.jsonl, changes.jsonl, report.json in the run folder, each written atomically."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.atomic import atomic_write_text
from refinelab.io import write_jsonl
from refinelab.planner.divergence import jensen_shannon
from refinelab.schema import QAItem


def _coverage(items: list[QAItem]) -> dict[str, float]:
    counts = Counter(f"{i.domain}|{i.skill}" for i in items)
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in counts.items()}


def _difficulty(ctx: AgentContext, items: list[QAItem]) -> dict[str, float]:
    rated = [i for i in items if i.difficulty is not None]
    counts = Counter(ctx.targets.bucket(i.difficulty) for i in rated)  # type: ignore[arg-type]
    total = sum(counts.values()) or 1
    return {b: counts.get(b, 0) / total for b in ctx.targets.buckets}


def metrics(ctx: AgentContext, items: list[QAItem]) -> dict[str, Any]:
    coverage = _coverage(items)
    target_cov = ({f"{d}|{s}": p for (d, s), p in ctx.targets.coverage_cells().items()}
                  if ctx.targets.coverage else {k: 1 / len(coverage) for k in coverage})
    difficulty = _difficulty(ctx, items)
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


def write_outputs(ctx: AgentContext, state: dict[str, Any]) -> dict[str, Path]:
    run_dir = ctx.run_dir
    refined = ctx.store.items(("kept", "edited", "new"))
    paths = {"refined": write_jsonl(refined, run_dir / "refined.jsonl")}

    edits = ctx.store.edits()
    lines = [json.dumps({k: e[k] for k in ("edit_id", "round", "attempt", "item_id", "operation", "target",
                                           "before", "after", "verdict", "reason", "evidence", "tokens")},
                        ensure_ascii=False) for e in edits]
    atomic_write_text(run_dir / "changes.jsonl", "".join(x + "\n" for x in lines))
    paths["changes"] = run_dir / "changes.jsonl"

    originals = [QAItem.model_validate_json(r) for r in ctx.store.original_items()]
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
        "new_items": sum(1 for i in refined if i.provenance.created_by in ("expand", "generate")),
        "output_items": len(refined),
        "invalid_input": [{"id": i, "reason": r} for i, s, r in accounted if s == "failed"],
        "edits": {"attempts": len(edits), "outcomes": dict(Counter(f"{o['operation']}:{o['status']}" for o in outcomes))},
        "gave_up": [o for o in outcomes if o["status"] == "gave_up"],
        "unfixed_flagged_items": unfixed,
        "metrics_before": metrics(ctx, originals),
        "metrics_after": metrics(ctx, refined),
        "plans": state.get("plans", []),
        "ledger": ctx.ledger.summary(),
    }
    atomic_write_text(run_dir / "report.json", json.dumps(report, indent=2, ensure_ascii=False, default=str))
    paths["report"] = run_dir / "report.json"
    ctx.tracer.flush()
    return paths
