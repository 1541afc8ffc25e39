"""Overlap between two datasets: which items of DATA a REFERENCE already holds (or, with no reference,
which items of DATA repeat an earlier one of its own).

A benchmark whose test items also sit in a training set, or a split leaking into another, scores less than
it claims; finding that is the first audit a benchmark builder runs. Three strengths, each reported with its
evidence (the reference item matched and how closely):

- `exact`: the same question and the same options up to case, spacing and the options' order
  (`QAItem.fingerprint`);
- `same_question`: the same question with other options (the stem leaked, the options were rewritten);
- `near`: stem and options read alike: the MiniLM cosine at or above `threshold` (0.92 by default, where
  paraphrases of one question score: `agents.dedup`), or word-set Jaccard (0.8) with `method="lexical"`,
  which needs no model but misses paraphrases; and at least half their options the same (`any_options`
  drops this, to find items sharing a passage or a template). The options rule is measured: MiniLM reads the
  first 256 word pieces, so two questions on one long passage scored 1.000 with not one option in common
  (MMLU's history items): of the 100 near matches of MMLU val in MMLU test at 0.92, 31 were such and 56
  shared under half their options; the rule keeps 44 (evals/results/overlap.md).

No model tokens; embeddings are cached on disk as everywhere else. Nothing is removed: the report is for a
person to act on. evals/eval_overlap.py measures it on real benchmark files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from refinelab.agents.dedup import EMBEDDING_THRESHOLD, LEXICAL_THRESHOLD, DuplicateIndex
from refinelab.atomic import atomic_write_text
from refinelab.errors import DataError
from refinelab.io import DatasetInput, as_dataset, require_items
from refinelab.schema import Dataset, QAItem, normalise_text

MatchKind = Literal["exact", "same_question", "near"]
KINDS: tuple[MatchKind, ...] = ("exact", "same_question", "near")
_CHUNK = 512  # items embedded per step, one progress update each
_CANDIDATES = 8  # the most similar reference items looked at for one whose options agree (and, within one
# set, that comes before the item: the item itself is among them)


@dataclass(frozen=True)
class OverlapMatch:
    """One item of the data found in the reference: how (`kind`), how closely (`similarity`; 1.0 for the
    text matches), whether the two keys say the same (`same_key`, up to case and spacing) and the two
    questions, for a person to judge. An exact copy keyed otherwise is a key error in one of the two; a near
    match keyed otherwise is most often another question from one template ("… for n = 7" and "for n = 6")."""

    item_id: str
    reference_id: str
    kind: MatchKind
    similarity: float
    same_key: bool
    question: str
    reference_question: str


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
    if method not in {"embedding", "lexical"}:
        raise ValueError(f"method must be 'embedding' or 'lexical', got {method!r}")
    if threshold is None:
        threshold = EMBEDDING_THRESHOLD if method == "embedding" else LEXICAL_THRESHOLD
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    items = require_items(as_dataset(data, columns=columns, split=split, on_invalid="quarantine"), "compare")
    within = reference is None
    if within and reference_split is not None:
        raise ValueError("reference_split needs a reference")
    known = items if reference is None else require_items(as_dataset(
        reference, columns=columns, split=reference_split, on_invalid="quarantine"), "compare with")
    report = OverlapReport(data=items.name, reference=known.name, items=len(items), reference_items=len(known),
                           method=method, threshold=threshold, within=within, invalid=len(items.rejected),
                           reference_invalid=0 if within else len(known.rejected))
    by_fingerprint: dict[tuple[str, ...], QAItem] = {}
    by_question: dict[str, QAItem] = {}
    for ref in () if within else known:
        by_fingerprint.setdefault(ref.fingerprint, ref)
        by_question.setdefault(normalise_text(ref.question), ref)
    rest: list[QAItem] = []
    for item in items:
        if (found := by_fingerprint.get(item.fingerprint)) is not None:
            report.matches.append(_match(item, found, "exact", 1.0))
        elif (found := by_question.get(normalise_text(item.question))) is not None:
            report.matches.append(_match(item, found, "same_question", 1.0))
        else:
            rest.append(item)
        if within:  # an item is matched to the ones before it only
            by_fingerprint.setdefault(item.fingerprint, item)
            by_question.setdefault(normalise_text(item.question), item)
    position = {item.id: n for n, item in enumerate(known)}
    allowed = (lambda item, ref: position[ref.id] < position[item.id]) if within else (lambda item, ref: True)
    report.matches += _near(known, rest, method, threshold, any_options, allowed, progress)
    order = {item.id: n for n, item in enumerate(items)}
    report.matches.sort(key=lambda m: order[m.item_id])
    return report


def _match(item: QAItem, found: QAItem, kind: MatchKind, similarity: float) -> OverlapMatch:
    same_key = normalise_text(item.answer_text) == normalise_text(found.answer_text)
    return OverlapMatch(item.id, found.id, kind, similarity, same_key, item.question, found.question)


def _near(reference: Dataset, items: list[QAItem], method: str, threshold: float, any_options: bool,
          allowed: Callable[[QAItem, QAItem], bool],
          progress: Callable[[int, int], None] | None) -> list[OverlapMatch]:
    """Near-duplicates of `items` in `reference` (among the reference items `allowed` for each): the whole
    reference is embedded (every one of its items can be a nearest), then the items, `_CHUNK` at a time."""
    if not items or not len(reference):
        return []
    total, done = len(reference) + len(items), 0
    index = DuplicateIndex(method)
    for start in range(0, len(reference), _CHUNK):
        index.add(reference.items[start:start + _CHUNK])
        done += len(reference.items[start:start + _CHUNK])
        if progress:
            progress(done, total)
    by_id = reference.by_id()
    matches = []
    for start in range(0, len(items), _CHUNK):
        part = items[start:start + _CHUNK]
        for item, candidates in zip(part, index.best_matches(part, top=_CANDIDATES), strict=True):
            found = next(((by_id[ref_id], similarity) for ref_id, similarity in candidates
                          if similarity >= threshold and allowed(item, by_id[ref_id])
                          and (any_options or options_agree(item, by_id[ref_id]))), None)
            if found is not None:
                matches.append(_match(item, found[0], "near", round(found[1], 4)))
        done += len(part)
        if progress:
            progress(done, total)
    return matches


def options_agree(item: QAItem, other: QAItem) -> bool:
    """At least half of the two items' options (as sets, up to case and spacing) are the same: a near match
    must share its options, not only a passage or a template."""
    mine, theirs = set(item.fingerprint[1:]), set(other.fingerprint[1:])
    return len(mine & theirs) >= 0.5 * len(mine | theirs)


def check_output(path: str | Path, inputs: Iterable[str | Path | None] = ()) -> Path:
    """Where `write_matches` may write, checked before the work: not one of the command's `inputs` (the matches
    would replace the data they were found in) and not a folder or a link."""
    path = Path(path)
    if any(source is not None and Path(source).resolve() == path.resolve() for source in inputs):
        raise DataError(str(path), None, None, "is an input of this comparison; write the matches elsewhere")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise DataError(str(path), None, None, "exists and is not a regular file; write the matches elsewhere")
    return path


def write_matches(report: OverlapReport, path: str | Path) -> Path:
    """Every match as one JSON line, written atomically (a failed write leaves no half file)."""
    path = check_output(path)
    atomic_write_text(path, "".join(json.dumps(asdict(m), ensure_ascii=False) + "\n" for m in report.matches))
    return path
