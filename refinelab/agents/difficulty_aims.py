"""The difficulty buckets a round's new items are written for (`RunOptions.expand_aims_difficulty`).

Expand is bought for a domain x skill cell, and a writer told nothing of difficulty writes items the panel
finds easy: on the 50k JSD eval 35 of 39 new items read easy, 4 medium, none hard, and the set's difficulty
JSD went from 0.004 to 0.011 (evals/results/jsd_curve_final_50k.md). The plan therefore deals each round's
expand drafts a bucket, the ones the set is short of against its difficulty targets, and each task carries
its batch's aims (`EditTask.aims`): the whole round is dealt at once, so batches drafted side by side do
not all aim at the same gap. The new item still counts in the bucket the panel measures for it.

Off by default (`RunOptions.expand_aims_difficulty`): on the 50k JSD eval with the aims dealt
(evals/results/jsd_curve_aims_50k.md) 27 expands were asked for hard items and 15 committed, of which 13
read easy, 1 medium, 1 hard; the independent solver refused 8 of the 27 (3 of 20 easy-aimed). A new item
must be answered by that solver, the model the difficulty is measured with, so what the 1.5B can verify
it also finds easy. A stronger writer and solver (`MODEL@URL`) may make the aims pay.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from refinelab.planner.problem import targets_from_resolved
from refinelab.schema import QAItem

AIM_SEPARATOR = ","


def difficulty_aims(targets: Any, items: Iterable[QAItem], count: int) -> list[str]:
    """`count` buckets, in order: each in turn the bucket furthest below its target share of the measured
    items, counting the aims already dealt (ties go to the harder bucket). [] when `targets` set no
    difficulty shares."""
    try:
        plan_targets, buckets = targets_from_resolved(targets)
    except ValueError:
        return []
    shares = {name: float(plan_targets.difficulty.get(name, 0.0)) for name in buckets.names}
    if not any(shares.values()):
        return []
    counts = Counter(buckets.bucket(i.difficulty) for i in items if i.difficulty is not None)
    total = sum(counts.values())
    aims: list[str] = []
    for _ in range(count):
        total += 1
        aim = max(reversed(buckets.names), key=lambda name: shares[name] * total - counts[name])
        counts[aim] += 1
        aims.append(aim)
    return aims


def join_aims(aims: list[str]) -> str:
    """The aims as a task carries them (plain text: tasks travel as dicts)."""
    return AIM_SEPARATOR.join(aims)


def split_aims(text: str) -> list[str]:
    return [aim for aim in text.split(AIM_SEPARATOR) if aim] if text else []
