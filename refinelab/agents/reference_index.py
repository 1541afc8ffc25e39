"""A reference set indexed for finding its items elsewhere: in another dataset (`refinelab data overlap`),
among a run's input items (`refine --decontaminate`, before profiling) and in each new item the run's writer
makes (the validator's structural check: a new item must not bring the reference's question back in).

Three strengths of match, the same wherever the index is asked:

- `exact`: the same question and the same options up to case, spacing and the options' order
  (`QAItem.fingerprint`);
- `same_question`: the same question with other options (the stem leaked, the options were rewritten);
- `near`: stem and options read alike: the MiniLM cosine at or above the threshold (0.92 by default, where
  paraphrases of one question score: `agents.dedup`), or word-set Jaccard (0.8) with `method="lexical"`;
  and at least half their options the same (`any_options` drops this, to find items sharing a passage or a
  template). MiniLM reads the first 256 word pieces, so two questions on one long passage scored 1.000 with
  not one option in common (MMLU's history items): evals/results/overlap.md.

The reference is embedded once, when first needed; embeddings are cached on disk as everywhere else.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from refinelab.agents.dedup import EMBEDDING_THRESHOLD, LEXICAL_THRESHOLD, DuplicateIndex
from refinelab.schema import Dataset, QAItem, normalise_text

MatchKind = Literal["exact", "same_question", "near"]
KINDS: tuple[MatchKind, ...] = ("exact", "same_question", "near")
_CHUNK = 512  # items embedded per step, one progress update each
_CANDIDATES = 8  # the most similar reference items looked at for one whose options agree (and, within one
# set, that comes before the item: the item itself is among them)


@dataclass(frozen=True)
class OverlapMatch:
    """One item found in the reference: how (`kind`), how closely (`similarity`; 1.0 for the text matches),
    whether the two keys say the same (`same_key`, up to case and spacing) and the two questions, for a
    person to judge. An exact copy keyed otherwise is a key error in one of the two; a near match keyed
    otherwise is most often another question from one template ("… for n = 7" and "for n = 6")."""

    item_id: str
    reference_id: str
    kind: MatchKind
    similarity: float
    same_key: bool
    question: str
    reference_question: str


class ReferenceIndex:
    """The items of `reference` by fingerprint, by question and (embedded when first needed) by meaning."""

    def __init__(self, reference: Dataset, *, method: str = "embedding", threshold: float | None = None,
                 any_options: bool = False) -> None:
        threshold = match_threshold(method, threshold)
        self.reference, self.name = reference, reference.name
        self.method, self.threshold, self.any_options = method, threshold, any_options
        self._by_id = reference.by_id()
        self._position = {item.id: n for n, item in enumerate(reference)}
        self._by_fingerprint: dict[tuple[str, ...], QAItem] = {}
        self._by_question: dict[str, QAItem] = {}
        for item in reference:  # the first of repeated items is the one matched
            self._by_fingerprint.setdefault(item.fingerprint, item)
            self._by_question.setdefault(normalise_text(item.question), item)
        self._near: DuplicateIndex | None = None
        self._building = threading.Lock()  # a run's validators ask from several threads

    def __len__(self) -> int:
        return len(self.reference)

    def digest(self) -> str:
        """What the reference holds, as one hash of its items' fingerprints (in any order, any file format): a
        resumed run re-reads its reference only if it still holds the same items."""
        return content_digest(self.reference)

    def match(self, items: list[QAItem], *, within: bool = False,
              progress: Callable[[int, int], None] | None = None) -> list[OverlapMatch]:
        """At most one match per item of `items`, its strongest, in their order. `within`: `items` are the
        reference's own, and each is matched to an item before it only. `progress(done, total)` follows the
        embedding (the reference, when first needed, then the items)."""
        matches: list[OverlapMatch] = []
        rest: list[QAItem] = []
        for item in items:
            copy = self._by_fingerprint.get(item.fingerprint)
            same_question = self._by_question.get(normalise_text(item.question))
            if copy is not None and not (within and copy.id == item.id):  # within: an item's first is itself
                matches.append(_match(item, copy, "exact", 1.0))
            elif same_question is not None and not (within and same_question.id == item.id):
                matches.append(_match(item, same_question, "same_question", 1.0))
            else:
                rest.append(item)
        matches += self._near_matches(rest, within, progress)
        order = {item.id: n for n, item in enumerate(items)}
        return sorted(matches, key=lambda m: order[m.item_id])

    def _near_matches(self, items: list[QAItem], within: bool,
                      progress: Callable[[int, int], None] | None) -> list[OverlapMatch]:
        """Near-duplicates of `items` among the reference's items (for `within`, those before each item): the
        whole reference is embedded once (every one of its items can be a nearest), then the items, `_CHUNK`
        at a time."""
        if not items or not len(self.reference):
            return []
        done = 0
        with self._building:
            total = len(items) + (0 if self._near is not None else len(self.reference))
            if self._near is None:
                index = DuplicateIndex(self.method)
                for start in range(0, len(self.reference), _CHUNK):
                    part = self.reference.items[start:start + _CHUNK]
                    index.add(part)
                    done += len(part)
                    if progress:
                        progress(done, total)
                self._near = index
        matches = []
        for start in range(0, len(items), _CHUNK):
            part = items[start:start + _CHUNK]
            for item, candidates in zip(part, self._near.best_matches(part, top=_CANDIDATES), strict=True):
                found = next(((self._by_id[ref_id], similarity) for ref_id, similarity in candidates
                              if similarity >= self.threshold and self._allowed(item, ref_id, within)
                              and (self.any_options or options_agree(item, self._by_id[ref_id]))), None)
                if found is not None:
                    matches.append(_match(item, found[0], "near", round(found[1], 4)))
            done += len(part)
            if progress:
                progress(done, total)
        return matches

    def _allowed(self, item: QAItem, reference_id: str, within: bool) -> bool:
        return not within or self._position[reference_id] < self._position[item.id]


def match_threshold(method: str, threshold: float | None) -> float:
    """The similarity a near match needs: `threshold`, or the method's default; ValueError when either is
    out of range (checked before any set is read)."""
    if method not in {"embedding", "lexical"}:
        raise ValueError(f"method must be 'embedding' or 'lexical', got {method!r}")
    if threshold is None:
        return EMBEDDING_THRESHOLD if method == "embedding" else LEXICAL_THRESHOLD
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    return threshold


def _match(item: QAItem, found: QAItem, kind: MatchKind, similarity: float) -> OverlapMatch:
    same_key = normalise_text(item.answer_text) == normalise_text(found.answer_text)
    return OverlapMatch(item.id, found.id, kind, similarity, same_key, item.question, found.question)


def options_agree(item: QAItem, other: QAItem) -> bool:
    """At least half of the two items' options (as sets, up to case and spacing) are the same: a near match
    must share its options, not only a passage or a template."""
    mine, theirs = set(item.fingerprint[1:]), set(other.fingerprint[1:])
    return len(mine & theirs) >= 0.5 * len(mine | theirs)


def content_digest(dataset: Dataset) -> str:
    """sha256 of a set's item fingerprints, sorted: the same for the same items in any order or format."""
    digest = hashlib.sha256()
    for fingerprint in sorted("\x1f".join(item.fingerprint) for item in dataset):
        digest.update(fingerprint.encode("utf-8") + b"\x1e")
    return digest.hexdigest()
