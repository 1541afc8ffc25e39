"""Human review of a paused run: list the pending cases, decide them, resume; export/import the queue.

A run started with `review="ask"` stops at LangGraph `interrupt()`s (graph/review.py). `pending_reviews`
reads them from the run's checkpoints and fills in what a person needs from the store: the item before and
after, the evidence, the model's reasons. `decide` maps decisions to the interrupts by case key (an edit id,
or `item:ID`) and resumes the graph with `Command(resume={interrupt_id: decision})`; cases left undecided
(or `skip`ped) stay pending for the next call. `export_queue`/`read_decisions` carry the same queue as
JSONL, for review in another tool.
"""

from __future__ import annotations

import getpass
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from langgraph.types import Command

from refinelab.agents.context import AgentContext
from refinelab.agents.options import RunHooks
from refinelab.api.context import close_run_context
from refinelab.api.runs import (
    ProgressCallback,
    RunResult,
    as_hooks,
    checkpointer,
    claim_run,
    run_graph,
    saved_context,
)
from refinelab.atomic import atomic_write_text
from refinelab.errors import DataError
from refinelab.graph.build import build_graph
from refinelab.graph.review import ReviewDecision, ReviewRequest, edited_item, parse_decision, recorded
from refinelab.safeload import loads_json
from refinelab.schema import QAItem

T = TypeVar("T")

MAX_QUEUE_BYTES = 64 * 1024 * 1024
DECISION_FIELDS = ("key", "decision", "by", "at", "note", "item")


@dataclass
class ReviewCase:
    """One pending decision, with everything a reviewer needs to make it."""

    interrupt_id: str
    request: ReviewRequest
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # the validator's reason, then the models' reasoning

    @property
    def key(self) -> str:
        return self.request.key

    def to_json(self) -> dict[str, Any]:
        """The case as one line of an exported queue (`decision` left for the reviewer to fill in)."""
        return {"key": self.key, "kind": self.request.kind, "item_id": self.request.item_id,
                "operation": self.request.operation, "before": self.before, "after": self.after,
                "reasons": self.reasons, "evidence": self.evidence, "decision": None}


def _reasons(reason: str, evidence: dict[str, Any]) -> list[str]:
    """The validator's reason, then every `reasoning` a model gave in the evidence (nested fallbacks too)."""
    out = [reason] if reason else []
    stack = [evidence]
    while stack:
        node = stack.pop()
        for key, value in node.items():
            if key == "reasoning" and isinstance(value, str) and value.strip():
                out.append(value.strip())
            elif isinstance(value, dict):
                stack.append(value)
    return out


def _case(ctx: AgentContext, interrupt_id: str, value: Any) -> ReviewCase:
    request = ReviewRequest.model_validate(value)
    if request.kind == "unfixable":
        before = ctx.store.item(request.item_id).model_dump()
        diagnostic = ctx.store.diagnostic(request.item_id, "error")
        evidence = dict(diagnostic.evidence) if diagnostic else {}
        return ReviewCase(interrupt_id, request, before, None, evidence, _reasons(request.reason, evidence))
    attempts = [e for e in ctx.store.edits() if e["edit_id"] == request.edit_id and e["attempt"] == request.attempt]
    edit = attempts[-1] if attempts else {}
    evidence = edit.get("evidence") or {}
    return ReviewCase(interrupt_id, request, edit.get("before"), edit.get("after"), evidence,
                      _reasons(request.reason, evidence))


def _cases(ctx: AgentContext, thread_id: str) -> list[ReviewCase]:
    with checkpointer(ctx.run_dir) as saver:
        state = build_graph(checkpointer=saver).get_state({"configurable": {"thread_id": thread_id}})
    return sorted((_case(ctx, i.id, i.value) for i in state.interrupts), key=lambda c: c.key)


def _read_run(run_id: str | Path, runs_dir: str | Path | None, trust: bool,
              read: Callable[[AgentContext, str], T]) -> T:
    """`read(ctx, thread id)` on the saved run `run_id` (an id or a path, `runs.claim_run`), its handles
    closed after: a listing holds no connection while someone else decides and resumes the run."""
    folder = claim_run(run_id, runs_dir, trust=trust)
    try:
        ctx = saved_context(folder, None, references=False)
        try:
            return read(ctx, folder.identity)
        finally:
            close_run_context(ctx)
    finally:
        folder.release()


def pending_reviews(run_id: str | Path, *, runs_dir: str | Path | None = None,
                    trust: bool = False) -> list[ReviewCase]:
    """The decisions run `run_id` waits for (empty when it is not paused at review). `run_id` is the run's id
    in `runs_dir` (default the configured runs folder, where `refine` wrote it) or a path to its folder, in
    this module's every function; a missing run is `RunNotFound`."""
    return _read_run(run_id, runs_dir, trust, _cases)


def decided_by_policy(run_id: str | Path, *, runs_dir: str | Path | None = None,
                      trust: bool = False) -> dict[str, int]:
    """How many cases run `run_id`'s review policy (`--review auto-reject`, the default, or auto-accept)
    decided without a person, by "kind:decision": what `refinelab review` points to when nothing is
    pending, so a user looking for the items the run could not fix learns where they went."""

    def count(ctx: AgentContext, _thread: str) -> dict[str, int]:
        tally: Counter[str] = Counter()
        for case in recorded(ctx).values():
            request, decision = (case.get("request"), case.get("decision")) if isinstance(case, dict) else (None, None)
            if isinstance(request, dict) and isinstance(decision, dict) and str(decision.get("by", "")).startswith("policy:"):
                tally[f"{request.get('kind')}:{decision.get('decision')}"] += 1
        return dict(tally)

    return _read_run(run_id, runs_dir, trust, count)


def decide(run_id: str | Path, decisions: Iterable[ReviewDecision | dict[str, Any]], *,
           runs_dir: str | Path | None = None, reviewer: str | None = None,
           hooks: RunHooks | dict[str, Any] | None = None, on_event: ProgressCallback | None = None,
           trust: bool = False) -> RunResult:
    """Apply `decisions` (by case key) to the paused run and resume it; the result says what is still
    pending. Every decision is checked (known key, a valid edited item) before anything resumes. `hooks` and
    `on_event` as `resume` takes them."""
    parsed = [parse_decision(d, f"decision {n}") for n, d in enumerate(decisions, 1)]
    who = reviewer or getpass.getuser()
    hooks = as_hooks(hooks)
    folder = claim_run(run_id, runs_dir, trust=trust)
    run_id = folder.path.name  # a path names the run by its folder, as `resume` and the result do
    try:
        ctx = saved_context(folder, hooks, on_event)
        try:
            cases = {c.key: c for c in _cases(ctx, folder.identity)}
            if not cases:  # a finished or stopped run: resuming it with nothing would report a run of nothing
                raise ValueError(f"run {run_id} waits for no review decision (it is not paused at review)")
            resume: dict[str, Any] = {}
            for decision in parsed:
                case = cases.get(decision.key)
                if case is None:
                    raise ValueError(f"run {run_id}: no pending review case {decision.key!r}; pending: "
                                     f"{sorted(cases)[:10]}")
                if decision.decision == "skip":
                    continue
                if decision.decision == "edit":
                    base = case.after or case.before
                    if base is None:
                        raise ValueError(f"review case {decision.key!r}: nothing to edit")
                    edited_item(QAItem.model_validate(base), decision, case.request.operation or "review")
                resume[case.interrupt_id] = decision.stamped(who).model_dump(exclude_none=True)
            if not resume:
                return RunResult(run_id=run_id, run_dir=folder.path, pending_review=len(cases))
            ctx.ledger.abandon_in_flight()
            return run_graph(ctx, run_id, Command(resume=resume), on_event, thread_id=folder.identity)
        finally:
            close_run_context(ctx)
    finally:
        folder.release()


def export_queue(run_id: str | Path, path: str | Path, *, runs_dir: str | Path | None = None,
                 trust: bool = False) -> int:
    """Write the pending cases as JSONL (one case a line, `decision: null`); returns how many."""
    cases = pending_reviews(run_id, runs_dir=runs_dir, trust=trust)
    atomic_write_text(Path(path), "".join(json.dumps(c.to_json(), ensure_ascii=False, default=str, allow_nan=False) + "\n"
                                          for c in cases))
    return len(cases)


def read_decisions(path: str | Path) -> list[ReviewDecision]:
    """Decisions from a JSONL file: an exported queue with `decision` filled in, or bare decision lines.
    Lines whose decision is empty are skipped; a malformed one, a line that is no decision at all (no
    `decision` field) and a file without one decision are each a DataError naming file, line and field: such
    a file used to resume nothing and print a run "finished: None" with exit 0."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_QUEUE_BYTES:
            raise DataError(str(path), None, None, f"larger than {MAX_QUEUE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(str(path), None, None, "not found") from None
    except IsADirectoryError:
        raise DataError(str(path), None, None, "is a folder, not a JSONL file of decisions") from None
    except OSError as exc:
        raise DataError(str(path), None, None, f"cannot be read ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise DataError(str(path), None, None, "not valid UTF-8 text") from None
    out = []
    for row, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        record = loads_json(line, str(path), row)
        if not isinstance(record, dict):
            raise DataError(str(path), row, None, "expected a JSON object")
        if "decision" not in record:
            raise DataError(str(path), row, "decision", "missing: each line is a case of `refinelab review "
                            "--export` with its decision filled in, or {\"key\": ..., \"decision\": ...}")
        if record.get("decision") in (None, ""):
            continue
        if not isinstance(record.get("key"), str) or not record["key"]:
            raise DataError(str(path), row, "key", "missing: the case key from the exported queue")
        try:
            out.append(parse_decision({k: record[k] for k in DECISION_FIELDS if k in record}, "line"))
        except ValueError as exc:
            field_name = str(exc).split("field ", 1)[-1].split(":", 1)[0]
            raise DataError(str(path), row, field_name, str(exc).split(": ", 2)[-1]) from None
    if not out:
        raise DataError(str(path), None, None, "holds no decision: fill in \"decision\" (accept, reject, edit or "
                        "skip) on the cases to decide")
    return out
