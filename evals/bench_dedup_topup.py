"""Near-duplicate index top-up cost per validation: parse every item (old) vs only new ids (now)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from refinelab.agents.dedup import DuplicateIndex
from refinelab.io import load_dataset
from refinelab.tools.store import RunStore


def main() -> None:
    dataset = load_dataset("../shared/data/mmlu/test", on_invalid="quarantine").filter(limit=3000)
    store = RunStore(Path(tempfile.mkdtemp()) / "s.sqlite")
    store.load_items(dataset.items)
    index = DuplicateIndex("lexical")
    index.add(store.items())
    started = time.perf_counter()
    for _ in range(20):
        index.add(store.items())
    old = (time.perf_counter() - started) / 20
    started = time.perf_counter()
    for _ in range(20):
        index.add([store.item(i) for i in store.item_ids() if i not in index])
    new = (time.perf_counter() - started) / 20
    print(f"{len(dataset)} items: top-up per validation old {old * 1000:.1f} ms, new {new * 1000:.1f} ms")


if __name__ == "__main__":
    main()
