"""Profile a dataset: measure it against targets without planning or editing anything.

Profiling runs the same profiler agent as the graph's profile node, in its own folder (store, ledger,
trace), so a later `refine` of the same data can reuse the response cache. `profile.json` holds per-item
diagnostics, the per-check summary, coverage and difficulty distributions with their JSD to the targets,
and the token ledger by component (operation), node and model.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.agents.options import RunHooks, RunOptions
from refinelab.agents.profiler import profile_items
from refinelab.api.context import working_folder
from refinelab.api.run_settings import validate_budget
from refinelab.api.runs import checked_options
from refinelab.atomic import atomic_write_text
from refinelab.config import Settings, load_settings
from refinelab.io import DatasetInput, as_dataset, require_items
from refinelab.metrics.divergence import coverage_distribution, difficulty_distribution, divergence_report
from refinelab.metrics.summary import summarise
from refinelab.metrics.targets import Targets, as_targets
from refinelab.run_layout import PROFILE_JSON
from refinelab.schema import Dataset, QAItem


@dataclass
class ProfileResult:
    """What a profiling run produced; `report` is what profile.json holds.

    The repr is one line (folder, items, stop, tokens): the report holds ~1.5 KB per item, and the whole of it
    printed as a notebook cell's last expression flooded the cell."""

    out_dir: Path
    report: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def path(self) -> Path:
        return self.out_dir / PROFILE_JSON

    def __repr__(self) -> str:
        report = self.report
        spent = (report.get("ledger") or {}).get("spent")
        return (f"ProfileResult(out_dir={str(self.out_dir)!r}, items={report.get('items')}, "
                f"profiled={report.get('profiled')}, stop={report.get('stop_reason')!r}, "
                f"spent={spent if spent is None else f'{spent:,}'})")


def distributions(items: list[QAItem], targets: Targets) -> dict[str, Any]:
    """Coverage and difficulty distributions of the labelled items, with JSD and gaps to the targets."""
    def cell(c: Any) -> str:
        return " × ".join(c) if isinstance(c, tuple) else str(c)

    result: dict[str, Any] = {}
    coverage = coverage_distribution(items) if items else {}
    cov: dict[str, Any] = {"observed": {cell(c): round(p, 4) for c, p in sorted(coverage.items())}}
    if targets.coverage and coverage:
        report = divergence_report(coverage, targets.coverage_cells())
        cov |= {"target": {cell(c): round(p, 4) for c, p in sorted(targets.coverage_cells().items())},
                "jsd": round(float(report["jsd"]), 4),  # type: ignore[arg-type]
                "largest_gaps": [[cell(c), round(g, 4)] for c, g in report["gaps"][:5]]}  # type: ignore[index]
    result["coverage"] = cov
    scores = [i.difficulty for i in items if i.difficulty is not None]
    diff: dict[str, Any] = {"scored": len(scores)}
    if scores:
        observed = difficulty_distribution(scores, targets.thresholds, targets.buckets)
        diff["observed"] = {k: round(v, 4) for k, v in observed.items()}
        diff["mean"] = round(sum(scores) / len(scores), 4)
        if targets.difficulty:
            diff["target"] = {k: round(v, 4) for k, v in targets.difficulty.items()}
            diff["jsd"] = round(float(divergence_report(observed, targets.difficulty)["jsd"]), 4)  # type: ignore[arg-type]
    result["difficulty"] = diff
    return result


def profile(
    data: DatasetInput,
    *,
    out_dir: str | Path | None = None,
    targets: Targets | str | Path | Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    budget: int | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    hooks: RunHooks | None = None,
    prompts_dir: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    columns: Mapping[str, str | list[str]] | None = None,
    format: str | None = None,
    split: str | None = None,
    strict: bool = False,
) -> ProfileResult:
    """Profile `data` into `out_dir` (default `settings.runs_dir/profile-TIME`) and write profile.json.
    Re-running into the same folder skips everything already measured (and a larger budget continues
    where a smaller one stopped).

    `data` takes what `refine` takes: a path, our `Dataset`, a `datasets.Dataset`, a pandas DataFrame or a
    list of dicts. Bad input (data, budget, targets, options) raises `DataError` or `ConfigError` before any
    folder is made: a folder left behind would be taken for a profile.

    Args:
        targets: the coverage and difficulty mix to measure against (a `Targets`, the path of a targets
            YAML file or a mapping of what one holds, as `refine` takes them); profile.json's distributions
            report their JSD to it. None: no targets, so the distributions are reported without a distance.
        budget: the most tokens profiling may use (paid and replayed from the cache); None: no cap. When it
            runs out the profile stops and says so (`stop_reason`); a re-run with more continues.
        options: `RunOptions` or a dict of them (the panel, checks, labeller) shaping what is measured.
        hooks: live objects instead of the configured ones (`RunHooks`: chat models, retriever, sandbox).
        progress: called as `progress(done, total)` after each item, for a progress bar.
        columns: our field → the input's column (or the CLI's `question=…,choices=A,B,…,answer=…` text).
        format: the file format of a path when its name does not say it (`jsonl`, `csv`, `mmlu`, …).
        split: which split of a folder or `DatasetDict` holding several (`test`, `val`).
        strict: refuse the whole input at its first invalid row; by default invalid rows are set aside
            and counted (`rejected_rows`), as a profile is often of raw data whose defects are the point."""
    if budget is not None:
        validate_budget(budget)
    targets = as_targets(targets)  # a targets file read before any folder: it may not parse
    dataset = as_dataset(data, format=format, columns=columns, split=split,
                         on_invalid="error" if strict else "quarantine")
    require_items(dataset, "profile")
    settings = settings or load_settings()
    out_dir = Path(out_dir) if out_dir is not None else settings.runs_dir / time.strftime("profile-%Y%m%d-%H%M%S")
    options = checked_options(options)
    with working_folder(out_dir, dataset.items, settings=settings, budget=budget, targets=targets, options=options,
                        hooks=hooks, prompts_dir=prompts_dir) as ctx:
        return profile_in(ctx, dataset, progress)


def profile_in(ctx: AgentContext, dataset: Dataset,
               progress: Callable[[int, int], None] | None = None) -> ProfileResult:
    """Profile `dataset` into the folder `ctx` holds (`working_folder`) and write its profile.json; the
    folder, settings, targets and options are the context's.

    `plan` profiles and plans in one hold of the folder, so no other process can take it in between."""
    out_dir, settings, targets, options = ctx.run_dir, ctx.settings, ctx.targets, ctx.options
    ctx.store.load_items(dataset.items)
    ctx.store.add_rejected(dataset.rejected)
    started = time.monotonic()
    with ctx.tracer.span("refinelab.profile", "chain", {"items": len(dataset)}, run_id=None) as root:
        with ctx.tracer.span("profile", "chain", {"items": len(dataset)}) as run:
            done, stop = profile_items(ctx, ctx.store.items(("kept",)), progress)
            run.outputs = {"profiled": done, "stop": stop}
        root.outputs = {"profiled": done, "spent": ctx.ledger.spent}
    ctx.tracer.flush()
    elapsed = time.monotonic() - started
    items = ctx.store.items(("kept",))
    diagnostics = ctx.store.diagnostics()
    per_item: dict[str, dict[str, Any]] = {}
    for d in diagnostics:
        per_item.setdefault(d.item_id, {})[d.check] = {"flag": d.flag, "score": round(d.score, 4),
                                                       "evidence": d.evidence}
    ledger = ctx.ledger.summary()
    summary = summarise(d for d in diagnostics if d.check not in ("label", "panel"))
    error_types = Counter(d.evidence.get("error_type") for d in diagnostics if d.check == "error" and d.flag)
    report = {
        "dataset": dataset.name, "items": len(items), "profiled": done, "rejected_rows": len(dataset.rejected),
        "stop_reason": stop, "elapsed_s": round(elapsed, 2),
        "options": options.model_dump(mode="json", exclude_defaults=True),
        "models": {"judge": settings.roles.judge.model},
        "targets": targets.model_dump(),
        "summary": summary.to_dict(), "flagged_error_types": dict(error_types),
        **distributions(items, targets),
        "ledger": ledger, "ledger_by_component": ledger["by_operation"],
        "items_detail": [
            {"id": i.id, "subject": i.subject, "domain": i.domain, "skill": i.skill, "difficulty": i.difficulty,
             "diagnostics": per_item.get(i.id, {})} for i in items
        ],
    }
    atomic_write_text(out_dir / PROFILE_JSON, json.dumps(report, indent=2, default=str))
    return ProfileResult(out_dir=out_dir, report=report)
