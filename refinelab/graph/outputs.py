"""Finalize: refined.jsonl, changes.jsonl, report.json in the run folder, each written atomically."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.atomic import atomic_write, atomic_write_text, open_exclusive
from refinelab.graph.review import recorded
from refinelab.io import write_jsonl
from refinelab.metrics.divergence import difficulty_distribution, jensen_shannon, normalise
from refinelab.operations import cleared_error, writes_new_item
from refinelab.run_layout import CHANGES, REFINED, REPORT_JSON
from refinelab.schema import Cell, QAItem
from refinelab.state import GAVE_UP


class _Figures:
    """What `metrics` needs of a set of items, gathered one item at a time: the cells counted, the
    difficulty scores and the p_error of each item (floats), never the items themselves, so finalize
    streams 100k items from the store instead of holding them (and their diagnostics) all at once."""

    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.items = 0
        self.cells: Counter[Cell] = Counter()
        self.scores: list[float] = []
        self.p_errors: list[float] = []

    def add(self, item: QAItem) -> None:
        self.items += 1
        self.cells[item.cell] += 1
        if item.difficulty is not None:
            self.scores.append(item.difficulty)
        # An edit that settles the error it was bought for (a committed or confirmed fix, on independent
        # evidence: fix_evidence.py) counts the item 0; any other keeps the p_error the profile measured
        # (`Operation.clears_error`). A new item has no measured p_error.
        error = self.ctx.store.diagnostic(item.id, "error")
        counted = not (cleared_error(item.provenance.created_by) or cleared_error(item.provenance.confirmed_by))
        self.p_errors.append(float(error.evidence.get("p_error", 0)) if error and counted else 0.0)

    def metrics(self) -> dict[str, Any]:
        targets = self.ctx.targets
        coverage = {cell.key: p for cell, p in normalise(self.cells).items()} if self.items else {}
        target_cov = ({cell.key: p for cell, p in targets.coverage_cells().items()}
                      if targets.coverage else {k: 1 / len(coverage) for k in coverage})
        difficulty = (difficulty_distribution(self.scores, targets.thresholds, targets.buckets) if self.scores
                      else dict.fromkeys(targets.buckets, 0.0))
        target_diff = targets.difficulty or {b: 1 / len(targets.buckets) for b in targets.buckets}
        return {
            "items": self.items,
            "coverage_jsd": jensen_shannon(coverage, target_cov) if coverage else None,
            "difficulty_jsd": jensen_shannon(difficulty, target_diff) if any(difficulty.values()) else None,
            "expected_errors": round(sum(self.p_errors), 4),
            "coverage": coverage, "difficulty": difficulty,
        }


def metrics(ctx: AgentContext, items: Iterable[QAItem]) -> dict[str, Any]:
    """The headline figures of a set of items against the run's targets (report.json before/after)."""
    figures = _Figures(ctx)
    for item in items:
        figures.add(item)
    return figures.metrics()


def _original(ctx: AgentContext, item_id: str) -> QAItem | None:
    """An input item as it came in, with the labels profiling measured (None for a new item)."""
    raw = ctx.store.original_item(item_id)
    return QAItem.model_validate_json(raw) if raw is not None else None


def change_lines(ctx: AgentContext, edits: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One line per attempt; a reviewed edit's last attempt carries `review` (decision, by, at, kind), and a
    decision on a flagged item no edit fixed is a line of its own (operation `review`). Lines are made one
    at a time, as `edits` (a stream from the store) gives them. An edit's last attempt also carries its
    `outcome` (committed, confirmed, gave_up; see `refinelab.state`)."""
    decisions = recorded(ctx)
    finals = {o["edit_id"]: (o["attempts"] - 1, o["status"]) for o in ctx.store.iter_outcomes()}
    for e in edits:
        line = {k: e[k] for k in ("edit_id", "round", "attempt", "item_id", "operation", "target",
                                  "before", "after", "verdict", "reason", "evidence", "tokens")}
        last_attempt, outcome = finals.get(e["edit_id"], (None, None))
        if last_attempt == e["attempt"]:
            line["outcome"] = outcome
        case = decisions.get(e["edit_id"])
        if case is not None and case["request"].get("attempt") == e["attempt"]:
            line["review"] = {"kind": case["request"]["kind"], **case["decision"]}
        yield json.dumps(line, ensure_ascii=False)
    for key, case in decisions.items():
        request = case["request"]
        if request["kind"] != "unfixable":
            continue
        before = _original(ctx, request["item_id"])
        after = ctx.store.item(request["item_id"]) if ctx.store.status(request["item_id"]) != "removed" else None
        yield json.dumps({
            "edit_id": key, "round": None, "attempt": 0, "item_id": request["item_id"], "operation": "review",
            "target": "", "before": before.model_dump() if before else None,
            "after": after.model_dump() if after else None, "verdict": case["decision"]["decision"],
            "reason": request["reason"], "evidence": {"method": "screening"}, "tokens": 0,
            "review": {"kind": "unfixable", **case["decision"]}}, ensure_ascii=False)


def write_outputs(ctx: AgentContext, state: dict[str, Any]) -> dict[str, Path]:
    """The three outputs, streamed from the run store: no list of every item, edit or outcome is built
    (at 100k items those lists were most of a run's peak memory); what the report needs is tallied on
    the way. Written in this order, each to a temporary file moved into place whole, so a failure part-way
    leaves every output either whole or as it was: never half-written."""
    refined = _Refined(ctx)
    paths = {"refined": write_jsonl(refined, ctx.run_dir / REFINED)}
    paths["changes"] = _write_changes(ctx)
    report = _report(ctx, state, refined)  # after refined.jsonl: `refined` has tallied the items written
    atomic_write_text(ctx.run_dir / REPORT_JSON, json.dumps(report, indent=2, ensure_ascii=False, default=str))
    paths["report"] = ctx.run_dir / REPORT_JSON
    ctx.tracer.flush()
    return paths


class _Refined:
    """The items refined.jsonl holds (kept, edited, new), streamed from the store and tallied as they go
    by: the report's figures after and its count of new items come from the one pass that writes them,
    so the items are read once and never held. The tallies are complete once the iteration ends."""

    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.figures = _Figures(ctx)
        self.new_items = 0

    def __iter__(self) -> Iterator[QAItem]:
        for item in self.ctx.store.iter_items(("kept", "edited", "new")):
            self.figures.add(item)
            self.new_items += writes_new_item(item.provenance.created_by)
            yield item


def _write_changes(ctx: AgentContext) -> Path:
    """changes.jsonl: a line per edit attempt and per review decision (`change_lines`), streamed into a
    temporary file that replaces the old one only when complete."""

    def write(tmp: Path) -> None:
        with open_exclusive(tmp) as handle:
            for line in change_lines(ctx, ctx.store.iter_edits()):
                handle.write(line + "\n")

    return atomic_write(ctx.run_dir / CHANGES, write)


def _report(ctx: AgentContext, state: dict[str, Any], refined: _Refined) -> dict[str, Any]:
    """report.json's content (its keys in the order the file shows them): the graph's state, the store's
    figures on the input, the edits and the reviews, the ledger; `refined` the tallies of refined.jsonl,
    already written."""
    by_status, invalid = _input_statuses(ctx)
    outcomes, gave_up = _edit_outcomes(ctx)
    return {
        "run_id": state.get("run_id"),
        "stop_reason": state.get("stop_reason", ""),
        "rounds": len(state.get("plans", [])),
        "input_items": sum(by_status.values()),
        "items_by_status": dict(by_status),
        "new_items": refined.new_items,
        "output_items": refined.figures.items,
        "invalid_input": invalid,
        # the items found in the reference `refine --decontaminate` named, removed before profiling
        # (api/decontamination.py): counts by kind; each removal is a `remove` line in changes.jsonl
        "decontamination": ctx.store.get_meta("decontamination"),
        "edits": {"attempts": ctx.store.count_edits(), "outcomes": dict(outcomes)},
        "gave_up": gave_up,
        "unfixed_flagged_items": _unfixed_flags(ctx),
        "metrics_before": metrics(ctx, _input_items(ctx)),
        "metrics_after": refined.figures.metrics(),
        "plans": state.get("plans", []),
        "reviews": dict(Counter(f"{r['request']['kind']}:{r['decision']['decision']}"
                                for r in recorded(ctx).values())),
        "ledger": ctx.ledger.summary(),
        # what profiling was forecast to cost before it started (a lower bound: agents/profile_cost.py),
        # beside the ledger's by_node["profile"], and what the user was told when it was most of the budget
        "profile_forecast": ctx.store.get_meta("profile_forecast"),
        "notices": [n for n in (ctx.store.get_meta("profile_notice"),) if n],
    }


def _input_items(ctx: AgentContext) -> Iterator[QAItem]:
    """The input items as they came in (with the labels profiling measured), one at a time: the figures
    before are those of the set the user gave, whatever the run did to it."""
    for raw in ctx.store.iter_original_items():
        yield QAItem.model_validate_json(raw)


def _input_statuses(ctx: AgentContext) -> tuple[Counter[str], list[dict[str, Any]]]:
    """How the input rows ended, counted by status (kept, edited, removed, failed), and each row that
    failed validation with its reason: a quarantined row is in no output, so the report names it."""
    by_status, invalid = Counter[str](), []
    for item_id, status, reason in ctx.store.iter_originals():
        by_status[status] += 1
        if status == "failed":
            invalid.append({"id": item_id, "reason": reason})
    return by_status, invalid


def _edit_outcomes(ctx: AgentContext) -> tuple[Counter[str], list[dict[str, Any]]]:
    """Each edit's outcome counted as `operation:status`, and in full (item, attempts, reason) those of
    the edits that gave up: their item was kept as it was, and the count alone would not say which."""
    outcomes, gave_up = Counter[str](), []
    for o in ctx.store.iter_outcomes():
        outcomes[f"{o['operation']}:{o['status']}"] += 1
        if o["status"] == GAVE_UP:
            gave_up.append(o)
    return outcomes, gave_up


def _unfixed_flags(ctx: AgentContext) -> list[dict[str, Any]]:
    """The items screening flagged as likely wrong that no edit settled, each with its p_error and error
    type: they are in refined.jsonl as they came in, so the report says which to look at."""
    return [{"item_id": d.item_id, "p_error": d.evidence.get("p_error"), "error_type": d.evidence.get("error_type")}
            for d in ctx.store.unsettled_flags()]
