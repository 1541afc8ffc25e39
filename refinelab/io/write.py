"""Writers: JSONL and Parquet, atomically (temp file then rename), so a failure never leaves a half-written file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from refinelab.atomic import atomic_write, open_exclusive
from refinelab.schema import QAItem


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    atomic_write(path, write)  # private temp folder, no link followed (refinelab/atomic.py)


def write_jsonl(dataset: Iterable[QAItem], path: str | Path) -> Path:
    path = Path(path)

    def write(tmp: Path) -> None:
        with open_exclusive(tmp) as handle:
            for item in dataset:
                handle.write(item.model_dump_json() + "\n")

    _atomic_write(path, write)
    return path


def write_parquet(dataset: Iterable[QAItem], path: str | Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    rows = []
    for item in dataset:
        row = item.model_dump()
        row["metadata"] = json.dumps(row["metadata"], ensure_ascii=False)
        row["provenance"] = json.dumps(row["provenance"], ensure_ascii=False)
        rows.append(row)
    _atomic_write(path, lambda tmp: pq.write_table(pa.Table.from_pylist(rows), tmp))
    return path
