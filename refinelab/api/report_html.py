"""`report.html`: one self-contained page that shows what a run changed, what it cost and why.

Everything the page needs is inside it: plots are matplotlib SVG inlined into the document (glyphs as
paths, ids made unique per figure, comments stripped), CSS is inline, there is no script and nothing is
fetched. Dataset text is untrusted (it comes from user files and model outputs), so the page is built with
an autoescaping Jinja environment and the only markup that bypasses escaping is the SVG we render ourselves
and diff markup whose pieces are escaped as they are joined.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment
from markupsafe import Markup, escape
from pydantic import ValidationError

from refinelab.api.run_files import read_changes, read_report, read_run_json
from refinelab.atomic import atomic_write_text, open_regular
from refinelab.errors import DataError, validation_problem
from refinelab.operations import writes_new_item
from refinelab.safeload import loads_json
from refinelab.schema import LETTERS
from refinelab.state import CONFIRMED, INTAKE_ROUND, SUCCEEDED

MAX_EXAMPLES_PER_OP = 3  # edit examples shown in full per operation
MAX_TABLE_ROWS = 500  # longer lists are cut, with a pointer to the JSONL file
MAX_EVIDENCE_CHARS = 4000
MAX_LABEL_CHARS = 28


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
    report_path = run_dir / "report.json"
    if not report_path.exists():
        raise ReportError(
            f"{run_dir} has no report.json: it is not a finished RefineLab run folder "
            "(report.json is written when a run finalizes; finish a stopped run with `refinelab resume`)")
    try:
        report = read_report(run_dir)
        targets = _targets(run_dir / "settings.json", read_run_json(run_dir / "settings.json").get("targets") or {})
    except DataError as exc:  # a damaged settings.json is named, not drawn as a report without its targets
        raise ReportError(str(exc)) from None
    return {"dir": run_dir, "report": report, "changes": _changes(run_dir),
            "refined": _read_jsonl(run_dir / "refined.jsonl"), "targets": targets}


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


# ---------------------------------------------------------------------------------------------- plots


def _label(text: Any) -> str:
    """A tick label from untrusted text: short, and with `$` escaped so matplotlib does not parse mathtext."""
    text = str(text) if text not in (None, "") else "(none)"
    if len(text) > MAX_LABEL_CHARS:
        text = text[: MAX_LABEL_CHARS - 1] + "…"
    return text.replace("$", r"\$")


_ID_RE = re.compile(r'\bid="([^"]+)"')


def _svg(fig: Any, index: int, title: str) -> Markup:
    """The figure as inline SVG, safe to place several in one document."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight",  # no RDF block, no date: stable, link-free output
                metadata={"Format": None, "Type": None, "Creator": None, "Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration and DOCTYPE
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)  # comments carry the (escaped) text; not needed
    prefix = f"f{index}-"
    ids = set(_ID_RE.findall(svg))
    svg = _ID_RE.sub(lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"' if m.group(1) in ids else m.group(0), svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})" if m.group(1) in ids else m.group(0), svg)
    svg = svg.replace("<svg ", f'<svg class="plot" role="img" aria-label="{escape(title)}" ', 1)
    return Markup(svg)


class _Plots:
    """Makes figures with matplotlib's object API (no pyplot: no global state, no GUI backend)."""

    def __init__(self) -> None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        self.count = 0
        self.rc = {"svg.fonttype": "path", "svg.hashsalt": "refinelab", "font.size": 9,
                   "axes.spines.top": False, "axes.spines.right": False}

    def render(self, draw: Any, title: str, size: tuple[float, float]) -> Markup:
        import matplotlib
        from matplotlib.figure import Figure

        with matplotlib.rc_context(self.rc):
            fig = Figure(figsize=size, layout="constrained")
            draw(fig)
            self.count += 1
            return _svg(fig, self.count, title)


# A run folder is untrusted, and matplotlib's time grows with what it draws (every tick label and cell label
# becomes glyph paths in the SVG): 150 × 150 coverage cells took over a minute. So each figure draws at most
# this much; what is left out is summed into one "N more" bar, row or column, and the caption says so.
MAX_HEATMAP_DOMAINS = 16  # rows of the coverage heatmap, the "more" row included
MAX_HEATMAP_SKILLS = 12  # its columns, the "more" column included
MAX_CELL_LABELS = 100  # cells per panel that get a printed share; above, the colour alone shows it
MAX_CHART_BARS = 12  # difficulty buckets, and rounds of the operations chart
MAX_CHART_OPERATIONS = 10  # operations stacked per round (tab10 has ten colours), the "more" one included


def _more(count: int, what: str) -> str:
    """The label of the row, column or bar that sums what a figure leaves out."""
    return f"{count} more {what}"


def _unnamed_last(name: str) -> tuple[bool, str]:
    """Display order of domains and skills: by name, the unnamed one last."""
    return name == "", name


def _keep(weights: dict[str, float], limit: int, order: Callable[[str], Any]) -> tuple[list[str], int]:
    """The names a figure draws (the largest by weight, shown in `order`) and how many it folds away:
    all of them when they fit in `limit`, else the `limit - 1` largest, leaving a place for the sum."""
    if len(weights) <= limit:
        return sorted(weights, key=order), 0
    kept = sorted(weights, key=lambda k: (-weights[k], k))[: limit - 1]
    return sorted(kept, key=order), len(weights) - len(kept)


def _cell(key: str) -> tuple[str, str]:
    domain, _, skill = key.partition("|")
    return domain, skill


def _coverage_matrix(dists: list[dict[str, float]]) -> tuple[list[str], list[str], list[list[list[float]]], str]:
    """Domain × skill matrices of several distributions keyed 'domain|skill', over the union of their cells,
    capped at MAX_HEATMAP_DOMAINS × MAX_HEATMAP_SKILLS: the largest domains and skills (by share summed over
    the distributions) are drawn, the others summed into a last row and column. Also a note saying what was
    summed ("" when everything is drawn). Linear in the number of cells."""
    domain_weight: dict[str, float] = defaultdict(float)
    skill_weight: dict[str, float] = defaultdict(float)
    for dist in dists:
        for key, value in dist.items():
            domain, skill = _cell(key)
            domain_weight[domain] += abs(value)
            skill_weight[skill] += abs(value)
    domains, more_domains = _keep(domain_weight, MAX_HEATMAP_DOMAINS, _unnamed_last)
    skills, more_skills = _keep(skill_weight, MAX_HEATMAP_SKILLS, _unnamed_last)
    row = {d: i for i, d in enumerate(domains)}
    col = {s: j for j, s in enumerate(skills)}
    mats = []
    for dist in dists:
        mat = [[0.0] * (len(skills) + bool(more_skills)) for _ in range(len(domains) + bool(more_domains))]
        for key, value in dist.items():
            domain, skill = _cell(key)
            mat[row.get(domain, len(domains))][col.get(skill, len(skills))] += value
        mats.append(mat)
    notes = [f"the {n} largest of {n + more} {what} are drawn, the other {more} summed in the last {where}"
             for n, more, what, where in ((len(domains), more_domains, "domains", "row"),
                                          (len(skills), more_skills, "skills", "column")) if more]
    if more_domains:
        domains.append(_more(more_domains, "domains"))
    if more_skills:
        skills.append(_more(more_skills, "skills"))
    return domains, skills, mats, "; ".join(notes)


def _target_coverage(targets: dict[str, Any]) -> dict[str, float] | None:
    coverage = targets.get("coverage")
    if not isinstance(coverage, dict):
        return None
    return {f"{d}|{s}": float(p) for d, row in coverage.items() if isinstance(row, dict) for s, p in row.items()}


def _cell_text(value: float, n_items: Any) -> str:
    """A heatmap cell's label: its share, and the items it stands for when the panel has a count."""
    text = f"{value:.0%}" if value else "·"
    if n_items and value:
        with contextlib.suppress(OverflowError, ValueError):  # an untrusted share or count too large to multiply
            text += f"\n{round(value * n_items)}"
    return text


def coverage_heatmap(plots: _Plots, before: dict[str, Any], after: dict[str, Any],
                     targets: dict[str, Any]) -> tuple[Markup, str]:
    """The coverage heatmap (before, after and the target when there is one) and its note on what was left
    out (see `_coverage_matrix`)."""
    panels = [("before", before.get("coverage") or {}, before.get("items")),
              ("after", after.get("coverage") or {}, after.get("items"))]
    target = _target_coverage(targets)
    if target:
        panels.append(("target", target, None))
    domains, skills, mats, note = _coverage_matrix([p[1] for p in panels])
    vmax = max([v for m in mats for row in m for v in row] + [1e-9])
    labelled = len(domains) * len(skills) <= MAX_CELL_LABELS
    if not labelled:
        note = "; ".join(filter(None, [note, "shares are shown by colour only"]))

    def draw(fig: Any) -> None:
        axes = fig.subplots(1, len(panels), sharey=True)
        image = None
        for ax, (name, _, n_items), mat in zip(axes, panels, mats, strict=True):
            image = ax.imshow(mat, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
            ax.set_xticks(range(len(skills)), [_label(s) for s in skills], rotation=35, ha="right")
            ax.set_yticks(range(len(domains)), [_label(d) for d in domains])
            ax.set_title(name + (f" (n={n_items})" if n_items is not None else ""))
            for r, row in enumerate(mat if labelled else []):
                for c, value in enumerate(row):
                    ax.text(c, r, _cell_text(value, n_items), ha="center", va="center", fontsize=7,
                            color="white" if value < 0.6 * vmax else "black")
            ax.set_xlabel("skill")
        axes[0].set_ylabel("domain")
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="share of items", format="{x:.0%}")

    width = min(16.0, 2.2 + len(panels) * (1.2 + 0.75 * max(1, len(skills))))
    height = 1.6 + 0.45 * max(1, len(domains))
    return plots.render(draw, "coverage heatmap before and after", (width, height)), note


def difficulty_histogram(plots: _Plots, before: dict[str, Any], after: dict[str, Any],
                         targets: dict[str, Any]) -> tuple[Markup, str]:
    """Difficulty shares per bucket before and after, with the target; at most MAX_CHART_BARS buckets (the
    rest summed into the last bar), and a note saying so."""
    buckets = list(dict.fromkeys(targets.get("buckets") or []))
    seen = set(buckets)
    for dist in (before.get("difficulty") or {}, after.get("difficulty") or {}):
        for bucket in dist:
            if bucket not in seen:
                seen.add(bucket)
                buckets.append(bucket)
    explicit = targets.get("difficulty") if isinstance(targets.get("difficulty"), dict) else None
    target = {b: float((explicit or {}).get(b, 0.0)) if explicit else 1 / max(1, len(buckets)) for b in buckets}
    shares = {name: {b: float((dist.get("difficulty") or {}).get(b, 0.0)) for b in buckets}
              for name, dist in (("before", before), ("after", after))}
    note = ""
    if len(buckets) > MAX_CHART_BARS:  # the first ones in the target's order; the rest summed
        rest = buckets[MAX_CHART_BARS - 1:]
        buckets = buckets[: MAX_CHART_BARS - 1]
        folded = _more(len(rest), "buckets")
        for dist in (target, *shares.values()):
            dist[folded] = sum(dist[b] for b in rest)
        buckets.append(folded)
        note = f"the first {len(buckets) - 1} of {len(buckets) - 1 + len(rest)} buckets are drawn, the other {len(rest)} summed in the last bar"

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        xs = range(len(buckets))
        width = 0.38
        for offset, name, color in ((-width / 2, "before", "#9aa5b1"), (width / 2, "after", "#2b7bb9")):
            values = [shares[name][b] for b in buckets]
            bars = ax.bar([x + offset for x in xs], values, width, label=name, color=color)
            ax.bar_label(bars, labels=[f"{v:.0%}" for v in values], fontsize=7, padding=1)
        ax.scatter(list(xs), [target[b] for b in buckets], marker="_", s=900, color="#d1495b", linewidths=2,
                   label="target" + ("" if explicit else " (uniform)"), zorder=3)
        ax.set_xticks(list(xs), [_label(b) for b in buckets])
        ax.set_ylabel("share of rated items")
        ax.yaxis.set_major_formatter("{x:.0%}")
        ax.set_xlabel("difficulty bucket")
        ax.legend(frameon=False, fontsize=8)

    return plots.render(draw, "difficulty histogram before and after", (6.5, 3.4)), note


def _tokens(slot: Any) -> float:
    """A ledger slot's tokens; the schema (run_files.LedgerSlot) lets them be null or absent, read as 0."""
    return (slot or {}).get("tokens") or 0


def budget_chart(plots: _Plots, ledger: dict[str, Any]) -> Markup:
    groups = [(name, ledger.get(key) or {}) for name, key in
              (("by node", "by_node"), ("by operation", "by_operation"), ("by model", "by_model"))]
    groups = [(n, g) for n, g in groups if g]
    if not groups:
        return Markup("")

    def draw(fig: Any) -> None:
        axes = fig.subplots(1, len(groups), squeeze=False)[0]
        for ax, (name, group) in zip(axes, groups, strict=True):
            items = sorted(group.items(), key=lambda kv: -_tokens(kv[1]))[:12]
            labels = [_label(k) for k, _ in items][::-1]
            tokens = [_tokens(v) for _, v in items][::-1]
            bars = ax.barh(labels, tokens, color="#2b7bb9")
            ax.bar_label(bars, labels=[f"{t:,}" for t in tokens], fontsize=7, padding=2)
            ax.set_title(name)
            ax.set_xlabel("tokens")
            ax.margins(x=0.25)

    height = 1.4 + 0.3 * max(len(g) for _, g in groups)
    return plots.render(draw, "token spend by node, operation and model", (11.0, min(6.0, height)))


def _edit_groups(changes: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """changes.jsonl rows grouped per edit, attempts in order."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in changes:
        groups[str(row.get("edit_id"))].append(row)
    for rows in groups.values():
        rows.sort(key=lambda r: r.get("attempt") or 0)
    return groups


def _outcome(attempts: list[dict[str, Any]], gave_up: set[str]) -> str:
    """committed, confirmed (a fix that passed with the item unchanged), gave up, or failed."""
    last = attempts[-1]
    if str(last.get("edit_id")) in gave_up:
        return "gave up"
    if last.get("outcome") == CONFIRMED:
        return CONFIRMED
    return "committed" if last.get("verdict") == "pass" else "failed"


def operations_chart(plots: _Plots, plans: list[dict[str, Any]], groups: dict[str, list[dict[str, Any]]],
                     gave_up: set[str]) -> tuple[Markup, list[dict[str, Any]], str]:
    """Planned vs applied operations per round, stacked by operation; also the table behind it (every round
    and operation), and a note on what the chart sums: at most MAX_CHART_BARS rounds (the first ones) and
    MAX_CHART_OPERATIONS operations (the most frequent), the rest summed into a last bar and a last stack."""
    planned: dict[int, Counter[str]] = defaultdict(Counter)
    plan_of: dict[int, dict[str, Any]] = {}  # a round's first plan, for its forecast
    for index, plan in enumerate(plans, 1):
        rnd = int(plan.get("round") or index)
        plan_of.setdefault(rnd, plan)
        for op, info in (plan.get("by_op") or {}).items():
            planned[rnd][op] += int((info or {}).get("count", 0))
    applied: dict[int, Counter[str]] = defaultdict(Counter)
    failed: dict[int, Counter[str]] = defaultdict(Counter)
    spent: dict[int, Counter[str]] = defaultdict(Counter)
    for attempts in groups.values():
        rnd, op = int(attempts[0].get("round") or 0), str(attempts[0].get("operation"))
        spent[rnd][op] += sum(int(a.get("tokens") or 0) for a in attempts)
        if _outcome(attempts, gave_up) in SUCCEEDED:
            applied[rnd][op] += 1
        else:
            failed[rnd][op] += 1
    pairs = sorted({(r, op) for table in (planned, applied, failed) for r, counts in table.items()
                    for op, n in counts.items() if n})  # only what happened: rounds × operations can be large
    rows = [{"round": _round_name(r).removeprefix("round "), "operation": op, "planned": planned[r][op], "applied": applied[r][op],
             "not_applied": failed[r][op], "tokens": spent[r][op],
             "forecast": round(float(((plan_of.get(r, {}).get("by_op") or {}).get(op) or {}).get("tokens", 0)))}
            for r, op in pairs]
    rounds = sorted(set(planned) | set(applied) | set(failed))
    if not rounds:
        return Markup(""), rows, ""
    op_weight: Counter[str] = Counter()
    for table in (planned, applied, failed):
        for counts in table.values():
            op_weight.update({op: abs(n) for op, n in counts.items()})
    ops, more_ops = _keep(dict(op_weight), MAX_CHART_OPERATIONS, lambda op: op)
    more_rounds = max(0, len(rounds) - (MAX_CHART_BARS - 1)) if len(rounds) > MAX_CHART_BARS else 0
    shown = rounds[: len(rounds) - more_rounds]
    slot = {r: i for i, r in enumerate(shown)}
    stack = {op: k for k, op in enumerate(ops)}
    bars = {name: [[0] * (len(ops) + bool(more_ops)) for _ in range(len(shown) + bool(more_rounds))]
            for name in ("planned", "applied")}
    for name, table in (("planned", planned), ("applied", applied)):
        for r, counts in table.items():
            for op, n in counts.items():
                bars[name][slot.get(r, len(shown))][stack.get(op, len(ops))] += n
    names = [_round_name(r) for r in shown] + ([_more(more_rounds, "rounds")] if more_rounds else [])
    labels = [_label(op) for op in ops] + ([_more(more_ops, "operations")] if more_ops else [])
    notes = [f"the first {len(shown)} of {len(rounds)} rounds are drawn, the other {more_rounds} summed in the last bar"
             if more_rounds else "",
             f"the {len(ops)} most frequent of {len(op_weight)} operations are drawn, the other {more_ops} summed"
             if more_ops else ""]

    def draw(fig: Any) -> None:
        import matplotlib

        ax = fig.subplots()
        colors = matplotlib.colormaps["tab10"]
        width = 0.38
        for which, offset, hatch in (("planned", -width / 2, "//"), ("applied", width / 2, "")):
            bottom = [0] * len(names)
            for k, label in enumerate(labels):
                values = [bar[k] for bar in bars[which]]
                ax.bar([i + offset for i in range(len(names))], values, width, bottom=bottom, color=colors(k % 10),
                       hatch=hatch, edgecolor="white", alpha=0.55 if which == "planned" else 1.0,
                       label=label if which == "applied" else None)
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
            for i, total in enumerate(bottom):
                ax.annotate(which, (i + offset, total), ha="center", va="bottom", fontsize=7,
                            xytext=(0, 2), textcoords="offset points")
        ax.set_xticks(range(len(names)), names)
        ax.set_ylabel("operations")
        ax.margins(y=0.12)
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))

    chart = plots.render(draw, "operations planned and applied per round", (7.5, 3.4))
    return chart, rows, "; ".join(filter(None, notes))


def _round_name(rnd: int) -> str:
    """How a round is shown: the intake's removals (decontamination, before profiling) are no plan's round."""
    return "intake" if rnd == INTAKE_ROUND else f"round {rnd}"


# ---------------------------------------------------------------------------------------------- edit views


# SequenceMatcher's work grows with the cube of the token count on text whose tokens repeat (every whitespace
# separator is a token): 39 s for one 1,000-word question, and a run folder is untrusted input. Up to this
# many tokens (before and after together, about 100 words a side: 0.05 s at worst) it diffs the whole text,
# so ordinary items show what they always did; longer texts are first trimmed of their common beginning and
# end (linear), and a changed middle still longer than this is shown as one deletion and one insertion.
EXACT_DIFF_TOKENS = 400


def _opcodes(a: list[str], b: list[str]) -> list[tuple[str, int, int, int, int]]:
    """difflib opcodes turning `a` into `b`, in bounded time (see EXACT_DIFF_TOKENS)."""
    if len(a) + len(b) <= EXACT_DIFF_TOKENS:
        return difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    limit = min(len(a), len(b))
    head = 0
    while head < limit and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < limit - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    a_end, b_end = len(a) - tail, len(b) - tail
    ops: list[tuple[str, int, int, int, int]] = [("equal", 0, head, 0, head)] if head else []
    if (a_end - head) + (b_end - head) <= EXACT_DIFF_TOKENS:
        matcher = difflib.SequenceMatcher(a=a[head:a_end], b=b[head:b_end], autojunk=False)
        ops += [(op, i1 + head, i2 + head, j1 + head, j2 + head) for op, i1, i2, j1, j2 in matcher.get_opcodes()]
    elif a_end > head or b_end > head:
        op = "replace" if a_end > head and b_end > head else "delete" if a_end > head else "insert"
        ops.append((op, head, a_end, head, b_end))
    if tail:
        ops.append(("equal", a_end, len(a), b_end, len(b)))
    return ops


def _ratio(a: list[str], b: list[str]) -> float:
    """SequenceMatcher.ratio() over `_opcodes`: twice the matched tokens over all tokens."""
    if not a and not b:
        return 1.0
    matched = sum(i2 - i1 for op, i1, i2, _, _ in _opcodes(a, b) if op == "equal")
    return 2.0 * matched / (len(a) + len(b))


def diff_text(before: str, after: str) -> Markup:
    """Word-level diff: removed words in <del>, added in <ins>; every piece escaped."""
    a, b = re.split(r"(\s+)", before), re.split(r"(\s+)", after)
    out: list[Markup] = []
    for op, i1, i2, j1, j2 in _opcodes(a, b):
        if op == "equal":
            out.append(escape("".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(Markup("<del>%s</del>") % "".join(a[i1:i2]))
        if j2 > j1:
            out.append(Markup("<ins>%s</ins>") % "".join(b[j1:j2]))
    return Markup("").join(out)


def _as_item(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    choices = value.get("choices")
    return {"question": str(value.get("question", "")),
            "choices": [str(c) for c in choices] if isinstance(choices, list) else [],
            "answer": value.get("answer") if isinstance(value.get("answer"), int) else None,
            "id": str(value.get("id", "")), "domain": str(value.get("domain", "")),
            "skill": str(value.get("skill", "")), "difficulty": value.get("difficulty")}


REPLACE_BELOW = 0.4  # below this word similarity, before and after are shown as two blocks, not one inline diff


def _choice_rows(item: dict[str, Any], key_field: str) -> list[dict[str, Any]]:
    return [{"letter": LETTERS[i] if i < len(LETTERS) else str(i), "text": escape(c), key_field: item["answer"] == i}
            for i, c in enumerate(item["choices"])]


def _similarity(old: dict[str, Any], new: dict[str, Any]) -> float:
    a = re.split(r"\s+", " ".join([old["question"], *old["choices"]]))
    b = re.split(r"\s+", " ".join([new["question"], *new["choices"]]))
    return _ratio(a, b)


def item_view(before: Any, after: Any, operation: str = "") -> dict[str, Any]:
    """What the template shows for one attempt: blocks of stem + options, with an inline diff for edits.

    Kinds: `edit` (inline word diff), `rewrite` (too different to diff: before and after blocks),
    `new` (expand/generate: only the written item; the seed is named), `removed`, `none` (no candidate).
    """
    old, new = _as_item(before), _as_item(after)
    seed = None
    if writes_new_item(operation):  # its `before` is the seed item the writer was shown, not a prior version
        seed, old = (old or {}).get("id"), None
    kind = ("none" if not (old or new) else "removed" if not new else "new" if not old
            else "edit" if _similarity(old, new) >= REPLACE_BELOW else "rewrite")
    blocks: list[dict[str, Any]] = []
    if kind == "edit":
        assert old is not None and new is not None
        rows = []
        for i in range(max(len(old["choices"]), len(new["choices"]))):
            a = old["choices"][i] if i < len(old["choices"]) else ""
            b = new["choices"][i] if i < len(new["choices"]) else ""
            rows.append({"letter": LETTERS[i] if i < len(LETTERS) else str(i), "text": diff_text(a, b),
                         "key": new["answer"] == i, "old_key": old["answer"] == i and new["answer"] != i})
        blocks.append({"label": "before → after", "question": diff_text(old["question"], new["question"]),
                       "choices": rows, "struck": False})
    else:
        if old is not None and kind in ("removed", "rewrite"):
            blocks.append({"label": "before", "question": escape(old["question"]),
                           "choices": _choice_rows(old, "key"), "struck": kind == "removed"})
        if new is not None:
            blocks.append({"label": "after" if kind == "rewrite" else "new item", "question": escape(new["question"]),
                           "choices": _choice_rows(new, "key"), "struck": False})
    meta: dict[str, str] = {}
    for field in ("domain", "skill", "difficulty"):
        a, b = (old or {}).get(field), (new or {}).get(field)
        if old and new and a != b:
            meta[field] = f"{a} → {b}"
        elif (b if new else a) not in (None, ""):
            meta[field] = str(b if new else a)
    return {"kind": kind, "blocks": blocks, "meta": meta, "seed": seed,
            "key_changed": bool(old and new and old["answer"] != new["answer"])}


def _evidence(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_EVIDENCE_CHARS else text[:MAX_EVIDENCE_CHARS] + "\n… (cut; see changes.jsonl)"


def pick_examples(groups: dict[str, list[dict[str, Any]]], gave_up: set[str],
                  per_op: int = MAX_EXAMPLES_PER_OP) -> list[dict[str, Any]]:
    """A few edits per operation, most informative first: loop-backs and failures, then content edits."""
    by_op: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for attempts in groups.values():
        by_op[str(attempts[0].get("operation"))].append(attempts)

    def interest(attempts: list[dict[str, Any]]) -> tuple[int, int, int]:
        failed = sum(a.get("verdict") != "pass" for a in attempts)
        has_after = any(a.get("after") for a in attempts)
        return (-min(failed, 1), -int(len(attempts) > 1), -int(has_after))

    examples = []
    for op in sorted(by_op):
        for attempts in sorted(by_op[op], key=interest)[:per_op]:
            first = attempts[0]
            examples.append({
                "edit_id": first.get("edit_id"), "operation": op, "round": first.get("round"),
                "item_id": first.get("item_id"), "target": first.get("target"),
                "outcome": _outcome(attempts, gave_up), "count": len(by_op[op]),
                "attempts": [{"attempt": a.get("attempt"), "verdict": a.get("verdict"), "reason": a.get("reason"),
                              "tokens": a.get("tokens"), "evidence": _evidence(a.get("evidence")),
                              "view": item_view(a.get("before"), a.get("after"), op)} for a in attempts],
            })
    return examples


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
    """Everything the template needs, computed from the run's files."""
    report = run["report"]
    before = report.get("metrics_before") or {}
    after = report.get("metrics_after") or {}
    ledger = report.get("ledger") or {}
    plans = [p for p in (report.get("plans") or []) if isinstance(p, dict)]
    gave_up_rows = [g for g in (report.get("gave_up") or []) if isinstance(g, dict)]
    gave_up = {str(g.get("edit_id")) for g in gave_up_rows}
    groups = _edit_groups(run["changes"])
    refined = {str(r.get("id")): r for r in run["refined"] if isinstance(r, dict)}

    plots = _Plots()
    figures: dict[str, Markup] = {"coverage": Markup("")}
    notes: dict[str, str] = {}  # per figure, what it left out or summed ("" when it draws everything)
    if before.get("coverage") or after.get("coverage"):
        figures["coverage"], notes["coverage"] = coverage_heatmap(plots, before, after, run["targets"])
    figures["difficulty"], notes["difficulty"] = difficulty_histogram(plots, before, after, run["targets"])
    figures["budget"] = budget_chart(plots, ledger)
    figures["operations"], op_rows, notes["operations"] = operations_chart(plots, plans, groups, gave_up)

    metrics = []
    for key, label in (("coverage_jsd", "coverage JSD from target"), ("difficulty_jsd", "difficulty JSD from target"),
                       ("expected_errors", "expected errors (Σ p_error)"), ("items", "items")):
        b, a = before.get(key), after.get(key)
        metrics.append({"label": label, "before": _fmt(b), "after": _fmt(a),
                        "change": _reduction(b, a) if key != "items" else ""})

    unfixed = []
    for row in report.get("unfixed_flagged_items") or []:
        item = refined.get(str(row.get("item_id")), {})
        unfixed.append({**row, "question": item.get("question", ""), "p_error": _fmt(row.get("p_error"), 2)})

    all_edits = []
    for attempts in list(groups.values())[:MAX_TABLE_ROWS]:
        last = attempts[-1]
        all_edits.append({"edit_id": last.get("edit_id"), "round": last.get("round"), "operation": last.get("operation"),
                          "item_id": last.get("item_id"), "target": last.get("target"), "attempts": len(attempts),
                          "outcome": _outcome(attempts, gave_up), "reason": last.get("reason"),
                          "tokens": sum(int(a.get("tokens") or 0) for a in attempts)})

    cap, spent = ledger.get("cap"), ledger.get("spent")
    return {
        "run_id": report.get("run_id") or run["dir"].name,
        "run_dir": str(run["dir"]),
        "stop_reason": report.get("stop_reason", ""),
        # what the run told the user before it spent (e.g. profiling taking most of the budget); untrusted
        # text from the run folder, escaped by the template
        "notices": [n for n in (report.get("notices") or []) if isinstance(n, str)][:5],
        "summary": [
            ("input items", report.get("input_items")), ("output items", report.get("output_items")),
            ("new items", report.get("new_items")), ("rounds", report.get("rounds")),
            ("edit attempts", (report.get("edits") or {}).get("attempts")),
            ("tokens spent", f"{spent:,} / {cap:,}" if isinstance(spent, int) and isinstance(cap, int) else _fmt(spent)),
            *_decontamination_rows(report.get("decontamination")),
        ],
        "by_status": report.get("items_by_status") or {},
        "outcomes": (report.get("edits") or {}).get("outcomes") or {},
        "metrics": metrics,
        "figures": figures,
        "ledger": ledger,
        "ledger_tables": [(name, sorted((ledger.get(key) or {}).items(), key=lambda kv: -_tokens(kv[1])))
                          for name, key in (("node", "by_node"), ("operation", "by_operation"), ("model", "by_model"))],
        "ledger_counters": [(k, ledger.get(k)) for k in ("calls", "retries", "parse_failures", "failed_calls",
                                                          "overrun_calls", "prompt_tokens", "cached_prompt_tokens")
                            if k in ledger],
        "plans": [{"round": p.get("round") or i, "mode": p.get("mode"), "solver": p.get("solver"),
                   "status": p.get("status"), "budget": _fmt(p.get("budget"), 0),
                   "forecast": _fmt(p.get("forecast_tokens"), 0), "marginal": _fmt(p.get("marginal_value_per_1k"), 3),
                   "reason": p.get("reason") or "", "notes": "; ".join(str(n) for n in p.get("notes") or []),
                   "metrics": [(k, _fmt((v or {}).get("before"), 3), _fmt((v or {}).get("after"), 3))
                               for k, v in (p.get("metrics") or {}).items() if isinstance(v, dict)]}
                  for i, p in enumerate(plans, 1)],
        "figure_notes": notes,
        "op_rows": op_rows[:MAX_TABLE_ROWS],
        "op_rows_total": len(op_rows),
        "examples": pick_examples(groups, gave_up),
        "all_edits": all_edits,
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


TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>RefineLab report: {{ run_id }}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1.5rem; color: #1f2933; background: #fff; }
h1 { font-size: 1.5rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #d9e2ec; }
.muted { color: #627d98; } .small { font-size: 12px; }
.cards { display: flex; flex-wrap: wrap; gap: .6rem; margin: 1rem 0; }
.card { border: 1px solid #d9e2ec; border-radius: 6px; padding: .5rem .8rem; min-width: 8rem; }
.card b { display: block; font-size: 1.25rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: 13px; }
th, td { border: 1px solid #d9e2ec; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f0f4f8; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: .8rem 0; overflow-x: auto; } figcaption { color: #627d98; font-size: 12px; }
svg.plot { max-width: 100%; height: auto; display: block; }
.edit { border: 1px solid #d9e2ec; border-radius: 6px; padding: .6rem .9rem; margin: .8rem 0; }
.attempt { border-left: 3px solid #9fb3c8; padding-left: .7rem; margin: .6rem 0; }
.verdict-pass { color: #1e7b34; font-weight: 600; } .verdict-fail, .outcome-gave-up, .outcome-failed { color: #b42318; font-weight: 600; }
.outcome-committed, .outcome-confirmed { color: #1e7b34; font-weight: 600; }
del { background: #fde2e1; color: #8a1c1c; } ins { background: #d3f5dc; color: #14532d; text-decoration: none; }
.item { white-space: pre-wrap; overflow-wrap: anywhere; }
.choices { list-style: none; padding-left: .4rem; margin: .3rem 0; }
.key { font-weight: 600; } .key::after { content: " ✓ key"; color: #1e7b34; font-size: 11px; }
.oldkey::after { content: " (old key)"; color: #b42318; font-size: 11px; }
.tag { display: inline-block; border-radius: 3px; padding: 0 5px; font-size: 11px; background: #e4e7eb; margin-right: .3rem; }
.tag.removed { background: #fde2e1; } .tag.new { background: #d3f5dc; } .tag.edit, .tag.rewrite { background: #fff3c4; }
.block { margin: .3rem 0; min-width: 0; } .blocks.n2 { display: grid; grid-template-columns: 1fr 1fr; gap: 1.2rem; } del + ins { margin-left: 2px; }
pre { background: #f5f7fa; padding: .5rem; overflow-x: auto; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
details summary { cursor: pointer; color: #334e68; }
nav a { margin-right: .8rem; }
</style>
</head>
<body>
<h1>RefineLab run <code>{{ run_id }}</code></h1>
<div class="muted">{{ run_dir }} · {{ stop_reason or "no stop reason recorded" }}</div>
{% for notice in notices %}<p class="small"><b>note:</b> {{ notice }}</p>
{% endfor %}<nav class="small"><a href="#distributions">distributions</a><a href="#budget">budget</a><a href="#operations">operations</a>
<a href="#examples">edit examples</a><a href="#unfixed">unfixed</a><a href="#gaveup">gave up</a><a href="#invalid">invalid input</a><a href="#edits">all edits</a></nav>

<div class="cards">
{% for label, value in summary %}<div class="card"><span class="muted small">{{ label }}</span><b>{{ value if value is not none else "—" }}</b></div>
{% endfor %}</div>

<table id="metrics"><tr><th>metric</th><th>before</th><th>after</th><th>change</th></tr>
{% for m in metrics %}<tr><td>{{ m.label }}</td><td class="num">{{ m.before }}</td><td class="num">{{ m.after }}</td><td class="num">{{ m.change }}</td></tr>
{% endfor %}</table>
<div class="small muted">Items by status:
{% for k, v in by_status|dictsort %}<span class="tag">{{ k }}: {{ v }}</span>{% endfor %}
· Edit outcomes: {% for k, v in outcomes|dictsort %}<span class="tag">{{ k }}: {{ v }}</span>{% endfor %}</div>

<h2 id="distributions">Before and after</h2>
<figure id="fig-coverage">{{ figures.coverage }}<figcaption>Coverage: share of items per domain × skill cell ({{ targets_note }}).{% if figure_notes.coverage %} <b>Capped:</b> {{ figure_notes.coverage }}.{% endif %}</figcaption></figure>
<figure id="fig-difficulty">{{ figures.difficulty }}<figcaption>Difficulty: share of rated items per bucket; red bars mark the target.{% if figure_notes.difficulty %} <b>Capped:</b> {{ figure_notes.difficulty }}.{% endif %}</figcaption></figure>

<h2 id="budget">Budget</h2>
<figure id="fig-budget">{{ figures.budget }}<figcaption>Tokens settled in the ledger, by graph node, by operation and by model.</figcaption></figure>
<div style="display:flex;gap:1.5rem;flex-wrap:wrap;align-items:flex-start">
{% for name, rows in ledger_tables %}{% if rows %}<table><tr><th>{{ name }}</th><th>tokens</th><th>calls</th></tr>
{% for k, v in rows %}<tr><td>{{ k }}</td><td class="num">{{ "{:,}".format(v.tokens or 0) }}</td><td class="num">{{ v.calls }}</td></tr>{% endfor %}
</table>{% endif %}{% endfor %}
{% if ledger_counters %}<table><tr><th>ledger</th><th></th></tr>{% for k, v in ledger_counters %}<tr><td>{{ k }}</td><td class="num">{{ v }}</td></tr>{% endfor %}</table>{% endif %}
</div>

<h2 id="operations">Operations per round</h2>
<figure id="fig-operations">{{ figures.operations }}<figcaption>Operations the plan chose (hatched) and the edits committed after validation (solid), per round.{% if figure_notes.operations %} <b>Capped:</b> {{ figure_notes.operations }}; the table lists them all.{% endif %}</figcaption></figure>
{% if op_rows %}<table><tr><th>round</th><th>operation</th><th>planned</th><th>committed or confirmed</th><th>not committed</th><th>forecast tokens</th><th>tokens on edits</th></tr>
{% for r in op_rows %}<tr><td>{{ r.round }}</td><td>{{ r.operation }}</td><td class="num">{{ r.planned }}</td><td class="num">{{ r.applied }}</td><td class="num">{{ r.not_applied }}</td><td class="num">{{ r.forecast }}</td><td class="num">{{ r.tokens }}</td></tr>{% endfor %}
</table>{% if op_rows_total > max_rows %}<p class="small muted">{{ op_rows_total - max_rows }} more rows: see report.json and changes.jsonl.</p>{% endif %}{% endif %}
{% if plans %}<details><summary>Plans ({{ plans|length }} round{{ "s" if plans|length != 1 }})</summary>
<table><tr><th>round</th><th>mode</th><th>solver</th><th>status</th><th>budget</th><th>forecast</th><th>value per 1k more tokens</th><th>forecast metrics (before → after)</th><th>reason / notes</th></tr>
{% for p in plans %}<tr><td>{{ p.round }}</td><td>{{ p.mode }}</td><td>{{ p.solver }}</td><td>{{ p.status }}</td><td class="num">{{ p.budget }}</td><td class="num">{{ p.forecast }}</td><td class="num">{{ p.marginal }}</td>
<td>{% for k, b, a in p.metrics %}{{ k }}: {{ b }} → {{ a }}<br>{% endfor %}</td><td>{{ p.reason }} {{ p.notes }}</td></tr>{% endfor %}
</table></details>{% endif %}

<h2 id="examples">Examples of edits</h2>
<p class="muted small">Up to {{ per_op }} edits per operation, loop-backs and failures first. Every attempt shows the validator's verdict, reason and evidence. Deleted words are <del>struck</del>, added words <ins>highlighted</ins>.</p>
{% for ex in examples %}<div class="edit">
<div><b>{{ ex.operation }}</b> <code>{{ ex.edit_id }}</code> · round {{ ex.round }} · item <code>{{ ex.item_id }}</code>{% if ex.target %} · target {{ ex.target }}{% endif %}
· <span class="outcome-{{ ex.outcome|replace(' ', '-') }}">{{ ex.outcome }}</span> <span class="muted small">({{ ex.count }} {{ ex.operation }} edit{{ "s" if ex.count != 1 }} in the run)</span></div>
{% for a in ex.attempts %}<div class="attempt">
<div class="small">attempt {{ a.attempt }} · <span class="verdict-{{ a.verdict }}">{{ a.verdict }}</span> · {{ a.tokens }} tokens · {{ a.reason }}</div>
{% set v = a.view %}<div><span class="tag {{ v.kind }}">{{ v.kind }}</span>{% for k, val in v.meta|dictsort %}<span class="tag">{{ k }}: {{ val }}</span>{% endfor %}{% if v.key_changed %}<span class="tag edit">answer key changed</span>{% endif %}</div>
{% if v.seed %}<div class="small muted">written for the subject of item <code>{{ v.seed }}</code></div>{% endif %}
<div class="blocks n{{ v.blocks|length }}">{% for b in v.blocks %}<div class="block"><div class="small muted">{{ b.label }}</div>
<div class="item">{% if b.struck %}<del>{{ b.question }}</del>{% else %}{{ b.question }}{% endif %}</div>
<ul class="choices">{% for c in b.choices %}<li class="{{ 'key' if c.key }} {{ 'oldkey' if c.old_key }}">{{ c.letter }}. <span class="item">{{ c.text }}</span></li>{% endfor %}</ul></div>
{% endfor %}</div>{% if v.kind == "none" %}<div class="small muted">no candidate item (the writer's output was unusable)</div>{% endif %}
<details><summary class="small">evidence</summary><pre>{{ a.evidence }}</pre></details>
</div>{% endfor %}
</div>{% else %}<p>No edits were attempted.</p>{% endfor %}

<h2 id="unfixed">Items left unfixed</h2>
<p class="muted small">Items profiling flagged as likely errors that the run kept unedited{% if budget_stopped %}; the run stopped on its budget ({{ stop_reason }}){% else %}: the plan did not afford them within the budget, or their edits gave up{% endif %}.</p>
{% if unfixed %}<table><tr><th>item</th><th>p(error)</th><th>error type</th><th>question</th></tr>
{% for u in unfixed %}<tr><td><code>{{ u.item_id }}</code></td><td class="num">{{ u.p_error }}</td><td>{{ u.error_type }}</td><td class="item">{{ u.question }}</td></tr>{% endfor %}
</table>{% if unfixed_total > max_rows %}<p class="small muted">{{ unfixed_total - max_rows }} more in report.json.</p>{% endif %}
{% else %}<p>None: every flagged item was edited or removed.</p>{% endif %}

<h2 id="gaveup">Edits that gave up</h2>
<p class="muted small">Edits that failed validation on every attempt; the original was kept.</p>
{% if gave_up %}<table><tr><th>edit</th><th>operation</th><th>item</th><th>round</th><th>attempts</th><th>reason</th></tr>
{% for g in gave_up %}<tr><td><code>{{ g.edit_id }}</code></td><td>{{ g.operation }}</td><td><code>{{ g.item_id }}</code></td><td class="num">{{ g.round }}</td><td class="num">{{ g.attempts }}</td><td>{{ g.reason }}</td></tr>{% endfor %}
</table>{% if gave_up_total > max_rows %}<p class="small muted">{{ gave_up_total - max_rows }} more in report.json.</p>{% endif %}
{% else %}<p>None.</p>{% endif %}

<h2 id="invalid">Invalid input rows</h2>
{% if invalid %}<table><tr><th>row</th><th>reason</th></tr>
{% for r in invalid %}<tr><td><code>{{ r.id }}</code></td><td>{{ r.reason }}</td></tr>{% endfor %}
</table>{% if invalid_total > max_rows %}<p class="small muted">{{ invalid_total - max_rows }} more in report.json.</p>{% endif %}
{% else %}<p>None: every input row was valid.</p>{% endif %}

<h2 id="edits">All edits</h2>
{% if all_edits %}<details><summary>{{ edits_total }} edit{{ "s" if edits_total != 1 }}{% if edits_total > max_rows %} (first {{ max_rows }}; the rest are in changes.jsonl){% endif %}</summary>
<table><tr><th>edit</th><th>round</th><th>operation</th><th>item</th><th>target</th><th>attempts</th><th>outcome</th><th>tokens</th><th>last reason</th></tr>
{% for e in all_edits %}<tr><td><code>{{ e.edit_id }}</code></td><td class="num">{{ e.round }}</td><td>{{ e.operation }}</td><td><code>{{ e.item_id }}</code></td><td>{{ e.target }}</td><td class="num">{{ e.attempts }}</td><td class="outcome-{{ e.outcome|replace(' ', '-') }}">{{ e.outcome }}</td><td class="num">{{ e.tokens }}</td><td>{{ e.reason }}</td></tr>{% endfor %}
</table></details>{% else %}<p>No edits.</p>{% endif %}
<p class="muted small">Generated by RefineLab from report.json, changes.jsonl and refined.jsonl in the run folder.</p>
</body>
</html>
"""


def render_html(run: dict[str, Any]) -> str:
    env = Environment(autoescape=True, trim_blocks=False, lstrip_blocks=False)
    return env.from_string(TEMPLATE).render(**build_context(run))


def build_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write `report.html` into the run folder (or `out`) and return its path."""
    run = load_run(run_dir)
    html = render_html(run)
    target = Path(out) if out is not None else Path(run_dir) / "report.html"
    return atomic_write_text(target, html)
