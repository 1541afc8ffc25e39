"""The figures of `report.html`: matplotlib drawn to SVG that is inlined into the page.

Kept apart from the page so matplotlib (slow to import, and only needed when a report is made) and the
figure-size caps live in one place. A run folder is untrusted, so every label is shortened and has `$`
escaped (matplotlib would parse mathtext), every figure draws a bounded number of bars and cells, and the
SVG is made safe to place several times in one document (ids prefixed per figure, comments stripped).
"""

from __future__ import annotations

import contextlib
import io
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from markupsafe import Markup, escape

from refinelab.api.report_views import edit_outcome
from refinelab.state import INTAKE_ROUND, SUCCEEDED

MAX_LABEL_CHARS = 28


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


class Plots:
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


def coverage_heatmap(plots: Plots, before: dict[str, Any], after: dict[str, Any],
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


def difficulty_histogram(plots: Plots, before: dict[str, Any], after: dict[str, Any],
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


def ledger_tokens(slot: Any) -> float:
    """A ledger slot's tokens; the schema (run_files.LedgerSlot) lets them be null or absent, read as 0."""
    return (slot or {}).get("tokens") or 0


def budget_chart(plots: Plots, ledger: dict[str, Any]) -> Markup:
    groups = [(name, ledger.get(key) or {}) for name, key in
              (("by node", "by_node"), ("by operation", "by_operation"), ("by model", "by_model"))]
    groups = [(n, g) for n, g in groups if g]
    if not groups:
        return Markup("")

    def draw(fig: Any) -> None:
        axes = fig.subplots(1, len(groups), squeeze=False)[0]
        for ax, (name, group) in zip(axes, groups, strict=True):
            items = sorted(group.items(), key=lambda kv: -ledger_tokens(kv[1]))[:12]
            labels = [_label(k) for k, _ in items][::-1]
            tokens = [ledger_tokens(v) for _, v in items][::-1]
            bars = ax.barh(labels, tokens, color="#2b7bb9")
            ax.bar_label(bars, labels=[f"{t:,}" for t in tokens], fontsize=7, padding=2)
            ax.set_title(name)
            ax.set_xlabel("tokens")
            ax.margins(x=0.25)

    height = 1.4 + 0.3 * max(len(g) for _, g in groups)
    return plots.render(draw, "token spend by node, operation and model", (11.0, min(6.0, height)))


# Per round, per operation: a count of edits (or of tokens, for `spent`).
_Tally = dict[int, Counter[str]]


def operations_chart(plots: Plots, plans: list[dict[str, Any]], groups: dict[str, list[dict[str, Any]]],
                     gave_up: set[str]) -> tuple[Markup, list[dict[str, Any]], str]:
    """Planned vs applied operations per round, stacked by operation; also the table behind it (every round
    and operation), and a note on what the chart sums: at most MAX_CHART_BARS rounds (the first ones) and
    MAX_CHART_OPERATIONS operations (the most frequent), the rest summed into a last bar and a last stack."""
    planned, plan_of = _planned_operations(plans)
    applied, failed, spent = _edit_outcomes(groups, gave_up)
    rows = _operation_rows(planned, applied, failed, spent, plan_of)
    rounds = sorted(set(planned) | set(applied) | set(failed))
    if not rounds:
        return Markup(""), rows, ""
    names, labels, bars, note = _operation_bars(rounds, planned, applied, failed)
    chart = plots.render(lambda fig: _draw_operations(fig, names, labels, bars),
                         "operations planned and applied per round", (7.5, 3.4))
    return chart, rows, note


def _planned_operations(plans: list[dict[str, Any]]) -> tuple[_Tally, dict[int, dict[str, Any]]]:
    """What the plans bought, per round and operation, and each round's first plan (the table reads its
    forecast from it). A plan without a round is numbered by its place in the list, as the plans table does."""
    planned: _Tally = defaultdict(Counter)
    plan_of: dict[int, dict[str, Any]] = {}
    for index, plan in enumerate(plans, 1):
        rnd = int(plan.get("round") or index)
        plan_of.setdefault(rnd, plan)
        for op, info in (plan.get("by_op") or {}).items():
            planned[rnd][op] += int((info or {}).get("count", 0))
    return planned, plan_of


def _edit_outcomes(groups: dict[str, list[dict[str, Any]]], gave_up: set[str]) -> tuple[_Tally, _Tally, _Tally]:
    """What the edits did, per round and operation: how many were applied, how many not, and the tokens all
    their attempts spent. An edit counts once, under its first attempt's round and operation."""
    applied: _Tally = defaultdict(Counter)
    failed: _Tally = defaultdict(Counter)
    spent: _Tally = defaultdict(Counter)
    for attempts in groups.values():
        rnd, op = int(attempts[0].get("round") or 0), str(attempts[0].get("operation"))
        spent[rnd][op] += sum(int(a.get("tokens") or 0) for a in attempts)
        if edit_outcome(attempts, gave_up) in SUCCEEDED:
            applied[rnd][op] += 1
        else:
            failed[rnd][op] += 1
    return applied, failed, spent


def _operation_rows(planned: _Tally, applied: _Tally, failed: _Tally, spent: _Tally,
                    plan_of: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The table under the chart: one row per round and operation that was planned or tried, uncapped (the
    page cuts it), so that what the chart sums is still listed."""
    pairs = sorted({(r, op) for table in (planned, applied, failed) for r, counts in table.items()
                    for op, n in counts.items() if n})  # only what happened: rounds × operations can be large
    return [{"round": _round_name(r).removeprefix("round "), "operation": op, "planned": planned[r][op], "applied": applied[r][op],
             "not_applied": failed[r][op], "tokens": spent[r][op],
             "forecast": round(float(((plan_of.get(r, {}).get("by_op") or {}).get(op) or {}).get("tokens", 0)))}
            for r, op in pairs]


def _operation_bars(rounds: list[int], planned: _Tally, applied: _Tally,
                    failed: _Tally) -> tuple[list[str], list[str], dict[str, list[list[int]]], str]:
    """What the chart draws, within its caps (drawing time grows with the bars, and tab10 has ten colours): the
    bar names (the first rounds), the stack labels (the most frequent operations), the planned and applied
    counts per bar and stack with the rest summed into a last bar and stack, and the note saying so."""
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
    return names, labels, bars, "; ".join(filter(None, notes))


def _draw_operations(fig: Any, names: list[str], labels: list[str], bars: dict[str, list[list[int]]]) -> None:
    """Two stacked bars per round, planned (hatched, faded) beside applied, each topped with its name; the
    legend names the operations once, from the applied bars."""
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


def _round_name(rnd: int) -> str:
    """How a round is shown: the intake's removals (decontamination, before profiling) are no plan's round."""
    return "intake" if rnd == INTAKE_ROUND else f"round {rnd}"
