"""The lm-eval export: lm-eval's own TaskManager loads it, and docs, choices and targets round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from refinelab.api.export_lmeval import LETTERS, export_lm_eval, task_name_for
from refinelab.errors import DataError


@pytest.fixture(autouse=True)
def _local_hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """datasets' json builder caches Arrow files; keep them out of the user's home, and stay offline."""
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def _load_task(out_dir: Path, name: str):  # noqa: ANN202 - lm-eval's ConfigurableTask
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(out_dir), include_defaults=False)
    assert name in manager.all_tasks
    loaded = manager.load([name])
    return loaded["tasks"][name]


def _refined(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "refined.jsonl").read_text().splitlines()]


def test_lettered_task_loads_and_round_trips(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "tasks"
    path = export_lm_eval(run_dir, out)
    name = task_name_for(run_dir.name)
    assert path == out / f"{name}.yaml"
    config = yaml.safe_load(path.read_text())
    assert config["dataset_path"] == "json" and config["output_type"] == "multiple_choice"
    assert Path(config["dataset_kwargs"]["data_files"]["test"]).is_absolute()

    task = _load_task(out, name)
    docs = list(task.test_docs())
    refined = _refined(run_dir)
    assert len(docs) == len(refined) > 0
    for doc, item in zip(docs, refined, strict=True):
        assert doc["id"] == item["id"]
        text = task.doc_to_text(doc)
        assert text.startswith(item["question"].strip()) and text.endswith("Answer:")
        for letter, choice in zip(LETTERS, item["choices"], strict=False):
            assert f"\n{letter}. {choice}\n" in text
        choices = task.doc_to_choice(doc)
        assert choices == list(LETTERS[: len(item["choices"])])
        target = task.doc_to_target(doc)
        assert target == item["answer"] and choices[target] == LETTERS[item["answer"]]
    # The request lm-eval would send for the first doc: the prompt, then " A", " B", ... as continuations.
    instances = task.construct_requests(docs[0], task.doc_to_text(docs[0]), metadata=(name, 0, 1))
    assert [inst.arguments[1] for inst in instances][: len(refined[0]["choices"])] == \
        [f" {letter}" for letter in LETTERS[: len(refined[0]["choices"])]]


def test_text_choice_format_and_task_name(run_dir: Path, tmp_path: Path) -> None:
    path = export_lm_eval(run_dir, tmp_path / "t", task_name="my_refined-set", choice_format="text")
    assert path.name == "my_refined-set.yaml"
    task = _load_task(tmp_path / "t", "my_refined-set")
    refined = _refined(run_dir)
    for doc, item in zip(task.test_docs(), refined, strict=True):
        assert task.doc_to_choice(doc) == item["choices"]
        assert task.doc_to_choice(doc)[task.doc_to_target(doc)] == item["choices"][item["answer"]]


def test_export_errors(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="refined.jsonl"):
        export_lm_eval(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="task name"):
        export_lm_eval(run_dir, tmp_path / "out", task_name="bad name!")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "refined.jsonl").write_text('{"question": "q", "choices": ["a", "b"], "answer": 5}\n')
    with pytest.raises(DataError, match="row 1"):
        export_lm_eval(broken, tmp_path / "out")


def test_cli_export(run_dir: Path, tmp_path: Path) -> None:
    from refinelab.cli.app import app

    runner = CliRunner()
    result = runner.invoke(app, ["export", run_dir.name, "--runs-dir", str(run_dir.parent),
                                 "--lm-eval", str(tmp_path / "lm")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lm" / f"{task_name_for(run_dir.name)}.yaml").exists()
    assert (tmp_path / "lm" / f"{task_name_for(run_dir.name)}.jsonl").exists()
    missing = runner.invoke(app, ["export", "nope", "--runs-dir", str(tmp_path), "--lm-eval", str(tmp_path / "x")])
    assert missing.exit_code == 2 and f"{tmp_path / 'nope'}: no such folder" in " ".join(missing.output.split())
