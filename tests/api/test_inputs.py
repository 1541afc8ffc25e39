"""The Python API takes a path, our Dataset, a datasets.Dataset, a DataFrame or a list of dicts (issue 16).

Each input type drives a real (scripted-model) run; bad input of each kind is one DataError naming the
source, row and field, and leaves no run folder behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import refinelab
from refinelab.agents.options import RunHooks
from refinelab.config import load_settings
from refinelab.errors import DataError
from refinelab.io import as_dataset
from refinelab.schema import Dataset
from tests.support.scripted import EXTRAS, models

ROWS: list[dict[str, Any]] = [
    {"id": f"q{i}", "question": f"Input type question {i}: which option is marked (key A)?",
     "choices": [f"alpha {i}", f"beta {i}", f"gamma {i}", f"delta {i}"], "answer": i % 4,
     "subject": ["astronomy", "virology"][i % 2], "source_note": f"note {i}"}
    for i in range(6)
]


def _settings(tmp_path: Path) -> Any:
    return load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite"),
                                    "use_cache": False})


def _inputs(tmp_path: Path) -> dict[str, Any]:
    import datasets
    import pandas as pd

    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "source_note"}) + "\n" for r in ROWS))
    csv_path = tmp_path / "data.csv"
    csv_path.write_text("Question,A,B,C,D,Answer,Subject\n" + "".join(
        f"\"{r['question']}\",{','.join(r['choices'])},{'ABCD'[r['answer']]},{r['subject']}\n" for r in ROWS))
    return {
        "path_jsonl": jsonl,
        "path_csv_with_header": str(csv_path),
        "our_dataset": as_dataset(ROWS),
        "hf_dataset": datasets.Dataset.from_list(ROWS),
        "dataframe": pd.DataFrame(ROWS),
        "list_of_dicts": ROWS,
    }


@pytest.mark.parametrize("kind", ["path_jsonl", "path_csv_with_header", "our_dataset", "hf_dataset", "dataframe",
                                  "list_of_dicts"])
def test_refine_accepts_each_input_type(tmp_path: Path, kind: str) -> None:
    data = _inputs(tmp_path)[kind]
    result = refinelab.refine(data, budget=0, settings=_settings(tmp_path), run_id=f"in-{kind}".replace("_", "-"),
                              hooks=RunHooks(chat_models=models()), options=EXTRAS)
    assert isinstance(result, refinelab.RunResult)
    assert result.report["input_items"] == len(ROWS)
    refined = result.items()
    assert sorted(i.question for i in refined) == sorted(r["question"] for r in ROWS)
    by_question = {i.question: i for i in refined}
    for row in ROWS:
        assert by_question[row["question"]].answer == row["answer"]
        assert by_question[row["question"]].subject == row["subject"]
    if kind in ("hf_dataset", "dataframe", "list_of_dicts", "our_dataset"):  # unknown columns kept, not dropped
        assert by_question[ROWS[0]["question"]].metadata.get("source_note") == "note 0"


def test_profile_accepts_a_dataframe_and_defaults_its_folder(tmp_path: Path) -> None:
    import pandas as pd

    settings = _settings(tmp_path)
    result = refinelab.profile(pd.DataFrame(ROWS), settings=settings, hooks=RunHooks(chat_models=models()),
                               options={"validate_suspects": False})
    assert result.path.is_file() and result.out_dir.parent == settings.runs_dir
    assert result.report["items"] == len(ROWS) and result.report["dataset"] == "dataframe"


def test_columns_map_foreign_names(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame({"stem": [r["question"] for r in ROWS], "o1": [r["choices"][0] for r in ROWS],
                          "o2": [r["choices"][1] for r in ROWS], "key": ["AB"[i % 2] for i in range(len(ROWS))]})
    dataset = as_dataset(frame, columns={"question": "stem", "choices": ["o1", "o2"], "answer": "key"})
    assert [i.answer for i in dataset] == [i % 2 for i in range(len(ROWS))]
    assert dataset[0].choices == ROWS[0]["choices"][:2] and dataset[0].metadata == {}


def _bad_inputs() -> dict[str, tuple[Any, str]]:
    import datasets
    import pandas as pd

    one_choice = [dict(ROWS[0]), dict(ROWS[1], choices=["only"], answer=0)]
    return {
        "dataframe_bad_row": (pd.DataFrame(one_choice), "<dataframe>, row 2, field 'choices'"),
        "list_bad_answer": ([dict(ROWS[0], answer=9)], "<records>, row 1, field 'answer': answer 9 out of range"),
        "list_of_strings": (["not a row"], "<records>, row 1: expected a mapping"),
        "empty_list": ([], "no rows"),
        "dataset_dict": (datasets.DatasetDict({"test": datasets.Dataset.from_list(ROWS[:2])}), "several splits"),
        "an_int": (42, "expected a path, a refinelab Dataset"),
        "missing_path": ("no/such/file.jsonl", "no such file"),
        "hf_missing_question": (datasets.Dataset.from_list([{"choices": ["a", "b"], "answer": 0}]), "field 'question'"),
    }


@pytest.mark.parametrize("kind", list(_bad_inputs()))
def test_bad_input_is_one_line_and_leaves_no_run_folder(tmp_path: Path, kind: str) -> None:
    data, fragment = _bad_inputs()[kind]
    settings = _settings(tmp_path)
    with pytest.raises(DataError) as info:
        refinelab.refine(data, budget=100, settings=settings, run_id="bad", strict=True,
                         hooks=RunHooks(chat_models=models()), options=EXTRAS)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert not (settings.runs_dir / "bad").exists()
    with pytest.raises(DataError):
        refinelab.profile(data, out_dir=tmp_path / "prof", settings=settings, strict=True)
    assert not (tmp_path / "prof").exists()


def test_quarantined_rows_are_reported_not_fatal(tmp_path: Path) -> None:
    rows = [*ROWS, dict(ROWS[0], id="bad", question="Broken?", choices=["x"], answer=0)]
    dataset = as_dataset(rows, on_invalid="quarantine")
    assert isinstance(dataset, Dataset) and len(dataset) == len(ROWS)
    assert len(dataset.rejected) == 1 and "row 7" in str(dataset.rejected[0])


def test_public_names_are_exported_and_typed() -> None:
    import inspect

    assert set(refinelab.__all__) == {"__version__", *refinelab._EXPORTS}
    for name in ("resume", "RunResult", "Settings", "refine", "profile", "open_run", "as_dataset"):
        assert getattr(refinelab, name) is not None
    for function in (refinelab.refine, refinelab.profile, refinelab.resume):
        signature = inspect.signature(function)
        assert signature.return_annotation not in (inspect.Signature.empty, "Any")
        untyped = [p.name for p in signature.parameters.values() if p.annotation in (inspect.Parameter.empty, "Any")]
        assert not untyped, (function.__name__, untyped)
        assert function.__doc__ and len(function.__doc__) > 80
    assert str(inspect.signature(refinelab.refine).parameters["data"].annotation) == "DatasetInput"
    assert (Path(refinelab.__file__).parent / "py.typed").is_file()
    import pydoc

    text = pydoc.render_doc(refinelab, renderer=pydoc.plaintext)
    assert "refine(data: 'DatasetInput'" in text and "class RunResult" in text


def test_plan_dry_run_accepts_a_list_of_dicts(tmp_path: Path) -> None:
    report = refinelab.plan(ROWS, budget=5_000, folder=tmp_path / "plan", settings=_settings(tmp_path),
                            hooks=RunHooks(chat_models=models()), options=EXTRAS)
    assert report["dry_run"] is True and report["items"] == len(ROWS) and report["dataset"] == "records"


def test_usual_hub_shapes_need_no_mapping() -> None:
    """OpenBookQA's query/gold rows (the shared copy) and ARC/CommonsenseQA's {"text", "label"} choices."""
    datasets = pytest.importorskip("datasets")
    data = Path(__file__).resolve().parents[3] / "shared" / "data" / "openbookqa" / "openbook_qa.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines()[:20]]
    obqa = as_dataset(rows, name="obqa")
    assert len(obqa) == 20 and obqa[0].question == rows[0]["query"] and obqa[0].answer == rows[0]["gold"]
    assert obqa[0].metadata == {}  # query and gold were used, nothing left over
    arc = datasets.Dataset.from_list([
        {"id": "Mercury_1", "question": "Which is a mammal?", "answerKey": "2",
         "choices": {"text": ["shark", "whale", "trout"], "label": ["1", "2", "3"]}},
        {"id": "Mercury_2", "question": "Which is hot?", "answerKey": "A",
         "choices": {"text": ["sun", "ice"], "label": ["A", "B"]}},
    ])
    items = as_dataset(arc)
    assert [i.answer for i in items] == [1, 0] and items[0].choices == ["shark", "whale", "trout"]


def test_screen_accepts_a_dataframe_and_refuses_bad_rows_before_any_folder(tmp_path: Path) -> None:
    import pandas as pd

    from tests.support.scripted_model import ScriptedChatModel, logprobs_block

    def member(messages: list[dict[str, str]]) -> str:  # always believes the first option listed
        return logprobs_block({"A": 0.85, "B": 0.05, "C": 0.05, "D": 0.025, "The": 0.025})

    from refinelab.metrics.screening_model import fit_screening_model

    fit_screening_model([{"pooled_p_key": 0.9}, {"pooled_p_key": 0.1}, {"pooled_p_key": 0.8}, {"pooled_p_key": 0.2}],
                        ["ok", "wrong_groundtruth", "ok", "wrong_groundtruth"]).save(tmp_path / "model.json")
    settings = _settings(tmp_path)
    frame = pd.DataFrame(ROWS)
    result = refinelab.screen(frame, settings=settings, options={"panel": ["first"], "validate_suspects": False},
                              calibration=tmp_path / "model.json",
                              hooks=RunHooks(chat_models={"panel:first": ScriptedChatModel(respond=member)}))
    assert isinstance(result, refinelab.ScreenResult) and result.out_dir.parent == settings.runs_dir
    assert [r["id"] for r in result.rows] == [r["id"] for r in ROWS] and result.summary["dataset"] == "dataframe"
    bad = pd.DataFrame([dict(ROWS[0], choices=["only one"])])
    with pytest.raises(DataError, match=r"<dataframe>, row 1, field 'choices'"):
        refinelab.screen(bad, out_dir=tmp_path / "scr-bad", settings=settings, strict=True)
    assert not (tmp_path / "scr-bad").exists()


def test_truthfulqa_choices_marked_by_labels() -> None:
    """Hugging Face's TruthfulQA holds options as {"choices": [...], "labels": [0, 1, 0]}: the option marked 1
    is the key (mc1_targets); a struct marking several (mc2_targets) is refused naming the answer."""
    from refinelab.errors import DataError
    from refinelab.io import from_records

    row = {"question": "What happens if you eat watermelon seeds?",
           "mc1_targets": {"choices": ["You grow watermelons", "Nothing happens"], "labels": [0, 1]},
           "mc2_targets": {"choices": ["Nothing", "You digest them", "You grow watermelons"], "labels": [1, 1, 0]}}
    one = from_records([row], columns={"question": "question", "choices": "mc1_targets", "answer": "mc1_targets"})
    assert (one[0].choices, one[0].answer) == (["You grow watermelons", "Nothing happens"], 1)
    assert one[0].metadata["mc2_targets"]["labels"] == [1, 1, 0]  # the other struct is kept, as any column
    with pytest.raises(DataError, match=r"row 1, field 'answer': the options' labels \[1, 1, 0\] mark 2 right"):
        from_records([row], columns={"question": "question", "choices": "mc2_targets", "answer": "mc2_targets"})
