"""Deterministic checks on a candidate, run before any model is asked: malformed options, a leaked key,
and (for new items) a near-duplicate of an item already in the set."""

from __future__ import annotations

import contextlib
import threading

from refinelab.agents.context import AgentContext
from refinelab.agents.dedup import DuplicateIndex
from refinelab.metrics.error_checks import CHECKS, check_row
from refinelab.operations import operation
from refinelab.schema import QAItem
from refinelab.state import EditTask

_INDEX_LOCK = threading.Lock()
STRUCTURAL_CHECKS = frozenset({"blank_question", "too_few_options", "empty_option", "duplicate_options",
                               "key_out_of_range", "near_duplicate_options", "answer_leak"})


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
    if flaws and not operation(task.operation).creates_item:
        with contextlib.suppress(KeyError):  # no original to compare with: every flaw counts
            flaws -= structural_flaws(ctx.store.item(task.item_id))
    problems = [f"{name}: {CHECKS[name].description}" for name in sorted(flaws)]
    if operation(task.operation).creates_item:
        duplicate = duplicate_index(ctx).nearest(item, exclude={item.id})
        if duplicate is not None:
            problems.append(f"too close to existing item {duplicate.item_id} "
                            f"({duplicate.method} similarity {duplicate.similarity:.2f}); write a different question")
    return problems


def duplicate_index(ctx: AgentContext) -> DuplicateIndex:
    """The run's near-duplicate index, built on first use and topped up with items added since."""
    with _INDEX_LOCK:
        index = ctx.dedup_index
        if index is None:
            index = ctx.dedup_index = DuplicateIndex(ctx.options.dedup)
    index.add([ctx.store.item(i) for i in ctx.store.item_ids() if i not in index])  # only items added since
    return index
