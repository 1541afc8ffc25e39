"""Synthetic MCQ datasets of any size that the scripted model can answer (the key is marked in the stem
as '(key X)'): the scale bench and the batch tests need many distinct, valid items without shared data."""

from __future__ import annotations

import random

from refinelab.schema import Dataset, QAItem

SUBJECTS = ["astronomy", "anatomy", "college_physics", "high_school_biology", "world_religions", "marketing"]


def synthetic_dataset(n: int, seed: int = 0) -> Dataset:
    rng = random.Random(seed)
    words = [f"{a}{b}" for a in ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi") for b in ("pe", "su", "do", "fa")]
    items = []
    for i in range(n):
        stem = " ".join(rng.choice(words) for _ in range(12))
        key = rng.randrange(4)
        items.append(QAItem(id=f"s{i}", question=f"Item {i}: {stem} (key {'ABCD'[key]})?",
                            choices=[f"{rng.choice(words)} {j} {i}" for j in range(4)], answer=key,
                            subject=SUBJECTS[i % len(SUBJECTS)]))
    return Dataset(items, name=f"synthetic{n}")
