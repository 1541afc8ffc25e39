"""A run's refined set out as datasets.Dataset, Parquet, JSONL and save_to_disk, each with its dataset card.

The run is real (scripted models, 12 MMLU dev items, edits committed); the round trips go through
Hugging Face `datasets` itself: `load_from_disk` and `load_dataset("parquet"/"json", data_files=...)`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import refinelab
from refinelab.agents.options import RunHooks
from refinelab.api.results import CARD_MARKER
from refinelab.config import load_settings
from refinelab.errors import DataError
from refinelab.io import as_dataset, load_dataset, read_jsonl
from tests.support.scripted import EXTRAS, models

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> refinelab.RunResult:
    base = tmp_path_factory.mktemp("export-run")
    dataset = load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=12)
    settings = load_settings(overrides={"runs_dir": str(base / "runs"), "cache_path": str(base / "c.sqlite"),
                                        "use_cache": False})
    return refinelab.refine(dataset, budget=20_000, settings=settings, run_id="export-me",
                            hooks=RunHooks(chat_models=models()), options={**EXTRAS, "planner_mode": "greedy"})


def _expected(run: refinelab.RunResult) -> list[dict]:
    return [i.model_dump(mode="json") for i in read_jsonl(run.refined_path)]


def _as_items(rows: list[dict]) -> list[dict]:
    return [i.model_dump(mode="json") for i in as_dataset(rows)]


def _card_checks(card: str, run: refinelab.RunResult) -> None:
    assert card.startswith("---\n") and CARD_MARKER in card
    report = run.report
    before, after = report["metrics_before"], report["metrics_after"]
    assert f"| items | {before['items']} | {after['items']} |" in card
    for key in ("coverage_jsd", "difficulty_jsd"):
        if after.get(key) is not None:
            assert f"{after[key]:.4f}" in card
    assert f"{report['ledger']['spent']} tokens spent of a cap of 20000" in card
    for outcome, count in report["edits"]["outcomes"].items():
        operation, _, status = outcome.partition(":")
        assert f"| {operation} | {status} | {count} |" in card
    assert "| writer | qwen2.5-coder-1.5b | embedded |" in card
    assert "RefineLab run: `export-me`" in card and "rows by origin:" in card


def test_run_really_edited_something(run: refinelab.RunResult) -> None:
    outcomes = run.report["edits"]["outcomes"]
    assert any(k.endswith(":committed") for k in outcomes), outcomes  # the card has operations to show


def test_to_hf_matches_refined_jsonl(run: refinelab.RunResult) -> None:
    hf = run.to_hf()
    assert hf.num_rows == len(_expected(run))
    assert hf.features["choices"].feature.dtype == "string" and hf.features["answer"].dtype == "int64"
    assert _as_items(hf.to_list()) == _expected(run)
    provenance = json.loads(hf[0]["provenance"])
    assert {"source", "created_by", "parent_id"} <= set(provenance)


def test_save_hf_round_trips_through_load_from_disk(run: refinelab.RunResult, tmp_path: Path) -> None:
    from datasets import load_from_disk
    from datasets.utils import logging as datasets_logging

    assert datasets_logging.is_progress_bar_enabled()
    folder = run.save(tmp_path / "hf", format="hf")
    assert datasets_logging.is_progress_bar_enabled()  # quieted for the save only: the caller's setting stands
    again = load_from_disk(str(folder))
    assert _as_items(again.to_list()) == _expected(run)
    # and straight back into RefineLab: the folder reads as its Arrow shards (it was refused as "no .csv files")
    assert [i.model_dump(mode="json") for i in load_dataset(folder)] == _expected(run)
    _card_checks((folder / "README.md").read_text(encoding="utf-8"), run)


def test_save_parquet_folder_round_trips_through_load_dataset(run: refinelab.RunResult, tmp_path: Path) -> None:
    import yaml
    from datasets import load_dataset as hf_load

    folder = run.save(tmp_path / "pq", format="parquet")
    card = (folder / "README.md").read_text(encoding="utf-8")
    _card_checks(card, run)
    front = yaml.safe_load(card.split("---\n")[1])
    data_file = front["configs"][0]["data_files"][0]
    assert data_file == {"split": "test", "path": "data/test.parquet"}
    loaded = hf_load("parquet", data_files={"test": str(folder / data_file["path"])}, cache_dir=str(tmp_path / "c"))
    assert _as_items(loaded["test"].to_list()) == _expected(run)
    # and straight back into RefineLab
    assert [i.model_dump(mode="json") for i in load_dataset(folder / "data" / "test.parquet")] == _expected(run)
    assert [i.model_dump(mode="json") for i in load_dataset(folder)] == _expected(run)  # the hub layout: data/


def test_save_jsonl_file_with_card_beside_it(run: refinelab.RunResult, tmp_path: Path) -> None:
    from datasets import load_dataset as hf_load

    path = run.save(tmp_path / "out" / "refined.jsonl", format="jsonl")
    assert path.is_file() and (path.parent / "README.md").is_file()
    loaded = hf_load("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "c"))
    assert loaded.num_rows == len(_expected(run))
    assert [i.model_dump(mode="json") for i in read_jsonl(path)] == _expected(run)


def test_save_refuses_to_overwrite_or_mix(run: refinelab.RunResult, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    with pytest.raises(DataError, match="not empty"):
        run.save(busy, format="parquet")
    assert sorted(p.name for p in busy.iterdir()) == ["mine.txt"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "README.md").write_text("my own readme")
    with pytest.raises(DataError, match="not written by refinelab"):
        run.save(foreign / "x.parquet", format="parquet")
    assert (foreign / "README.md").read_text() == "my own readme" and not (foreign / "x.parquet").exists()
    with pytest.raises(DataError, match="format"):
        run.save(tmp_path / "x", format="csv")  # type: ignore[arg-type]
    for name, format in (("z.csv", "parquet"), ("z.json", "jsonl"), ("z.parquet", "hf")):
        with pytest.raises(DataError, match=r"is a file name .* export writes"):
            run.save(tmp_path / name, format=format)  # type: ignore[arg-type]
        assert not (tmp_path / name).exists()  # not made a folder of that name
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no staging folder left behind


def test_unfinished_run_says_so(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    with pytest.raises(DataError, match="not a RefineLab run folder"):  # no run's file at all: not a run (finding 10)
        refinelab.open_run(tmp_path / "half")
    (tmp_path / "half" / "checkpoints.sqlite").write_bytes(b"")  # a run that started and stopped
    with pytest.raises(DataError, match="has not finished"):
        refinelab.open_run(tmp_path / "half").save(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_export_hf_and_parquet(run: refinelab.RunResult, tmp_path: Path) -> None:
    from datasets import load_from_disk

    env = {**os.environ, "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "refinelab", "export", "export-me", "--runs-dir", str(run.run_dir.parent),
           "--hf", str(tmp_path / "hf"), "--parquet", str(tmp_path / "pq" / "refined.parquet")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Saving the dataset" not in proc.stderr  # datasets' progress bar is quieted while it saves
    assert _as_items(load_from_disk(str(tmp_path / "hf")).to_list()) == _expected(run)
    assert [i.model_dump(mode="json") for i in load_dataset(tmp_path / "pq" / "refined.parquet")] == _expected(run)
    _card_checks((tmp_path / "pq" / "README.md").read_text(encoding="utf-8"), run)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)  # --hf folder not empty now
    assert again.returncode == 2 and again.stderr.startswith("error:") and "not empty" in again.stderr
    none = subprocess.run([sys.executable, "-m", "refinelab", "export", "export-me"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert none.returncode == 2 and "--hf" in none.stderr


def test_card_from_a_hostile_run_folder_is_inert(run: refinelab.RunResult, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "hostile"
    shutil.copytree(run.run_dir, folder)
    report = json.loads((folder / "report.json").read_text())
    report["stop_reason"] = "done\n\n<script>alert(1)</script> | ![x](http://evil/pixel.png)"
    report["edits"]["outcomes"] = {"fix`\n# Owned:committed": 1}
    (folder / "report.json").write_text(json.dumps(report))
    saved = json.loads((folder / "settings.json").read_text())
    saved["settings"]["roles"]["writer"]["endpoint"] = "https://user:hunter2secret@models.example/v1"
    saved["dataset"] = "name\u202e\n---\ninjected: true"
    (folder / "settings.json").write_text(json.dumps(saved))
    card = (refinelab.open_run(folder).save(tmp_path / "out") / "README.md").read_text(encoding="utf-8")
    assert "<script>" not in card and "![x](" not in card and "hunter2secret" not in card
    assert "\n# Owned" not in card and "\u202e" not in card and "\ninjected: true" not in card
    assert card.count("\n---\n") == 1  # only the front matter's closing line
