"""A run's choices have one home, `RunOptions`: rounds, planner mode, attempts per edit and seed moved there
from `Settings`, which keeps models, endpoints, folders and the cache.

Pinned here: an old run folder (those four saved among its settings) resumes with the same values; the
`--rounds`/`--mode` flags and an options file reach `RunOptions`; a config file, a REFINELAB_* variable or a
settings keyword that still sets one is refused with one line saying where it went, never ignored; the
command line's settings flags are one typed `SettingsOverrides`; the run summary the CLI prints is read
from report.json by the library (`RunResult.summary`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from refinelab.agents.options import RunHooks, RunOptions
from refinelab.api import refine, resume
from refinelab.api.context import close_run_context
from refinelab.api.run_seal import seal_settings
from refinelab.api.run_settings import migrated, saved_models
from refinelab.api.runs import RunResult, claim_run, saved_context
from refinelab.cli.app import app
from refinelab.config import MOVED_TO_OPTIONS, Settings, SettingsOverrides, load_settings
from refinelab.errors import ConfigError
from refinelab.io import load_dataset
from tests.support.cli_capture import library_call_kwargs
from tests.support.scripted import EXTRAS, models

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "mmlu" / "dev"
OLD_CHOICES = {"rounds": 1, "planner_mode": "greedy", "max_attempts": 1, "seed": 7}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def _settings(tmp_path: Path) -> Settings:
    return load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite")})


def _as_written_before(run_dir: Path) -> None:
    """Rewrite the run's settings.json as a version before the move wrote it: the four choices in the
    settings part, none in the options; sealed again, as that version sealed what it wrote."""
    saved = json.loads((run_dir / "settings.json").read_text())
    for key in MOVED_TO_OPTIONS:
        saved["settings"][key] = saved["options"].pop(key)
    (run_dir / "settings.json").write_text(json.dumps(saved, indent=2))
    seal_settings(run_dir)


class _Stop(Exception):
    """Raised by the progress callback: the run stops there, and `resume` continues it."""


def test_an_old_run_folder_resumes_with_its_rounds_mode_attempts_and_seed(tmp_path: Path) -> None:
    """Stopped after profiling, the folder rewritten in the old layout, then resumed: every plan made after
    the resume is greedy (the default is ilp), no edit is tried twice (the default allows two attempts; the
    scripted validator fails every first one) and there is one round (the default is two)."""
    items = load_dataset(DATA, on_invalid="quarantine").filter(limit=12)

    def stop_after_profile(event: dict[str, Any]) -> None:
        if event["mode"] == "updates" and "profile" in event["data"]:
            raise _Stop

    hooks = RunHooks(chat_models=models(fail_first_validation=True))
    options = {**EXTRAS, "operations": ["expand", "generate"], "pilot_per_op": 0, **OLD_CHOICES}
    with pytest.raises(_Stop):
        refine(items, budget=40_000, settings=_settings(tmp_path), run_id="old", hooks=hooks, options=options,
               on_event=stop_after_profile)
    run_dir = tmp_path / "runs" / "old"
    _as_written_before(run_dir)
    saved = json.loads((run_dir / "settings.json").read_text())
    assert saved["settings"]["planner_mode"] == "greedy" and "planner_mode" not in saved["options"]

    folder = claim_run("old", tmp_path / "runs", resuming=True)
    try:
        ctx = saved_context(folder, hooks, references=False)
        try:
            assert {key: getattr(ctx.options, key) for key in OLD_CHOICES} == OLD_CHOICES
        finally:
            close_run_context(ctx)
    finally:
        folder.release()

    result = resume("old", runs_dir=tmp_path / "runs", hooks=RunHooks(chat_models=models(fail_first_validation=True)))
    report = result.report
    assert report["plans"] and {plan["mode"] for plan in report["plans"]} == {"greedy"}
    assert report["rounds"] == 1
    changes = [json.loads(line) for line in (run_dir / "changes.jsonl").read_text().splitlines()]
    assert changes and {change["attempt"] for change in changes} == {0}, "max_attempts 1: no loop-back"


def test_migration_moves_the_four_keys_and_keeps_an_options_value(tmp_path: Path) -> None:
    old = {"settings": {"runs_dir": "runs", **OLD_CHOICES}, "targets": {}, "options": {"review": "ask"}}
    settings_part, options_part = migrated(old)
    assert not set(MOVED_TO_OPTIONS) & set(settings_part) and options_part == {"review": "ask", **OLD_CHOICES}
    assert old["settings"]["rounds"] == 1  # the saved data itself is left as it was
    settings, _, options = saved_models(old, tmp_path)
    assert settings.runs_dir == Path("runs") and options.planner_mode == "greedy" and options.seed == 7
    edited = {"settings": {"rounds": 5}, "targets": {}, "options": {"rounds": 3}}  # both: the options win
    assert saved_models(edited, tmp_path)[2].rounds == 3


def test_a_bad_migrated_choice_names_the_file_and_the_option(tmp_path: Path) -> None:
    from refinelab.errors import DataError

    with pytest.raises(DataError) as info:
        saved_models({"settings": {"rounds": 0}, "targets": {}}, tmp_path)
    assert "settings.json" in str(info.value) and "options.rounds" in str(info.value)


def test_the_flags_and_the_options_file_reach_run_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    base = ["refine", str(DATA), "--limit", "4", "--budget", "1000", "--quiet"]
    seen = library_call_kwargs(monkeypatch, "refinelab.api.refine", [*base, "--rounds", "3", "--mode", "greedy"])
    assert (seen["options"].rounds, seen["options"].planner_mode) == (3, "greedy")
    assert not set(MOVED_TO_OPTIONS) & set(seen["settings"].model_dump())
    opts = tmp_path / "run.yaml"
    opts.write_text("rounds: 4\nplanner_mode: lp-round\nmax_attempts: 3\nseed: 11\n", encoding="utf-8")
    from_file = library_call_kwargs(monkeypatch, "refinelab.api.refine", [*base, "--options", str(opts)])["options"]
    assert (from_file.rounds, from_file.planner_mode, from_file.max_attempts, from_file.seed) == (4, "lp-round", 3, 11)
    flag_wins = library_call_kwargs(monkeypatch, "refinelab.api.refine", [*base, "--options", str(opts), "--rounds", "1"])
    assert flag_wins["options"].rounds == 1 and flag_wins["options"].planner_mode == "lp-round"
    planned = library_call_kwargs(monkeypatch, "refinelab.api.planning.plan",
                        ["plan", str(DATA), "--limit", "4", "--budget", "1000", "--dry-run", "--mode", "random"])
    assert planned["options"].planner_mode == "random" and "mode" not in planned


@pytest.mark.parametrize(("argv", "start"), [
    (["refine", "--budget", "1000", "--rounds", "0"], "error: --rounds 0: "),
    (["refine", "--budget", "1000", "--mode", "vibes"], "error: --mode vibes: "),
    (["plan", "--budget", "1000", "--dry-run", "--mode", "vibes"], "error: --mode vibes: "),
])
def test_a_bad_flag_is_one_line_naming_it_as_typed(argv: list[str], start: str) -> None:
    name, *flags = argv
    result = CliRunner().invoke(app, [name, str(DATA), "--limit", "2", *flags])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(start), result.output


@pytest.mark.parametrize("key", list(MOVED_TO_OPTIONS))
def test_a_config_file_setting_a_run_option_is_refused_naming_where_it_went(tmp_path: Path, key: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"{key}: {json.dumps(OLD_CHOICES[key])}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config)
    line = str(info.value)
    assert line.startswith(f"{config}: '{key}' is a run option now") and f"RunOptions.{key}" in line
    assert "--options" in line and "\n" not in line
    if MOVED_TO_OPTIONS[key]:
        assert MOVED_TO_OPTIONS[key] in line


def test_the_cli_refuses_such_a_config_file_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("rounds: 3\n")
    result = CliRunner().invoke(app, ["refine", str(DATA), "--limit", "2", "--budget", "100", "--config", str(config),
                                      "--runs-dir", str(tmp_path / "runs")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert "'rounds' is a run option now" in lines[0] and "--rounds" in lines[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("variable", ["REFINELAB_ROUNDS", "REFINELAB_PLANNER_MODE", "REFINELAB_MAX_ATTEMPTS",
                                      "refinelab_seed"])
def test_an_environment_variable_for_a_run_option_is_refused(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    """Settings read only their own fields' variables: without the check it would be ignored in silence."""
    monkeypatch.setenv(variable, "3")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(f"environment variable {variable}: ")
    assert f"RunOptions.{variable.upper().removeprefix('REFINELAB_').lower()}" in str(info.value)


def test_saved_settings_are_read_whatever_the_shell_still_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFINELAB_ROUNDS", "3")
    assert Settings.exact({"max_consecutive_failures": 4}).max_consecutive_failures == 4


@pytest.mark.parametrize("make", [
    lambda tmp: Settings(rounds=3),
    lambda tmp: load_settings(overrides={"planner_mode": "greedy"}),
    lambda tmp: refine([{"question": "Q?", "choices": ["a", "b"], "answer": 0}], budget=0,
                       settings={"runs_dir": str(tmp / "runs"), "seed": 1}),
])
def test_a_settings_keyword_for_a_run_option_is_refused(tmp_path: Path, make: Any) -> None:
    with pytest.raises(ConfigError, match=r"^settings: '\w+' is a run option now, not a setting: .*options="):
        make(tmp_path)
    assert not (tmp_path / "runs").exists()


def test_settings_hold_no_run_choice_and_options_document_each() -> None:
    assert not set(MOVED_TO_OPTIONS) & set(Settings.model_fields)
    for key in MOVED_TO_OPTIONS:
        assert RunOptions.model_fields[key].description
    assert RunOptions().model_dump(include=set(MOVED_TO_OPTIONS)) == {
        "rounds": 2, "planner_mode": "ilp", "max_attempts": 2, "seed": 0}


def test_the_settings_flags_are_one_typed_model() -> None:
    overrides = SettingsOverrides(model=["big", "writer=small"], runs_dir=Path("elsewhere"), use_cache=False)
    assert overrides.fields() == {"roles": {"judge": {"model": "big"}, "writer": {"model": "small"},
                                            "validator": {"model": "big"}},
                                  "runs_dir": Path("elsewhere"), "use_cache": False}
    settings = load_settings(overrides=overrides)
    assert settings.roles.writer.model == "small" and settings.roles.writer.temperature == 0.7
    assert not settings.use_cache and settings.runs_dir == Path("elsewhere")
    assert SettingsOverrides().fields() == {}
    with pytest.raises(ValueError):
        SettingsOverrides(rounds=2)  # type: ignore[call-arg]


REPORT = {
    "stop_reason": "finished 1 round(s)", "items_by_status": {"kept": 5, "edited": 1}, "new_items": 2,
    "output_items": 8,
    "ledger": {"spent": 3000, "cap": 10000, "replayed": 1000, "prompt_tokens": 2000, "cached_prompt_tokens": 500,
               "by_node": {"profile": {"calls": 3, "tokens": 800}}, "replayed_by_node": {"profile": 200}},
    "metrics_before": {"coverage_jsd": 0.25, "difficulty_jsd": 0.5},
    "metrics_after": {"coverage_jsd": 0.125, "difficulty_jsd": None},
    "decontamination": {"found": 1, "items": 7, "reference": "ref.jsonl"},
}


def test_the_summary_is_read_from_the_report_by_the_library(tmp_path: Path) -> None:
    """What `refinelab refine` printed when it read report.json itself, line for line."""
    summary = RunResult(run_id="r1", run_dir=tmp_path / "r1", report=REPORT).summary()
    assert summary.lines() == [
        "run r1: finished 1 round(s); spent 3,000 + 1,000 replayed from the response cache of 10,000 tokens"
        " (profiling 1,000, 25%)",
        "500 of 2,000 prompt tokens (25%) were read from the server's prompt cache",
        "items: kept 5, edited 1; new 2; output 8",
        "decontamination: 1 of 7 input items were found in ref.jsonl and removed (see changes.jsonl)",
        "coverage JSD 0.250 -> 0.125; difficulty JSD 0.500 -> n/a",
        f"report: {tmp_path / 'r1' / 'report.json'}",
    ]
    assert summary.as_dict() == {
        "run_id": "r1", "run_dir": str(tmp_path / "r1"), "stop_reason": "finished 1 round(s)",
        "items_by_status": {"kept": 5, "edited": 1}, "new_items": 2, "output_items": 8, "spent": 3000,
        "cap": 10000, "replayed": 1000, "cached_prompt_tokens": 500, "coverage_jsd": [0.25, 0.125],
        "difficulty_jsd": [0.5, None], "decontaminated": 1,
    }
    bare = RunResult(run_id="r2", run_dir=tmp_path / "r2", report={"stop_reason": "budget spent"}).summary()
    assert bare.lines()[0] == "run r2: budget spent; spent None of None tokens"
    assert bare.lines()[1:3] == ["items: ; new None; output None", "coverage JSD n/a -> n/a; difficulty JSD n/a -> n/a"]
