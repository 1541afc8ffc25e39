"""`refinelab profile`: measure a dataset against targets without planning or editing anything.

Profiling runs the same profiler agent as the graph's profile node, in its own run folder (store,
ledger, trace), so a later `refine` of the same data can reuse the response cache. `profile.json` holds
per-item diagnostics, the per-check summary, coverage and difficulty distributions with their JSD to the
targets, and the token ledger by component (operation), node and model.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from langchain_core.language_models import BaseChatModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from refinelab.agents.context import AgentContext
from refinelab.agents.difficulty import METHODS
from refinelab.agents.profiler import profile_items
from refinelab.atomic import atomic_write_text
from refinelab.cli_common import load_selection
from refinelab.config import Settings, load_settings
from refinelab.errors import RefineLabError, error_line
from refinelab.planner.divergence import (
    coverage_distribution,
    difficulty_distribution,
    divergence_report,
)
from refinelab.planner.summary import summarise
from refinelab.planner.targets import Targets
from refinelab.schema import Dataset, QAItem

console = Console(stderr=True)
out = Console()


@dataclass
class ProfileResult:
    """What a profiling run produced; `report` is what profile.json holds."""

    out_dir: Path
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.out_dir / "profile.json"


def profile_context(out_dir: Path, settings: Settings, budget: int | None, targets: Targets,
                    extras: dict[str, Any], chat_models: dict[str, BaseChatModel] | None = None,
                    prompts_dir: str | None = None) -> AgentContext:
    """A run context rooted at `out_dir` (run store + ledger + trace there)."""
    from refinelab.api import open_context

    return open_context(out_dir, settings, budget, targets, chat_models, prompts_dir, extras)


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


def run_profile(
    dataset: Dataset,
    *,
    out_dir: str | Path,
    targets: Targets | None = None,
    settings: Settings | None = None,
    budget: int | None = None,
    extras: dict[str, Any] | None = None,
    chat_models: dict[str, BaseChatModel] | None = None,
    prompts_dir: str | None = None,
    progress: Any = None,
) -> ProfileResult:
    """Profile `dataset` into `out_dir` and write profile.json. Re-running into the same folder skips
    everything already measured (and a larger budget continues where a smaller one stopped)."""
    settings = settings or load_settings()
    targets = targets or Targets()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = profile_context(out_dir, settings, budget, targets, extras or {}, chat_models, prompts_dir)
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
        "options": {k: v for k, v in (extras or {}).items() if isinstance(v, str | int | float | bool | list)},
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
    atomic_write_text(out_dir / "profile.json", json.dumps(report, indent=2, default=str))
    ctx.store.close()
    return ProfileResult(out_dir=out_dir, report=report)


def print_report(report: dict[str, Any]) -> None:
    """Rich tables: checks, distributions with JSD, and spend by component."""
    checks = Table(title=f"profile: {report['profiled']} of {report['items']} items, {report['elapsed_s']} s")
    for column in ("check", "items", "flagged", "%", "mean score", "min score"):
        checks.add_column(column, justify="left" if column == "check" else "right")
    for row in report["summary"]["checks"]:
        checks.add_row(str(row["check"]), str(row["items"]), str(row["flagged"]), str(row["flagged_pct"]),
                       f"{row['mean_score']:.3f}", f"{row['min_score']:.3f}")
    out.print(checks)
    if report["flagged_error_types"]:
        out.print("flagged error types: " + ", ".join(f"{k} {v}" for k, v in report["flagged_error_types"].items()))
    diff = report["difficulty"]
    if diff.get("observed"):
        table = Table(title=f"difficulty (mean {diff['mean']}; JSD to target {diff.get('jsd', '—')})")
        table.add_column("bucket")
        table.add_column("observed", justify="right")
        table.add_column("target", justify="right")
        for bucket, share in diff["observed"].items():
            table.add_row(bucket, f"{share:.3f}", f"{diff.get('target', {}).get(bucket, float('nan')):.3f}")
        out.print(table)
    cov = report["coverage"]
    if cov.get("observed"):
        table = Table(title=f"coverage (JSD to target {cov.get('jsd', '—')})")
        for column in ("domain × skill", "observed", "target"):
            table.add_column(column, justify="left" if column == "domain × skill" else "right")
        cells = sorted(set(cov["observed"]) | set(cov.get("target", {})))
        for c in cells:
            target = cov.get("target", {}).get(c)
            table.add_row(c, f"{cov['observed'].get(c, 0.0):.3f}", "—" if target is None else f"{target:.3f}")
        out.print(table)
    ledger = report["ledger"]
    spend = Table(title=f"tokens by component: {ledger['spent']} spent in {ledger['calls']} calls"
                        + (f" (cap {ledger['cap']})" if ledger["cap"] else ""))
    for column in ("component", "calls", "tokens"):
        spend.add_column(column, justify="left" if column == "component" else "right")
    for name, slot in sorted(report["ledger_by_component"].items()):
        spend.add_row(name, str(slot["calls"]), str(slot["tokens"]))
    out.print(spend)
    if report["stop_reason"]:
        out.print(f"[yellow]stopped early:[/yellow] {report['stop_reason']}")


def profile_command(
    data: Annotated[Path, typer.Argument(help="dataset file or folder")],
    targets: Annotated[Path | None, typer.Option(help="targets YAML (coverage / difficulty)")] = None,
    subjects: Annotated[str | None, typer.Option(help="comma-separated subjects to keep")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many items, spread over subjects")] = None,
    budget: Annotated[int | None, typer.Option(help="token cap for profiling (default: none)")] = None,
    difficulty: Annotated[str, typer.Option(help="rating | elo | irt")] = "rating",
    panel: Annotated[str | None, typer.Option(help="comma-separated panel models (embedded names, "
                                                   "'judge', or MODEL@URL)")] = None,
    distractors: Annotated[bool, typer.Option("--distractors", help="score distractors with MiniLM")] = False,
    no_validator: Annotated[bool, typer.Option("--no-validator", help="skip the validator on suspects")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="output folder (default runs/profile-TIME)")] = None,
    format: Annotated[str | None, typer.Option(help="jsonl | mmlu | arc | parquet | csv")] = None,
    config: Annotated[Path | None, typer.Option(help="settings YAML")] = None,
    prompts: Annotated[Path | None, typer.Option(help="folder overriding prompts / packs")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not reuse cached responses")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print profile.json's headline as JSON")] = False,
) -> None:
    """Profile DATA (labels, difficulty, error screening, distractors) and write profile.json; no edits."""

    if difficulty not in METHODS:
        console.print(f"[red]error:[/red] --difficulty must be one of {', '.join(METHODS)}")
        raise typer.Exit(2)
    extras: dict[str, Any] = {"difficulty_method": difficulty, "distractors": distractors}
    if panel:
        extras["panel"] = [m.strip() for m in panel.split(",") if m.strip()]
    if no_validator:
        extras["validate_suspects"] = False
    try:
        settings = load_settings(config, {"use_cache": False} if no_cache else None)
    except RefineLabError as exc:
        console.print(f"[red]error:[/red] {escape(error_line(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    dataset, resolved = load_selection(data, format, subjects, limit, targets, console)
    folder = out_dir or Path(settings.runs_dir) / time.strftime("profile-%Y%m%d-%H%M%S")
    bar = None if quiet or as_json else Progress(
        TextColumn("profile"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    try:
        if bar is not None:
            bar.start()
            task = bar.add_task("profile", total=len(dataset))
        result = run_profile(dataset, out_dir=folder, targets=resolved, settings=settings, budget=budget,
                             extras=extras, prompts_dir=str(prompts) if prompts else None,
                             progress=(lambda done, total: bar.update(task, completed=done)) if bar else None)
    except RefineLabError as exc:
        console.print(f"[red]error:[/red] {escape(error_line(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    finally:
        if bar is not None:
            bar.stop()
    report = result.report
    if as_json:
        headline = {k: report[k] for k in ("dataset", "items", "profiled", "stop_reason", "elapsed_s",
                                           "summary", "coverage", "difficulty", "ledger_by_component")}
        out.print_json(json.dumps(headline | {"spent": report["ledger"]["spent"], "path": str(result.path)},
                                  default=str))
        return
    print_report(report)
    out.print(f"profile: {result.path}")
