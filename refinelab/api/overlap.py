"""Overlap between two datasets: which items of DATA a REFERENCE already holds (or, with no reference,
which items of DATA repeat an earlier one of its own).

A benchmark whose test items also sit in a training set, or a split leaking into another, scores less than
it claims; finding that is the first audit a benchmark builder runs. Three strengths (`exact`,
`same_question`, `near`: agents/reference_index.py, where the matching lives, since a run's validator asks it
too), each reported with its evidence (the reference item matched and how closely). Of the 100 near matches of
MMLU val in MMLU test at 0.92, 31 shared one long passage with not one option in common and 56 shared under
half their options; the options rule keeps 44 (evals/results/overlap.md).

No model tokens; embeddings are cached on disk as everywhere else. Nothing is removed: the report is for a
person to act on. evals/eval_overlap.py measures it on real benchmark files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from refinelab.agents.reference_index import KINDS, OverlapMatch, ReferenceIndex, match_threshold
from refinelab.atomic import atomic_write_text
from refinelab.display import one_line
from refinelab.errors import DataError, SplitNeeded
from refinelab.io import DatasetInput, as_dataset, require_items, write_jsonl
from refinelab.schema import Dataset

SHOWN = 20  # matches `OverlapReport.match_lines` lists; `write_matches` writes every one


@dataclass
class OverlapReport:
    """What `find_overlap` found: at most one match per data item, its strongest, in the data's order."""

    data: str
    reference: str
    items: int
    reference_items: int
    method: str
    threshold: float
    within: bool = False  # the data against itself: each match is a later item repeating an earlier one
    invalid: int = 0  # rows of the data left out as invalid (`refinelab data validate` lists them)
    reference_invalid: int = 0
    matches: list[OverlapMatch] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Matched items per kind."""
        return {kind: sum(1 for m in self.matches if m.kind == kind) for kind in KINDS}

    def other_key(self) -> dict[str, int]:
        """Matched items per kind whose key says something else than the reference's."""
        return {kind: sum(1 for m in self.matches if m.kind == kind and not m.same_key) for kind in KINDS}

    @property
    def share(self) -> float:
        """The share of the data's items found in the reference."""
        return len(self.matches) / self.items if self.items else 0.0

    def to_dict(self, with_matches: bool = True) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "data": self.data, "reference": self.reference, "items": self.items,
            "reference_items": self.reference_items, "method": self.method, "threshold": self.threshold,
            "within": self.within, "invalid": self.invalid, "reference_invalid": self.reference_invalid,
            "found": len(self.matches), "share": self.share, "counts": self.counts(), "other_key": self.other_key()}
        return summary | ({"matches": [asdict(m) for m in self.matches]} if with_matches else {})

    # The report as a person reads it (`refinelab data overlap` prints these lines). Text from the datasets
    # (ids, names, questions) is written as it is: the caller escapes what a terminal would obey.

    def summary_lines(self, unmatched: tuple[Path, int] | None = None) -> list[str]:
        """How much of the data was found and how strongly, and where `write_unmatched` wrote the rest
        (`unmatched`: its path and count). A near match keyed otherwise is said apart: most often it is another
        question from one template, not a copy."""
        counts, other_key = self.counts(), self.other_key()
        where = ("repeat an earlier item of it" if self.within else
                 f"found in {self.reference} ({self.reference_items:,} items)")
        near_keys = (f"; {other_key['near']:,} of them keyed otherwise, most often another question from one "
                     "template" if counts["near"] else "")
        lines = [f"{self.data}: {len(self.matches):,} of {self.items:,} items ({self.share:.1%}) {where}: "
                 f"exact {counts['exact']:,}, same question {counts['same_question']:,}, near {counts['near']:,} "
                 f"(similarity >= {self.threshold:g}, {self.method}{near_keys})"]
        if unmatched:
            lines.append(f"{unmatched[1]:,} items not matched written to {unmatched[0]}")
        return lines

    def warnings(self) -> list[str]:
        """What the counts hide and a person should act on: rows left out as invalid (the share is of the
        valid items only), and exact copies keyed otherwise than the item they copy (one of the two keys is
        wrong)."""
        lines = []
        if self.invalid or self.reference_invalid:
            lines.append(f"warning: left out as invalid: {self.invalid:,} row(s) of {self.data}"
                         + (f", {self.reference_invalid:,} of {self.reference}" if self.reference_invalid else "")
                         + " (refinelab data validate lists them)")
        if exact := self.other_key()["exact"]:
            lines.append(f"warning: {exact:,} exact copies are keyed otherwise than the item they copy: one of "
                         "each pair has a wrong key")
        return lines

    def match_lines(self, shown: int = SHOWN, matches_file: Path | None = None) -> list[str]:
        """The first `shown` matches, one a line, then how many more and where they are (`matches_file`, as
        `write_matches` wrote it). A line, not a table: two ids and a question do not fit 80 columns, and a
        table cut the ids to "abstract_alg…"; only the question is shortened."""
        lines = [f"{m.item_id} found as {m.reference_id}: {m.kind}, similarity {m.similarity:.3f}, "
                 f"{'same key' if m.same_key else 'another key'}; {one_line(m.question, 80)}"
                 for m in self.matches[:shown]]
        if len(self.matches) > shown:
            lines.append(f"… {len(self.matches) - shown:,} more" + (f" in {matches_file}" if matches_file else
                                                                    " (--out FILE writes them all)"))
        return lines


def find_overlap(
    data: DatasetInput,
    reference: DatasetInput | None = None,
    *,
    method: str = "embedding",
    threshold: float | None = None,
    columns: Mapping[str, Any] | None = None,
    split: str | None = None,
    reference_split: str | None = None,
    any_options: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> OverlapReport:
    """The items of `data` that `reference` already holds (see the module docstring); without a reference,
    the items of `data` that repeat an earlier one of its own (each pair once, the later item matched to the
    earlier). Both take what `refine` takes (a path, our `Dataset`, a `datasets.Dataset`, a DataFrame, a list
    of dicts); `columns` maps both; `split`/`reference_split` pick a split of a folder holding several;
    `any_options` counts a near match whatever its options. Invalid rows are left out, as `data validate`
    lists them. `progress(done, total)` follows the embedding (items of both sets)."""
    threshold = match_threshold(method, threshold)  # a bad option fails before either set is read
    items = require_items(as_dataset(data, columns=columns, split=split, on_invalid="quarantine"), "compare")
    if reference is None:
        if reference_split is not None:
            raise ValueError("reference_split needs a reference")
        index = ReferenceIndex(items, method=method, threshold=threshold, any_options=any_options)
    else:
        index = index_reference(reference, split=reference_split, columns=columns, method=method,
                                threshold=threshold, any_options=any_options)
    return compare(items, index, within=reference is None, progress=progress)


def index_reference(reference: DatasetInput, *, split: str | None = None, columns: Mapping[str, Any] | None = None,
                    method: str = "embedding", threshold: float | None = None,
                    any_options: bool = False,
                    split_option: tuple[str, str] = ("--reference-split", "reference_split")) -> ReferenceIndex:
    """A reference read (invalid rows left out, counted in `compare`'s report) and indexed for matching.
    `split_option` is the flag and the Python keyword that choose the reference's split, for the error that
    asks for one."""
    try:
        read = as_dataset(reference, columns=columns, split=split, on_invalid="quarantine")
    except SplitNeeded as error:
        raise error.for_option(*split_option) from None
    known = require_items(read, "compare with")
    return ReferenceIndex(known, method=method, threshold=threshold, any_options=any_options)


def compare(items: Dataset, index: ReferenceIndex, *, within: bool = False,
            progress: Callable[[int, int], None] | None = None) -> OverlapReport:
    """The report of `items` looked for in an indexed reference (`within`: `items` are the reference's own)."""
    known = index.reference
    report = OverlapReport(data=items.name, reference=known.name, items=len(items), reference_items=len(known),
                           method=index.method, threshold=index.threshold, within=within,
                           invalid=len(items.rejected), reference_invalid=0 if within else len(known.rejected))
    report.matches = index.match(items.items, within=within, progress=progress)
    return report


def check_output(path: str | Path, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Where `write_matches` or `write_unmatched` may write, checked before the work: not one of the command's
    `inputs` (the output would replace the data it was made from) and not a folder or a link."""
    path = Path(path)
    if any(source is not None and Path(source).resolve() == path.resolve() for source in inputs):
        raise DataError(str(path), None, None, "is an input of this comparison; write it elsewhere")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise DataError(str(path), None, None, "exists and is not a regular file; write it elsewhere")
    return path


def write_unmatched(report: OverlapReport, data: Dataset, path: str | Path) -> tuple[Path, int]:
    """The items of `data` (the set the report was made from) that it did not match, in their order, as JSON
    lines of our schema, written atomically: a copy of DATA without the reference's items (decontaminated with
    no model tokens and no run), or, within one set, without its repeats (each first occurrence kept). Returns
    the path and the number of items written."""
    path = check_output(path)
    found = {m.item_id for m in report.matches}
    kept = [item for item in data if item.id not in found]
    write_jsonl(kept, path)
    return path, len(kept)


def write_matches(report: OverlapReport, path: str | Path) -> Path:
    """Every match as one JSON line, written atomically (a failed write leaves no half file)."""
    path = check_output(path)
    atomic_write_text(path, "".join(json.dumps(asdict(m), ensure_ascii=False) + "\n" for m in report.matches))
    return path
