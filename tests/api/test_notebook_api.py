"""The Python API as a notebook user meets it (the audit of the API, /tmp/audit_api/FINDINGS.md): a DataFrame
reads as the CSV file it came from, the CLI's --columns text works as `columns=`, the result objects print
short, and profile/plan/screen check their arguments before any folder exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from refinelab.errors import ConfigError, DataError
from refinelab.io import as_dataset

pd = pytest.importorskip("pandas")

HEADER = ["Stem", "A", "B", "C", "D", "Key"]
ROWS = [[f"Which option is number {i}?", f"one {i}", f"two {i}", f"three {i}", f"four {i}", "ABCD"[i % 4]]
        for i in range(4)]


def _frame() -> Any:
    return pd.DataFrame(ROWS, columns=HEADER)


def test_a_dataframe_with_option_columns_reads_as_its_csv_file(tmp_path: Path) -> None:
    frame = _frame()
    frame.to_csv(tmp_path / "hdr.csv", index=False)
    from_file = as_dataset(tmp_path / "hdr.csv")
    for data in (frame, frame.rename(columns={"Stem": "question", "Key": "answer"}), frame.to_dict("records")):
        dataset = as_dataset(data)
        assert [(i.question, i.choices, i.answer) for i in dataset] == \
            [(i.question, i.choices, i.answer) for i in from_file]
        assert dataset[0].metadata == {}  # every column was used


def test_a_row_without_options_says_so() -> None:
    frame = pd.DataFrame([{"Stem": "Why?", "Key": "D", "note": "x"}])
    with pytest.raises(DataError) as info:
        as_dataset(frame)
    message = str(info.value)
    assert "field 'choices': no options column; the row has Stem, Key, note" in message and "columns=" in message
    assert "beyond the 0 options" not in message and "\n" not in message


def test_columns_accept_the_cli_text_and_refuse_a_list_in_one_line() -> None:
    frame = _frame()
    dataset = as_dataset(frame, columns="question=Stem,choices=A,B,C,D,answer=Key")
    assert len(dataset) == 4 and dataset[1].choices == ["one 1", "two 1", "three 1", "four 1"]
    assert dataset[1].answer == 1
    with pytest.raises(ConfigError, match="expected a mapping of our field to its column") as info:
        as_dataset(frame, columns=HEADER)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
