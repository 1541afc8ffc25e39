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

Matching is `find_overlap`'s (exact copies, the same question, near-duplicates with their options shared);
no model tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.api.overlap import OverlapMatch, OverlapReport, find_overlap
from refinelab.errors import DataError
from refinelab.io import DatasetInput
from refinelab.operations import Op
from refinelab.schema import Dataset, Diagnostic
from refinelab.state import COMMITTED, PILOT_ROUND

CHECK = "contamination"  # the diagnostic each removed item carries
_KIND_WORDS = {"exact": "an exact copy of", "same_question": "the same question as", "near": "a near-duplicate of"}


def find_contamination(dataset: Dataset, reference: DatasetInput, *, split: str | None = None,
                       progress: Callable[[int, int], None] | None = None) -> OverlapReport:
    """The items of `dataset` found in `reference` (`find_overlap`; `progress(done, total)` follows the
    embedding), checked before any run folder exists: a reference that holds every item would leave nothing
    to refine, and says so."""
    report = find_overlap(dataset, reference, reference_split=split, progress=progress)
    if report.matches and len(report.matches) == len(dataset):
        raise DataError(report.reference, None, None, f"holds every item of {report.data} ({len(dataset)}); "
                        "nothing would be left to refine")
    return report


def contamination_notice(report: OverlapReport) -> str:
    """What the user reads before profiling starts; a reference's invalid rows are named, since an item
    matching one of them is not found."""
    left_out = (f" ({report.reference_invalid} invalid row(s) of the reference were left out: "
                "`refinelab data validate` lists them)") if report.reference_invalid else ""
    if not report.matches:
        return f"decontamination: none of the {report.items} items is in {report.reference}{left_out}"
    counts = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in report.counts().items() if n)
    return (f"decontamination: {len(report.matches)} of {report.items} items are in {report.reference} ({counts}); "
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


def apply_contamination(ctx: AgentContext, report: OverlapReport, dataset: Dataset) -> None:
    """Remove the matched items from the run's store as committed `remove` edits of the pilot round (0 tokens,
    one attempt) with their evidence, a `contamination` diagnostic each, and the summary in the store's meta
    (`report.json` reads it). The planner's `target_total` is the valid input size, so it refills."""
    store, by_id = ctx.store, dataset.by_id()
    for match in report.matches:
        why, found = reason(match, report.reference), evidence(match, report.reference)
        edit_id = f"decontaminate-{match.item_id}"
        store.record_attempt(edit_id, 0, PILOT_ROUND, match.item_id, Op.REMOVE.value, "contamination",
                             by_id[match.item_id], None, "", 0)
        store.record_verdict(edit_id, 0, "pass", why, found)
        store.set_outcome(edit_id, match.item_id, Op.REMOVE.value, PILOT_ROUND, COMMITTED, why, 1)
        store.mark(match.item_id, "removed", why)
    store.put_diagnostics(Diagnostic(item_id=m.item_id, check=CHECK, flag=True, score=m.similarity,
                                     evidence=evidence(m, report.reference)) for m in report.matches)
    store.set_meta("decontamination", report.to_dict(with_matches=False))
    store.set_meta("target_total", len(dataset))
