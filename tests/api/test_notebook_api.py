"""The Python API as a notebook user meets it (the audit of the API, /tmp/audit_api/FINDINGS.md): a DataFrame
reads as the CSV file it came from, the CLI's --columns text works as `columns=`, the result objects print
short, and profile/plan/screen check their arguments before any folder exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import refinelab
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
    rows = [{"question": "Q1?", "choices": ["a", "b"], "answer": 0}, {"question": "Q2?", "answer": 0}]
    kept = as_dataset(rows, on_invalid="quarantine")  # a later row without options is that row's problem
    assert len(kept) == 1 and "row 2, field 'choices'" in str(kept.rejected[0])


def test_columns_accept_the_cli_text_and_refuse_a_list_in_one_line() -> None:
    frame = _frame()
    dataset = as_dataset(frame, columns="question=Stem,choices=A,B,C,D,answer=Key")
    assert len(dataset) == 4 and dataset[1].choices == ["one 1", "two 1", "three 1", "four 1"]
    assert dataset[1].answer == 1
    with pytest.raises(ConfigError, match="expected a mapping of our field to its column") as info:
        as_dataset(frame, columns=HEADER)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def _settings(tmp_path: Path) -> Any:
    from refinelab.config import load_settings

    return load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite"),
                                    "use_cache": False})


def _hooks() -> Any:
    from refinelab.agents.options import RunHooks
    from tests.support.scripted import models

    return RunHooks(chat_models=models())


TARGETS = Path(__file__).resolve().parents[2] / "targets" / "uniform_mmlu.yaml"


def test_profile_and_plan_take_a_targets_path_and_a_str_folder(tmp_path: Path) -> None:
    from tests.support.scripted import EXTRAS

    settings = _settings(tmp_path)
    result = refinelab.profile(_frame(), out_dir=tmp_path / "prof", targets=str(TARGETS), settings=settings,
                               hooks=_hooks(), options=EXTRAS)
    assert result.report["targets"]["coverage"]
    text = repr(result)
    assert text.startswith("ProfileResult(out_dir=") and "items=4" in text and len(text) < 300
    report = refinelab.plan(_frame(), budget=5_000, folder=str(tmp_path / "plan"), targets=TARGETS,
                            settings=settings, hooks=_hooks(), options=EXTRAS)
    assert report["dry_run"] is True and (tmp_path / "plan" / "plan.json").is_file()


def test_bad_targets_and_budgets_leave_no_folder(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with pytest.raises(ConfigError, match="expected a Targets, a path to a target YAML file or a mapping"):
        refinelab.profile(_frame(), out_dir=tmp_path / "p1", targets=42, settings=settings)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"budget must be >= 0"):
        refinelab.profile(_frame(), out_dir=tmp_path / "p2", budget=-1, settings=settings)
    with pytest.raises(ConfigError, match=r"budget must be >= 0"):
        refinelab.screen(_frame(), out_dir=tmp_path / "s1", budget=-1, settings=settings)
    with pytest.raises(ConfigError, match="whole number"):
        refinelab.screen(_frame(), out_dir=tmp_path / "s2", budget="100", settings=settings)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="expected a Targets, a path to a target YAML file or a mapping"):
        refinelab.plan(_frame(), budget=100, folder=tmp_path / "p3", targets=[1], settings=settings)  # type: ignore[arg-type]
    assert not [p.name for p in tmp_path.iterdir() if p.name != "c.sqlite"]


def test_a_screen_result_prints_in_one_line(tmp_path: Path) -> None:
    from refinelab.api.screening import ScreenResult

    rows = [{"id": f"q{i}", "p_error": 0.1, "flag": False, "evidence": {"x": "y" * 500}} for i in range(50)]
    result = ScreenResult(out_dir=tmp_path, rows=rows, calibration={"model": {}},
                          summary={"items": 50, "screened": 50, "flagged": 0, "threshold": 0.4, "stopped": None})
    text = repr(result)
    assert text == (f"ScreenResult(out_dir={str(tmp_path)!r}, items=50, screened=50, flagged=0, threshold=0.4, "
                    "calibrated)")


def test_profile_and_screen_document_their_parameters() -> None:
    import inspect

    for function, names in ((refinelab.profile, ("targets", "options", "hooks", "progress", "format", "split",
                                                 "strict", "budget")),
                            (refinelab.screen, ("budget", "target_precision", "prevalence", "progress"))):
        doc = inspect.getdoc(function) or ""
        for name in names:
            assert f"    {name}:" in doc, (function.__name__, name)


def test_the_overlap_example_in_the_docs_runs_on_data_with_repeated_options(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/python_api.md's find_overlap block, on an MMLU-layout folder whose test split has a row with two
    identical options (real MMLU has 14): it stopped at that row when read with the default on_invalid."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "python_api.md").read_text(encoding="utf-8")
    section = doc.split("## Overlap with another dataset")[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    code = code.replace('reference_split="val")', 'reference_split="val", method="lexical")')  # no MiniLM here
    for split, rows in (("test", [*ROWS, ["Which repeats?", "same", "same", "x", "y", "A"]]), ("val", ROWS[:2])):
        (tmp_path / "data" / split).mkdir(parents=True)
        pd.DataFrame(rows).to_csv(tmp_path / "data" / split / f"astronomy_{split}.csv", header=False, index=False)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/python_api.md", "exec"), {})  # noqa: S102 - the doc's own example
    assert (tmp_path / "overlap.jsonl").is_file() and (tmp_path / "clean.jsonl").is_file()


def test_a_dataset_prints_short_and_exports_the_hf_columns() -> None:
    rows = [{"id": f"r{i}", "question": f"Question {i}?", "choices": ["a", "b"], "answer": i % 2,
             "subject": ["astronomy", "virology"][i % 2], "note": i} for i in range(5)]
    dataset = as_dataset([*rows, {"id": "bad", "question": "Q?", "choices": ["x"], "answer": 0}],
                         on_invalid="quarantine", name="quiz")
    assert repr(dataset) == "Dataset(name='quiz', items=5, subjects=2, rejected=1)"
    frame = dataset.to_pandas()
    assert list(frame.columns) == ["id", "question", "choices", "answer", "subject", "domain", "skill",
                                   "difficulty", "metadata", "provenance"]
    assert len(frame) == 5 and list(frame.loc[1, "choices"]) == ["a", "b"] and frame.loc[1, "answer"] == 1
    import json

    assert json.loads(frame.loc[0, "metadata"]) == {"note": 0}
    assert isinstance(json.loads(frame.loc[0, "provenance"]), dict)
