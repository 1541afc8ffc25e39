"""Decontamination inside a run: the items of the data that a reference (a benchmark's test split, say)
already holds are taken out before profiling, each with its match as evidence, and the planner refills the
cells they leave short.

`refinelab data overlap` reports such items for a person to act on; `refine --decontaminate REFERENCE` acts
on them within the run, so that the removal sits in the audit trail (`changes.jsonl`: one `remove` line per
item, its evidence the reference item matched and how closely; `report.json`: `decontamination`) and the
set keeps its size where the budget allows. The user named the reference, so these removals are not the
planner's to weigh: an item found in it cannot stay, whatever its cell needs. They are not profiled (no
tokens spent on them) and they count against the size floor like any removal, so the planner removes
nothing more for balance when they already take the set below it. The planner plans against the valid input
size (`target_total`), so the cells they leave short are what its new items are bought for.

The references stay indexed for the whole run: each new item the writer makes is looked for in them too (the
validator's structural check refuses a copy, agents/validation/structural.py), since a small writer shown the
set's items can reproduce a benchmark question it has seen. A resumed run re-reads them from the paths its
settings.json records, if they still hold the same items (`restore_references`); a reference given in memory,
moved or changed cannot be, and the resume says so.

Matching is agents/reference_index.py's (exact copies, the same question, near-duplicates with their options
shared); no model tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.agents.reference_index import KINDS, OverlapMatch, ReferenceIndex
from refinelab.api.overlap import OverlapReport, compare, index_reference
from refinelab.errors import DataError, RefineLabError
from refinelab.io import DatasetInput
from refinelab.operations import Op
from refinelab.schema import Dataset, Diagnostic
from refinelab.state import COMMITTED, INTAKE_ROUND

CHECK = "contamination"  # the diagnostic each removed item carries
_KIND_WORDS = {"exact": "an exact copy of", "same_question": "the same question as", "near": "a near-duplicate of"}


def as_references(value: Any, split: str | None = None) -> list[Any]:
    """`decontaminate=` as a list of references: several paths (a list or tuple of `str`/`Path`), or one input
    of any kind `refine` takes (a list of dicts is one set of records, not several references). A `split` (of
    each reference) with no reference is refused: `refine` and `plan` ask here, before reading anything."""
    if value is None or (isinstance(value, list | tuple) and not value):
        if split is not None:
            raise ValueError("decontaminate_split needs decontaminate")
        return []
    if isinstance(value, list | tuple) and all(isinstance(v, str | Path) for v in value):
        return list(value)
    return [value]


@dataclass
class Contamination:
    """What the references hold of a dataset (`reports`, one per reference, in turn), the references indexed
    (`indexes`: each new item of the run is looked for in them) and how a resume finds them again
    (`sources`: settings.json's `decontaminate`)."""

    reports: list[OverlapReport] = field(default_factory=list)
    indexes: list[ReferenceIndex] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)


def find_contamination(dataset: Dataset, references: Sequence[DatasetInput], *, split: str | None = None,
                       progress: Callable[[int, int], None] | None = None) -> Contamination:
    """The items of `dataset` found in each reference in turn (an item found in one is not looked for in the
    next; `split` picks a split of each that holds several; `progress(done, total)` follows the embedding),
    checked before any run folder exists: references that hold every item would leave nothing to refine, and
    say so. Each report is named by the path given, or the set's name."""
    found_in = Contamination()
    rest = dataset
    for reference in references:
        index = index_reference(reference, split=split,
                                split_option=("--decontaminate-split", "decontaminate_split"))
        report = compare(rest, index, progress=progress)
        path = Path(reference).resolve() if isinstance(reference, str | Path) else None
        if path is not None:
            report.reference = index.name = str(reference)
        found_in.reports.append(report)
        found_in.indexes.append(index)
        found_in.sources.append({"reference": report.reference, "path": str(path) if path else None,
                                 "split": split, "digest": index.digest()})
        found = {m.item_id for m in report.matches}
        if len(found) == len(rest):
            named = ", ".join(r.reference for r in found_in.reports)
            raise DataError(named, None, None, f"{'holds' if len(found_in.reports) == 1 else 'hold'} every item "
                            f"of {dataset.name} ({len(dataset)}); nothing would be left to refine")
        rest = Dataset([item for item in rest.items if item.id not in found], name=dataset.name)
    return found_in


def summary(reports: Sequence[OverlapReport], dataset: Dataset) -> dict[str, Any]:
    """What `report.json` keeps under `decontamination`: totals, and each reference's own counts."""
    counts = {kind: sum(r.counts()[kind] for r in reports) for kind in KINDS}
    return {"reference": ", ".join(r.reference for r in reports), "items": len(dataset),
            "found": sum(len(r.matches) for r in reports), "counts": counts,
            "reference_invalid": sum(r.reference_invalid for r in reports),
            "references": [r.to_dict(with_matches=False) for r in reports]}


def contamination_notice(reports: Sequence[OverlapReport], dataset: Dataset) -> str:
    """What the user reads before profiling starts; the references' invalid rows are named, since an item
    matching one of them is not found."""
    total = summary(reports, dataset)
    left_out = (f" ({total['reference_invalid']} invalid row(s) of the reference were left out: "
                "`refinelab data validate` lists them)") if total["reference_invalid"] else ""
    if not total["found"]:
        return f"decontamination: none of the {len(dataset)} items is in {total['reference']}{left_out}"
    counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in total["counts"].items() if n)
    return (f"decontamination: {total['found']} of {len(dataset)} items are in {total['reference']} ({counts}); "
            f"they are removed, each with its match in changes.jsonl, and the planner refills their cells{left_out}")


def reason(match: OverlapMatch, reference: str) -> str:
    """The one line a removed item carries in the store and in `changes.jsonl`."""
    how = _KIND_WORDS[match.kind] + (f" (similarity {match.similarity:.3f})" if match.kind == "near" else "")
    keyed = "" if match.same_key else "; the two keys differ"
    return f"found in {reference}: {how} {match.reference_id}{keyed}"


def evidence(match: OverlapMatch, reference: str) -> dict[str, Any]:
    return {"method": "overlap", "reference": reference, "reference_id": match.reference_id, "kind": match.kind,
            "similarity": match.similarity, "same_key": match.same_key,
            "reference_question": match.reference_question}


def apply_contamination(ctx: AgentContext, contamination: Contamination, dataset: Dataset) -> None:
    """Remove the matched items from the run's store as committed `remove` edits of the intake round (0 tokens,
    one attempt; not the pilot's, whose summary prices the planner's operations) with their evidence, a
    `contamination` diagnostic each, and the summary in the store's meta (`report.json` reads it). The
    planner's `target_total` is the valid input size, so it refills; the references stay in the context, for
    the validator to look for each new item in."""
    store, by_id, reports = ctx.store, dataset.by_id(), contamination.reports
    ctx.contamination_references[:] = contamination.indexes
    diagnostics = []
    for report in reports:
        for match in report.matches:
            why, found = reason(match, report.reference), evidence(match, report.reference)
            edit_id = f"decontaminate-{match.item_id}"
            store.record_attempt(edit_id, 0, INTAKE_ROUND, match.item_id, Op.REMOVE.value, "contamination",
                                 by_id[match.item_id], None, "", 0)
            store.record_verdict(edit_id, 0, "pass", why, found)
            store.set_outcome(edit_id, match.item_id, Op.REMOVE.value, INTAKE_ROUND, COMMITTED, why, 1)
            store.mark(match.item_id, "removed", why)
            diagnostics.append(Diagnostic(item_id=match.item_id, check=CHECK, flag=True, score=match.similarity,
                                          evidence=found))
    store.put_diagnostics(diagnostics)
    store.set_meta("decontamination", summary(reports, dataset))
    store.set_meta("target_total", len(dataset))


def restore_references(ctx: AgentContext, sources: Sequence[dict[str, Any]]) -> list[str]:
    """Index again, for a resumed run's validator, the references the run started with (settings.json's
    `decontaminate`), each only if its path still holds the same items; what could not be, one notice each."""
    notices = []
    for source in sources:
        name, path = source.get("reference"), source.get("path")
        unchecked = f"new items are not looked for in {name} on this resume"
        if not path:
            notices.append(f"decontamination: {name} was given in memory, not as a path; {unchecked}")
            continue
        try:
            index = index_reference(path, split=source.get("split"))
        except (RefineLabError, OSError, ValueError) as exc:
            notices.append(f"decontamination: {path} cannot be read again ({exc}); {unchecked}")
            continue
        if index.digest() != source.get("digest"):
            notices.append(f"decontamination: {path} no longer holds the items the run started with; {unchecked}")
            continue
        index.name = str(name)
        ctx.contamination_references.append(index)
    if notices:  # report.json shows them beside the removals
        ctx.store.set_meta("decontamination", {**(ctx.store.get_meta("decontamination") or {}),
                                               "not_rechecked": notices})
    return notices
