"""Damaged Arrow and Parquet files are one DataError, never a crash.

pyarrow reads some damaged files without complaint and only fails, or crashes, when their rows become Python
values: of 400 randomly damaged `save_to_disk` shards, 14 raised SystemError or UnicodeDecodeError, and
drawing more killed the process with a segmentation fault, until the reader validated each table in full
(`io/columnar.py`). The damage here is drawn the same way, in a child process, so a crash fails the test
instead of the test run: on the code before, the Arrow case ends in SIGSEGV and the Parquet case in an
uncaught UnicodeDecodeError."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = r"""
import json, random, sys
from pathlib import Path
from refinelab.errors import DataError
from refinelab.io import load_dataset

good, suffix, seed, count = Path(sys.argv[1]).read_bytes(), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng, outcomes = random.Random(seed), {"read": 0, "refused": 0}
target = Path(sys.argv[5]) / ("damaged" + suffix)
for _ in range(count):
    damaged = bytearray(good)
    for _ in range(rng.randint(1, 6)):
        damaged[rng.randrange(len(damaged))] = rng.randrange(256)
    if rng.random() < 0.2:
        damaged = damaged[:rng.randrange(len(damaged))]
    target.write_bytes(bytes(damaged))
    try:
        load_dataset(target, on_invalid="quarantine")
        outcomes["read"] += 1
    except DataError as exc:
        assert str(target) in str(exc), exc
        outcomes["refused"] += 1
print(json.dumps(outcomes))
"""


def _table_file(tmp_path: Path, suffix: str) -> Path:
    import datasets

    rows = {"question": ["Which planet is largest?", "Symbol of sodium?", "Sides of a hexagon?"],
            "choices": [["Mars", "Jupiter"], ["Na", "S", "So"], ["5", "6", "7", "8"]], "answer": [1, 0, 1]}
    folder = tmp_path / "saved"
    data = datasets.Dataset.from_dict(rows)
    if suffix == ".arrow":
        data.save_to_disk(str(folder))
        return folder / "data-00000-of-00001.arrow"
    folder.mkdir()
    data.to_parquet(str(folder / "items.parquet"))
    return folder / "items.parquet"


@pytest.mark.parametrize("suffix", [".arrow", ".parquet"])
def test_randomly_damaged_tables_are_read_or_refused_in_one_line(tmp_path: Path, suffix: str) -> None:
    good = _table_file(tmp_path, suffix)
    done = subprocess.run([sys.executable, "-c", FUZZ, str(good), suffix, "1", "400", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    outcomes = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcomes["refused"] > 200 and outcomes["read"] + outcomes["refused"] == 400, outcomes
