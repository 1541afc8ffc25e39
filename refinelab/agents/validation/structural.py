"""Deterministic checks on a candidate, run before any model is asked: malformed options, a leaked key, a
stem that asks another question, and (for new items) a near-duplicate of an item already in the set, a
reference to a passage the item does not include, or a copy of a taxonomy example."""

from __future__ import annotations

import contextlib
import re
import threading

import numpy as np

from refinelab.agents.context import AgentContext
from refinelab.agents.dedup import DuplicateIndex
from refinelab.agents.labels import exemplar_vectors
from refinelab.metrics.error_checks import CHECKS, check_row
from refinelab.operations import operation
from refinelab.schema import QAItem, normalise_text
from refinelab.state import EditTask
from refinelab.tools.embeddings import normalize

_INDEX_LOCK = threading.Lock()
#: An edit of an existing item may reword its stem, not replace it: under this cosine (the run's embedder)
#: between the old stem and the new one the edit asks another question. A fresh `make demo` committed a
#: fix whose stem had become "This question was flagged: ok." (0.17 to "Why is the sky blue?"); a rewording
#: of the same stem that also stated its answer read 0.82.
STEM_KEPT_COSINE = 0.4
_WORD = re.compile(r"[a-z0-9]{3,}")
_FUNCTION_WORDS = frozenset({"the", "and", "for", "are", "was", "were", "which", "what", "who", "whom", "whose",
                             "why", "how", "when", "where", "that", "this", "these", "those", "with", "from",
                             "following", "does", "did", "not", "its", "has", "have", "had", "can", "will", "would",
                             "should", "most", "all", "any", "one", "into", "than", "then", "there", "their"})
STRUCTURAL_CHECKS = frozenset({"blank_question", "too_few_options", "empty_option", "duplicate_options",
                               "key_out_of_range", "near_duplicate_options", "answer_leak",
                               "label_only_options"})


def structural_flaws(item: QAItem) -> set[str]:
    """The names of the `STRUCTURAL_CHECKS` that fire on `item` (metrics/error_checks.py)."""
    return {name for d in check_row(item, expected_choices=len(item.choices))
            if d.flag and (name := d.check.removeprefix("error.")) in STRUCTURAL_CHECKS}


def structural_problems(ctx: AgentContext, task: EditTask, item: QAItem) -> list[str]:
    """Deterministic checks; any hit rejects the candidate before a model is asked. An edit of an existing
    item is refused only for a flaw it introduces (a distractor rewrite of an item whose stem already
    names its key is not the rewrite's doing); a new item, for any. A fix that rewrote a stem into
    "... is applicable only for constant pressure processes", the key's own text, is refused here."""
    flaws = structural_flaws(item)
    base = None
    if not operation(task.operation).creates_item:
        with contextlib.suppress(KeyError):  # no original to compare with: every flaw counts
            base = ctx.store.item(task.item_id)
    if flaws and base is not None:
        flaws -= structural_flaws(base)
    problems = [f"{name}: {CHECKS[name].description}" for name in sorted(flaws)]
    if base is not None and (replaced := stem_replaced(ctx, base, item)):
        problems.append(replaced)
    if operation(task.operation).creates_item:
        if unsound := unsound_new_item(ctx, item):
            problems.append(unsound)
        duplicate = duplicate_index(ctx).nearest(item, exclude={item.id})
        if duplicate is not None:
            problems.append(f"too close to existing item {duplicate.item_id} "
                            f"({duplicate.method} similarity {duplicate.similarity:.2f}); write a different question")
        problems += copied_from_reference(ctx, item)
    return problems


def copied_from_reference(ctx: AgentContext, item: QAItem) -> list[str]:
    """A new item found in a reference the run decontaminates against (`refine --decontaminate`): the set was
    cleaned of that reference's items, and a writer that has seen the benchmark must not bring one back."""
    problems = []
    for reference in ctx.contamination_references:
        for match in reference.match([item]):
            how = match.kind.replace("_", " ") + (f", similarity {match.similarity:.2f}" if match.kind == "near" else "")
            problems.append(f"in_reference: a copy of {match.reference_id} of {reference.name}, which this run "
                            f"decontaminates against ({how}); write a different question")
    return problems


def _content_words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower())) - _FUNCTION_WORDS


def stem_replaced(ctx: AgentContext, base: QAItem, item: QAItem) -> str | None:
    """Why `item`'s stem no longer asks `base`'s question, or None. Both must say so: it shares
    no content word with the old stem, and its cosine to it is under `STEM_KEPT_COSINE`. Either alone
    refuses honest rewordings ("the chemical symbol of sodium" → "the symbol of the element with atomic
    number 11" shares one word; a hash embedder reads it far apart). Only a stem that changed is embedded."""
    if normalise_text(base.question) == normalise_text(item.question):
        return None
    if _content_words(base.question) & _content_words(item.question):
        return None
    old, new = normalize(ctx.embedder()([base.question, item.question]))
    cosine = float(old @ new)
    if cosine >= STEM_KEPT_COSINE:
        return None
    return (f"stem_replaced: the new stem does not ask the original question (cosine {cosine:.2f} to it, under "
            f"{STEM_KEPT_COSINE}); reword the question, keep what it asks")


_REFERS_TO_TEXT = re.compile(r"\b(?:the|this|following|above|below|given)\s+(?:passage|excerpt|quotation|quote|"
                             r"text|paragraph|speech|letter|statute|table|graph|data)\b", re.IGNORECASE)
MIN_PASSAGE_CHARS = 200  # a stem that points at a text yet is shorter than this cannot contain that text
EXAMPLE_COPY_COSINE = 0.9  # a new stem this close to one of the taxonomy's example stems is a copy of it


def lacks_its_passage(question: str) -> bool:
    """Whether a stem points at a passage, quotation or data yet is too short to contain it."""
    return bool(_REFERS_TO_TEXT.search(question)) and len(question) < MIN_PASSAGE_CHARS


def unsound_new_item(ctx: AgentContext, item: QAItem) -> str:
    """Why a new item is unsound (empty when it is not): it points at a passage it does not
    include, or it copies one of the taxonomy's example stems (which a labeller matching those examples
    would put in the cell for nothing). Regular expressions and one embedding; no model call."""
    if lacks_its_passage(item.question):
        return ("the question refers to a passage, quotation or data it does not include: put the text in the "
                "question")
    vectors = exemplar_vectors(ctx)
    if vectors:
        closest = closest_example(vectors, normalize(ctx.embedder()([item.question]))[0])
        if closest >= EXAMPLE_COPY_COSINE:
            return (f"the question copies an example of the skill taxonomy (cosine {closest:.2f}): write a new "
                    "question")
    return ""


def closest_example(vectors: dict[str, np.ndarray], stem: np.ndarray) -> float:
    """The highest cosine of a unit-length stem embedding to any skill's unit-length example embeddings:
    at `EXAMPLE_COPY_COSINE` or above, the stem copies a taxonomy example."""
    return max(float((v @ stem).max()) for v in vectors.values())


def duplicate_index(ctx: AgentContext) -> DuplicateIndex:
    """The run's near-duplicate index, built on first use and topped up with items added since."""
    with _INDEX_LOCK:
        index = ctx.dedup_index
        if index is None:
            index = ctx.dedup_index = DuplicateIndex(ctx.options.dedup)
    index.add([ctx.store.item(i) for i in ctx.store.item_ids() if i not in index])  # only items added since
    return index
