"""`report.html`: one self-contained page that shows what a run changed, what it cost and why.

Everything the page needs is inside it: plots are matplotlib SVG inlined into the document (glyphs as
paths, ids made unique per figure, comments stripped), CSS is inline, there is no script and nothing is
fetched. Dataset text is untrusted (it comes from user files and model outputs), so the page is built with
an autoescaping Jinja environment and the only markup that bypasses escaping is the SVG we render ourselves
and diff markup whose pieces are escaped as they are joined.

This module loads the run folder and assembles the page; the figures are drawn in `report_plots`, the edit
views and word diff in `report_views`, and the page template is `templates/report.html.j2`.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

from jinja2 import Environment
from markupsafe import Markup
from pydantic import ValidationError

from refinelab.api.report_plots import (
    Plots,
    budget_chart,
    coverage_heatmap,
    difficulty_histogram,
    ledger_tokens,
    operations_chart,
)
from refinelab.api.report_views import MAX_EXAMPLES_PER_OP, edit_groups, edit_outcome, pick_examples
from refinelab.api.run_files import read_changes, read_report, read_run_json
from refinelab.atomic import atomic_write_text, open_regular
from refinelab.errors import DataError, validation_problem
from refinelab.run_layout import REFINED, REPORT_HTML, REPORT_JSON, SETTINGS
from refinelab.safeload import loads_json

MAX_TABLE_ROWS = 500  # longer lists are cut, with a pointer to the JSONL file


class ReportError(FileNotFoundError):
    """The folder is not a finished run folder (no report.json) or report.json is unreadable."""


# ---------------------------------------------------------------------------------------------- loading


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a missing file is an empty list (older runs, or a run that wrote none)."""
    if not path.exists():
        return []
    rows = []
    try:
        with open_regular(path) as file:  # a pipe planted in the folder would block a plain read
            text = file.read().decode("utf-8")
    except DataError as exc:
        raise ReportError(str(exc)) from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not valid UTF-8 text") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(loads_json(line, str(path), number))
        except DataError as exc:
            raise ReportError(str(exc)) from None
    return rows


def _changes(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return read_changes(run_dir)
    except DataError as exc:
        raise ReportError(str(exc)) from None


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """report.json (required), changes.jsonl, refined.jsonl and the run's targets, as plain data."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"run folder not found: {run_dir}")
    report_path = run_dir / REPORT_JSON
    if not report_path.exists():
        raise ReportError(
            f"{run_dir} has no report.json: it is not a finished RefineLab run folder "
            "(report.json is written when a run finalizes; finish a stopped run with `refinelab resume`)")
    try:
        report = read_report(run_dir)
        targets = _targets(run_dir / SETTINGS, read_run_json(run_dir / SETTINGS).get("targets") or {})
    except DataError as exc:  # a damaged settings.json is named, not drawn as a report without its targets
        raise ReportError(str(exc)) from None
    return {"dir": run_dir, "report": report, "changes": _changes(run_dir),
            "refined": _read_jsonl(run_dir / REFINED), "targets": targets}


def _targets(path: Path, raw: Any) -> dict[str, Any]:
    """settings.json's `targets` as the plots read them, checked against `Targets` (what a run writes there):
    a share that is no number, or a bucket that is no string, crashed the figures with a TypeError or
    ValueError (exit 1) instead of a one-line `DataError` naming the file and field. Only the keys present
    are kept, so a run without targets still draws its defaults (uniform, observed buckets)."""
    from refinelab.metrics.targets import Targets

    if not isinstance(raw, dict):
        raise DataError(str(path), None, "targets", "expected a JSON object")
    try:
        targets = Targets.model_validate(raw)
    except ValidationError as exc:
        field, message = validation_problem(exc.errors()[0])
        raise DataError(str(path), None, f"targets.{field}".rstrip("."), message) from None
    shares = {f"coverage.{d}.{k}": p for d, row in (targets.coverage or {}).items() for k, p in row.items()}
    shares.update({f"difficulty.{b}": p for b, p in (targets.difficulty or {}).items()})
    for field, share in shares.items():  # 1e999 reads as infinity, and a share's count overflowed
        if not math.isfinite(share):
            raise DataError(str(path), None, f"targets.{field}", "expected a finite number")
    return targets.model_dump(exclude_unset=True)


# ---------------------------------------------------------------------------------------------- page


def _reduction(before: Any, after: Any) -> str:
    if not isinstance(before, int | float) or not isinstance(after, int | float):
        return ""
    if before <= 0:
        return ""
    return f"{(before - after) / before:+.0%}".replace("+", "−", 1) if after < before else \
        f"+{(after - before) / before:.0%}"


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def build_context(run: dict[str, Any]) -> dict[str, Any]:
    """Everything the template needs, computed from the run's files. The edits are grouped, and the ids of
    those given up collected, once here: the operations chart, the examples and the edit table all read them."""
    report = run["report"]
    ledger = report.get("ledger") or {}
    plans = [p for p in (report.get("plans") or []) if isinstance(p, dict)]
    gave_up_rows = [g for g in (report.get("gave_up") or []) if isinstance(g, dict)]
    gave_up = {str(g.get("edit_id")) for g in gave_up_rows}
    groups = edit_groups(run["changes"])
    figures, notes, op_rows = _figures(run, plans, groups, gave_up)
    unfixed = _unfixed_rows(report, run["refined"])
    return {
        "run_id": report.get("run_id") or run["dir"].name,
        "run_dir": str(run["dir"]),
        "stop_reason": report.get("stop_reason", ""),
        # what the run told the user before it spent (e.g. profiling taking most of the budget); untrusted
        # text from the run folder, escaped by the template
        "notices": [n for n in (report.get("notices") or []) if isinstance(n, str)][:5],
        "summary": _summary_rows(report, ledger),
        "by_status": report.get("items_by_status") or {},
        "outcomes": (report.get("edits") or {}).get("outcomes") or {},
        "metrics": _metric_rows(report.get("metrics_before") or {}, report.get("metrics_after") or {}),
        "figures": figures,
        "ledger": ledger,
        "ledger_tables": [(name, sorted((ledger.get(key) or {}).items(), key=lambda kv: -ledger_tokens(kv[1])))
                          for name, key in (("node", "by_node"), ("operation", "by_operation"), ("model", "by_model"))],
        "ledger_counters": [(k, ledger.get(k)) for k in ("calls", "retries", "parse_failures", "failed_calls",
                                                          "overrun_calls", "prompt_tokens", "cached_prompt_tokens")
                            if k in ledger],
        "plans": _plan_rows(plans),
        "figure_notes": notes,
        "op_rows": op_rows[:MAX_TABLE_ROWS],
        "op_rows_total": len(op_rows),
        "examples": pick_examples(groups, gave_up),
        "all_edits": _edit_rows(groups, gave_up),
        "edits_total": len(groups),
        "max_rows": MAX_TABLE_ROWS,
        "per_op": MAX_EXAMPLES_PER_OP,
        "unfixed": unfixed[:MAX_TABLE_ROWS],
        "unfixed_total": len(unfixed),
        "gave_up": gave_up_rows[:MAX_TABLE_ROWS],
        "gave_up_total": len(gave_up_rows),
        "invalid": (report.get("invalid_input") or [])[:MAX_TABLE_ROWS],
        "invalid_total": len(report.get("invalid_input") or []),
        "budget_stopped": "budget" in str(report.get("stop_reason", "")).lower(),
        "targets_note": _targets_note(run["targets"]),
    }


def _figures(run: dict[str, Any], plans: list[dict[str, Any]], groups: dict[str, list[dict[str, Any]]],
             gave_up: set[str]) -> tuple[dict[str, Markup], dict[str, str], list[dict[str, Any]]]:
    """The page's figures, with a note per figure on what it left out or summed ("" when it draws
    everything), and the operations table, which comes from the same counts as its chart. Drawn in page
    order from one `Plots`, which numbers them: the number keeps each figure's SVG ids apart from the others'.
    The coverage heatmap is left out (an empty figure) when neither side has coverage."""
    report = run["report"]
    before = report.get("metrics_before") or {}
    after = report.get("metrics_after") or {}
    plots = Plots()
    figures: dict[str, Markup] = {"coverage": Markup("")}
    notes: dict[str, str] = {}
    if before.get("coverage") or after.get("coverage"):
        figures["coverage"], notes["coverage"] = coverage_heatmap(plots, before, after, run["targets"])
    figures["difficulty"], notes["difficulty"] = difficulty_histogram(plots, before, after, run["targets"])
    figures["budget"] = budget_chart(plots, report.get("ledger") or {})
    figures["operations"], op_rows, notes["operations"] = operations_chart(plots, plans, groups, gave_up)
    return figures, notes, op_rows


def _summary_rows(report: dict[str, Any], ledger: dict[str, Any]) -> list[tuple[str, Any]]:
    """The run at a glance (label, value); spend reads "spent / cap" only when both are whole numbers, as a
    report.json from elsewhere may lack either."""
    cap, spent = ledger.get("cap"), ledger.get("spent")
    return [
        ("input items", report.get("input_items")), ("output items", report.get("output_items")),
        ("new items", report.get("new_items")), ("rounds", report.get("rounds")),
        ("edit attempts", (report.get("edits") or {}).get("attempts")),
        ("tokens spent", f"{spent:,} / {cap:,}" if isinstance(spent, int) and isinstance(cap, int) else _fmt(spent)),
        *_decontamination_rows(report.get("decontamination")),
    ]


def _metric_rows(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, str]]:
    """The headline metrics before and after, with the change in percent; the item count gets none, as its
    change is no improvement or regression."""
    metrics = []
    for key, label in (("coverage_jsd", "coverage JSD from target"), ("difficulty_jsd", "difficulty JSD from target"),
                       ("expected_errors", "expected errors (Σ p_error)"), ("items", "items")):
        b, a = before.get(key), after.get(key)
        metrics.append({"label": label, "before": _fmt(b), "after": _fmt(a),
                        "change": _reduction(b, a) if key != "items" else ""})
    return metrics


def _plan_rows(plans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per plan, its figures formatted for the table; a plan without a round is numbered by its place,
    as the operations chart numbers it."""
    return [{"round": p.get("round") or i, "mode": p.get("mode"), "solver": p.get("solver"),
             "status": p.get("status"), "budget": _fmt(p.get("budget"), 0),
             "forecast": _fmt(p.get("forecast_tokens"), 0), "marginal": _fmt(p.get("marginal_value_per_1k"), 3),
             "reason": p.get("reason") or "", "notes": "; ".join(str(n) for n in p.get("notes") or []),
             "metrics": [(k, _fmt((v or {}).get("before"), 3), _fmt((v or {}).get("after"), 3))
                         for k, v in (p.get("metrics") or {}).items() if isinstance(v, dict)]}
            for i, p in enumerate(plans, 1)]


def _unfixed_rows(report: dict[str, Any], refined_rows: list[Any]) -> list[dict[str, Any]]:
    """Items still flagged as likely wrong after the run, each with its question from refined.jsonl (report.json
    names only the id), so the reader sees what to check by hand."""
    refined = {str(r.get("id")): r for r in refined_rows if isinstance(r, dict)}
    unfixed = []
    for row in report.get("unfixed_flagged_items") or []:
        item = refined.get(str(row.get("item_id")), {})
        unfixed.append({**row, "question": item.get("question", ""), "p_error": _fmt(row.get("p_error"), 2)})
    return unfixed


def _edit_rows(groups: dict[str, list[dict[str, Any]]], gave_up: set[str]) -> list[dict[str, Any]]:
    """The table of every edit (the first MAX_TABLE_ROWS): described by its last attempt, with the number of
    attempts and the tokens they spent together."""
    rows = []
    for attempts in list(groups.values())[:MAX_TABLE_ROWS]:
        last = attempts[-1]
        rows.append({"edit_id": last.get("edit_id"), "round": last.get("round"), "operation": last.get("operation"),
                     "item_id": last.get("item_id"), "target": last.get("target"), "attempts": len(attempts),
                     "outcome": edit_outcome(attempts, gave_up), "reason": last.get("reason"),
                     "tokens": sum(int(a.get("tokens") or 0) for a in attempts)})
    return rows


def _decontamination_rows(summary: Any) -> list[tuple[str, Any]]:
    """The summary row of `refine --decontaminate` (api/decontamination.py), when the run had a reference; the
    removals themselves are among the edits. Read from an untrusted report, so its shape is checked."""
    if not isinstance(summary, dict) or not isinstance(summary.get("found"), int):
        return []
    rows: list[tuple[str, Any]] = [(f"found in {str(summary.get('reference', 'the reference'))[:200]} and removed",
                                    summary["found"])]
    unchecked = summary.get("not_rechecked")
    if isinstance(unchecked, list) and unchecked:  # a resume could not read a reference again
        rows.append(("references new items were not looked for in after a resume", len(unchecked)))
    return rows


def _targets_note(targets: dict[str, Any]) -> str:
    parts = []
    parts.append("coverage target: " + ("as configured" if targets.get("coverage") else "uniform over the observed cells"))
    parts.append("difficulty target: " + ("as configured" if targets.get("difficulty") else "uniform over buckets"))
    return "; ".join(parts)


def _template() -> str:
    """The page template, shipped as package data (templates/report.html.j2) so it is edited as HTML; read
    as text and compiled with `from_string` so the environment stays the one below (no loader)."""
    return resources.files("refinelab.api").joinpath("templates", "report.html.j2").read_text(encoding="utf-8")


def render_html(run: dict[str, Any]) -> str:
    env = Environment(autoescape=True, trim_blocks=False, lstrip_blocks=False)
    return env.from_string(_template()).render(**build_context(run))


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write `report.html` into the run folder (or `out`) and return its path."""
    run = load_run(run_dir)
    html = render_html(run)
    target = Path(out) if out is not None else Path(run_dir) / REPORT_HTML
    return atomic_write_text(target, html)
