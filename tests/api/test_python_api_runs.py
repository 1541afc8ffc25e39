"""The Python API as a notebook user meets it: a run is named by its id or its folder's path in every function
(`resume`, the review functions, `open_run`, `report`, `export`), looked up in the configured runs folder
(settings `runs_dir`, REFINELAB_RUNS_DIR) as `refine` wrote it; a missing run is one `RunNotFound`; a
misspelt option or a dict for settings, targets or hooks is a RefineLab error or is read as documented, not
a pydantic traceback or an AttributeError; a result prints as one line.

Runs are real (the scripted model, budget 0 or a small one, validators off) in a runs folder set only
through the environment, from a working folder that holds no `runs/`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import refinelab
from refinelab.agents.options import RunHooks
from refinelab.api.review import decided_by_policy, export_queue, pending_reviews
from refinelab.config import load_settings
from refinelab.errors import ConfigError, DataError, RefineLabError, RunNotFound
from tests.support.scripted import EXTRAS, models

ROWS: list[dict[str, Any]] = [
    {"id": f"q{i}", "question": f"Notebook question {i}: which option is marked (key A)?",
     "choices": [f"alpha {i}", f"beta {i}", f"gamma {i}", f"delta {i}"], "answer": 0,
     "subject": ["astronomy", "virology"][i % 2]}
    for i in range(6)
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder holding one finished run, `nb-run`."""
    base = tmp_path_factory.mktemp("configured")
    settings = load_settings(overrides={"runs_dir": str(base / "runs"), "cache_path": str(base / "c.sqlite"),
                                        "use_cache": False})
    refinelab.refine(ROWS, budget=0, settings=settings, run_id="nb-run", hooks=RunHooks(chat_models=models()),
                     options=EXTRAS)
    return base / "runs"


@pytest.fixture
def configured(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The runs folder configured through REFINELAB_RUNS_DIR only, and a working folder without ./runs."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("REFINELAB_RUNS_DIR", str(runs))
    monkeypatch.setenv("REFINELAB_CACHE_PATH", str(tmp_path / "c.sqlite"))
    return runs


def test_every_function_finds_a_run_by_id_in_the_configured_runs_folder(configured: Path, tmp_path: Path) -> None:
    """The documented `refinelab.resume(result.run_id)` said "no run ... in runs" whenever the runs folder was
    configured: resume and the review functions looked in ./runs, open_run/report/export took only a path."""
    run_dir = configured / "nb-run"
    resumed = refinelab.resume("nb-run", hooks=RunHooks(chat_models=models()))
    assert resumed.run_dir == run_dir and resumed.run_id == "nb-run" and not resumed.paused
    assert pending_reviews("nb-run") == []
    assert isinstance(decided_by_policy("nb-run"), dict)
    assert export_queue("nb-run", tmp_path / "queue.jsonl") == 0
    opened = refinelab.open_run("nb-run")
    assert opened.run_dir == run_dir and opened.report == resumed.report
    assert refinelab.report("nb-run", tmp_path / "r.html") == tmp_path / "r.html"
    assert refinelab.export("nb-run", tmp_path / "tasks").is_file()


def test_every_function_takes_a_path_to_the_run_folder(configured: Path, tmp_path: Path) -> None:
    """`resume(str(result.run_dir))` was refused as a run id with path separators."""
    run_dir = configured / "nb-run"
    for run in (str(run_dir), run_dir):
        resumed = refinelab.resume(run, hooks={"chat_models": models()})  # hooks as a mapping too
        assert resumed.run_dir == run_dir and resumed.run_id == "nb-run"
        assert pending_reviews(run) == []
        assert refinelab.open_run(run).run_dir == run_dir
    # an explicit runs_dir still wins over the setting
    with pytest.raises(RunNotFound, match="no run of that id"):
        refinelab.resume("nb-run", runs_dir=tmp_path / "elsewhere")


@pytest.mark.parametrize("call", ["resume", "pending_reviews", "open_run", "report", "export"])
@pytest.mark.parametrize("run", ["nope", "runs/nope", "/no/such/run/folder"])
def test_a_missing_run_is_one_error_type(configured: Path, tmp_path: Path, call: str, run: str) -> None:
    """A wrong run raised DataError, ReportError, or a bare FileNotFoundError depending on the function."""
    calls = {"resume": lambda: refinelab.resume(run), "pending_reviews": lambda: pending_reviews(run),
             "open_run": lambda: refinelab.open_run(run), "report": lambda: refinelab.report(run),
             "export": lambda: refinelab.export(run, tmp_path / "tasks")}
    with pytest.raises(RunNotFound) as info:
        calls[call]()
    error = info.value
    assert isinstance(error, DataError) and isinstance(error, FileNotFoundError) and isinstance(error, RefineLabError)
    assert "nope" in str(error) or "/no/such/run/folder" in str(error)
    assert "\n" not in str(error)
    assert not (tmp_path / "tasks").exists()


def test_a_folder_that_is_not_a_run_is_refused(configured: Path, tmp_path: Path) -> None:
    """open_run() on any folder succeeded; its first `items()` then said "resume it first"."""
    (Path.cwd() / "notarun").mkdir()
    (Path.cwd() / "notarun" / "notes.txt").write_text("hello")
    plan_like = configured / "plan-x"  # a plan's folder under the runs folder: a store, none of a run's files
    plan_like.mkdir()
    (plan_like / "store.sqlite").write_text("")
    for run in ("notarun", str(Path.cwd() / "notarun"), "plan-x", str(tmp_path)):
        with pytest.raises(RunNotFound, match="not a (RefineLab )?run folder"):
            refinelab.open_run(run)
    with pytest.raises(RunNotFound, match="not a (RefineLab )?run folder"):
        refinelab.resume("plan-x")


def test_errors_are_exported_from_the_package() -> None:
    assert refinelab.RefineLabError is RefineLabError and refinelab.RunNotFound is RunNotFound
    assert refinelab.DataError is DataError and refinelab.ConfigError is ConfigError
    assert issubclass(refinelab.RunNotFound, refinelab.DataError)
    assert {"RefineLabError", "DataError", "ConfigError", "RunNotFound"} <= set(refinelab.__all__)


def _refine(tmp_path: Path, **overrides: Any) -> refinelab.RunResult:
    arguments: dict[str, Any] = {
        "budget": 0, "run_id": "typed", "hooks": RunHooks(chat_models=models()), "options": EXTRAS,
        "settings": load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "use_cache": False,
                                             "cache_path": str(tmp_path / "c.sqlite")}),
    }
    return refinelab.refine(ROWS, **(arguments | overrides))


def test_a_misspelt_option_is_one_config_error_line(tmp_path: Path) -> None:
    """It was pydantic's multi-line ValidationError ending in a documentation link."""
    with pytest.raises(ConfigError) as info:
        _refine(tmp_path, options={**EXTRAS, "pilot_per_ops": 2})
    assert "pilot_per_ops" in str(info.value) and "\n" not in str(info.value)
    assert "pydantic" not in str(info.value)
    with pytest.raises(ConfigError, match="pilot_per_op"):
        _refine(tmp_path, options={**EXTRAS, "pilot_per_op": "many"})
    assert not (tmp_path / "runs").exists()


def test_settings_targets_and_hooks_may_be_mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each failed with an AttributeError deep inside the run. A settings mapping changes the configured
    settings; a targets mapping is a target file's content; a hooks mapping is RunHooks' fields."""
    monkeypatch.setenv("REFINELAB_MAX_CONSECUTIVE_FAILURES", "7")  # configured: kept under the mapping's overrides
    result = _refine(tmp_path, settings={"runs_dir": str(tmp_path / "runs"), "use_cache": False,
                                         "cache_path": str(tmp_path / "c.sqlite")},
                     targets={"name": "hard-heavy", "difficulty": {"weights": {"hard": 3, "medium": 1}}},
                     hooks={"chat_models": models()})
    assert result.run_dir == tmp_path / "runs" / "typed"
    saved = json.loads((result.run_dir / "settings.json").read_text())
    assert saved["settings"]["max_consecutive_failures"] == 7
    assert saved["targets"]["name"] == "hard-heavy"
    assert saved["targets"]["difficulty"] == {"easy": 0.0, "medium": 0.25, "hard": 0.75}


@pytest.mark.parametrize(("argument", "value", "fragment"), [
    ("settings", 42, "settings: expected a Settings"),
    ("settings", {"runs_dirr": "x"}, "runs_dirr"),
    ("hooks", {"chat_model": {}}, "hooks: unknown field(s) chat_model"),
    ("hooks", ["judge"], "hooks: expected a RunHooks"),
    ("targets", {"difficulty": {"weight": {"hard": 1}}}, "difficulty.weight"),
    ("targets", 3, "targets: expected a Targets"),
    ("options", "pilot_per_op=2", "options: expected a RunOptions"),
])
def test_a_wrong_settings_targets_or_hooks_is_a_config_error(tmp_path: Path, argument: str, value: Any,
                                                             fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        _refine(tmp_path, **{argument: value})
    assert fragment in str(info.value)
    assert not (tmp_path / "runs").exists()


def test_a_result_prints_as_one_short_line(runs: Path) -> None:
    """The dataclass repr printed the whole report.json (3,000 characters for 6 items)."""
    result = refinelab.open_run(runs / "nb-run")
    text = repr(result)
    assert text.startswith("RunResult(run_id='nb-run', stop=") and "\n" not in text and len(text) < 160, text
    assert f"items {result.report['input_items']}→{result.report['output_items']}" in text
    assert f"spent {result.spent:,}" in text and "metrics_before" not in text
    paused = refinelab.RunResult(run_id="p", run_dir=runs / "p", pending_review=3)
    assert "paused for 3 review decision(s)" in repr(paused)
