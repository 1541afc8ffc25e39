"""Run options from a file (`--options FILE`) and the command line, loaded in one place.

Before: `refine` took a handful of flags and nothing else, so a CLI run could not name a panel, a calibration
from `screen --calibrate`, more option orders or any other `RunOptions` field; and `plan` forgot every
option but the labeller when it reused a profile.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from refinelab.agents.options import PROFILE_FIELDS, RunOptions, profile_options, read_options_file
from refinelab.agents.planner_agent import edit_catalogue
from refinelab.agents.screening import run_screening_model
from refinelab.cli.app import app
from refinelab.errors import ConfigError
from refinelab.operations import Op
from refinelab.planner.problem import ItemProfile, build_problem
from tests.support.cli_capture import library_call_kwargs

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "mmlu" / "dev"


def test_an_options_file_is_read_as_yaml_or_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "opts.yaml"
    yaml_file.write_text("panel: [judge, qwen2.5-coder-1.5b]\npanel_orders: 3\nfix_min_p_error: 0.01\n",
                         encoding="utf-8")
    json_file = tmp_path / "opts.json"
    json_file.write_text(json.dumps({"panel": "judge", "skill_method": "exemplars"}), encoding="utf-8")
    assert read_options_file(yaml_file) == {"panel": ["judge", "qwen2.5-coder-1.5b"], "panel_orders": 3,
                                            "fix_min_p_error": 0.01}
    assert RunOptions(**read_options_file(json_file)).panel == ["judge"]
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing set\n", encoding="utf-8")
    assert read_options_file(empty) == {}


@pytest.mark.parametrize(("name", "text", "says"), [
    ("orders.yaml", "panel_orders: 99\n", "orders.yaml, field 'panel_orders': Input should be less than or equal to 10"),
    ("typo.yaml", "panel_order: 3\n", "typo.yaml, field 'panel_order': Extra inputs are not permitted"),
    ("list.yaml", "- panel\n", "list.yaml: expected a mapping of run options (field: value), got list"),
    ("broken.yaml", "panel: [judge\n", "broken.yaml: not valid YAML: expected ',' or ']'"),
    ("broken.json", '{"panel": ', "broken.json: not valid JSON"),
    ("nan.json", '{"fix_min_p_error": NaN}', "nan.json: not valid JSON"),
    ("binary.yaml", b"\xff\xfe\x00", "binary.yaml: not valid UTF-8 text"),
])
def test_a_bad_options_file_is_one_line_naming_the_file_and_the_field(tmp_path: Path, name: str,
                                                                         text: str | bytes, says: str) -> None:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as caught:
        read_options_file(path)
    assert str(caught.value).startswith(str(tmp_path)) and says in str(caught.value)
    assert "\n" not in str(caught.value) and "pydantic" not in str(caught.value)
    assert "<unicode string>" not in str(caught.value) and "^" not in str(caught.value)


def test_a_missing_or_oversized_options_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="options file not found"):
        read_options_file(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a folder, not an options file"):
        read_options_file(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 300_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not an options file"):
        read_options_file(big)


#: The options that decide what a run buys and how it checks edits, not what a profile measures. A new
#: option must be put in PROFILE_FIELDS or here: the test below fails until it is classified.
NOT_PROFILE = {"operations", "dry_run", "rounds", "planner_mode", "max_attempts", "pilot_per_op", "pilot_share", "min_size", "min_keep",
               "measure_new_item_cells", "measure_new_item_buckets", "expand_batch", "expand_aims_difficulty",
               "expand_examples", "expand_spares", "calibrate_drafts", "calibrate_swaps", "allow_shrink",
               "fix_min_p_error", "remove_min_p_error", "batch", "dedup", "review", "review_evidence_bar"}


def test_every_option_is_classified_as_shaping_a_profile_or_not() -> None:
    assert set(PROFILE_FIELDS) | NOT_PROFILE == set(RunOptions.model_fields)
    assert not set(PROFILE_FIELDS) & NOT_PROFILE
    assert profile_options(RunOptions()) == {}
    assert profile_options(RunOptions(panel=["judge"], fix_min_p_error=0.2, operations=["fix"])) == {"panel": ["judge"]}


def _captured_options(monkeypatch: pytest.MonkeyPatch, target: str, argv: list[str]) -> RunOptions:
    """The options a command hands the library (the library call is stopped there by the test)."""
    options: RunOptions = library_call_kwargs(monkeypatch, target, argv)["options"]
    return options


@pytest.mark.parametrize(("command", "target"), [
    (["refine", "--budget", "1000", "--quiet"], "refinelab.api.refine"),
    (["plan", "--budget", "1000", "--dry-run"], "refinelab.api.planning.plan"),
    (["profile", "--quiet"], "refinelab.api.profiling.profile"),
    (["screen", "--quiet"], "refinelab.api.screening.screen"),
])
def test_the_file_sets_options_and_flags_given_beside_it_win(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            command: list[str], target: str) -> None:
    """Every dataset command reads `--options`; a flag left out keeps the file's value (the defaults of the
    flags used to overwrite it), a flag given wins."""
    opts = tmp_path / "opts.yaml"
    opts.write_text("panel: [judge]\npanel_orders: 3\nfix_min_p_error: 0.01\nskill_method: exemplars\n"
                    "distractors: false\n", encoding="utf-8")
    name, *flags = command
    argv = [name, str(DATA), "--limit", "4", *flags, "--options", str(opts)]
    from_file = _captured_options(monkeypatch, target, argv)
    assert from_file.panel == ["judge"] and from_file.panel_orders == 3 and from_file.fix_min_p_error == 0.01
    if name != "screen":  # screen labels nothing and scores no distractors: it has neither flag
        assert from_file.skill_method == "exemplars" and from_file.distractors is False
        flipped = ["--distractors"] if name != "plan" else []  # plan has no such flag: the file decides
        overridden = _captured_options(monkeypatch, target, [*argv, "--skill-method", "probs", *flipped])
        assert overridden.skill_method == "probs" and overridden.distractors is (name != "plan")
        assert overridden.panel == ["judge"]
    if name != "refine":
        shots = _captured_options(monkeypatch, target, [*argv, "--shots", "2"] if name in ("profile", "screen")
                                  else [*argv, "--panel", "judge,qwen2.5-coder-1.5b"])
        assert shots.panel_orders == 3
        assert shots.panel_shots == 2 if name in ("profile", "screen") else shots.panel == ["judge", "qwen2.5-coder-1.5b"]


def test_refine_takes_a_panel_and_a_calibration_recorded_absolute(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    from refinelab.api.runs import checked_options

    monkeypatch.chdir(tmp_path)
    options = _captured_options(monkeypatch, "refinelab.api.refine", [
        "refine", str(DATA), "--limit", "4", "--budget", "1000", "--quiet", "--panel", "judge,rag:judge",
        "--calibration", "calibration.json"])
    assert options.panel == ["judge", "rag:judge"] and options.screening_model == "calibration.json"
    # the library records the path absolute (the CLI and Python callers alike), so a resume from elsewhere finds it
    _calibration(tmp_path, []).rename(tmp_path / "calibration.json")
    checked = checked_options({"screening_model": "calibration.json"})
    assert checked.screening_model == str(tmp_path / "calibration.json")


@pytest.mark.parametrize("command", [["refine", "--budget", "1000", "--quiet"], ["plan", "--budget", "1000", "--dry-run"],
                                     ["profile", "--quiet"], ["screen", "--quiet"]])
def test_a_bad_options_file_stops_the_command_before_any_folder(tmp_path: Path, command: list[str]) -> None:
    opts = tmp_path / "opts.yaml"
    opts.write_text("panel_orders: 0\n", encoding="utf-8")
    name, *flags = command
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, [name, str(DATA), *flags, "--options", str(opts)],
                                env={"REFINELAB_RUNS_DIR": str(runs)})
    line = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert line.startswith(f"error: {opts}, field 'panel_orders': Input should be greater than or equal to 1"), line
    assert not runs.exists()


def _calibration(tmp_path: Path, members: list[str]) -> Path:
    from refinelab.metrics.screening_model import fit_screening_model

    names = ["pooled_p_key", *[f"p_key[{m}]" for m in members]]
    rows = [{n: (0.9 if i % 2 else 0.1) for n in names} for i in range(20)]
    model = fit_screening_model(rows, ["ok" if i % 2 else "wrong_groundtruth" for i in range(20)], features=names)
    path = tmp_path / f"calibration-{len(members)}.json"
    path.write_text(json.dumps({"model": model.to_json()}), encoding="utf-8")
    return path


def test_a_calibration_that_cannot_score_the_runs_panel_is_refused_before_the_run(tmp_path: Path) -> None:
    """A model fitted on members' own p(key) needs those members (a member the panel lacks would read as
    uniform and p_error be wrong unseen); any calibration needs a panel; a missing file is named."""
    two = _calibration(tmp_path, ["a", "b"])
    assert run_screening_model(RunOptions(screening_model=str(two), panel=["a", "b", "c"])) is not None
    with pytest.raises(ConfigError, match=r"fitted on the answers of a, b; this run's panel \(a\) lacks b"):
        run_screening_model(RunOptions(screening_model=str(two), panel=["a"]))
    pooled = _calibration(tmp_path, [])
    assert run_screening_model(RunOptions(screening_model=str(pooled))) is not None  # the judge answers (irt)
    # a calibration from `screen --calibrate` records its members: its threshold is theirs, not another model's
    record = json.loads(pooled.read_text())
    record["model"]["fitted_on"] = {"members": ["qwen2.5-coder-1.5b"]}
    fitted = tmp_path / "fitted.json"
    fitted.write_text(json.dumps(record), encoding="utf-8")
    assert run_screening_model(RunOptions(screening_model=str(fitted), panel=["qwen2.5-coder-1.5b"])) is not None
    with pytest.raises(ConfigError, match=r"fitted on the answers of qwen2.5-coder-1.5b.*panel is judge: ask the "
                                          r"same members \(--panel qwen2.5-coder-1.5b\)"):
        run_screening_model(RunOptions(screening_model=str(fitted)))
    with pytest.raises(ConfigError, match="this run asks no panel"):
        run_screening_model(RunOptions(screening_model=str(pooled), difficulty_method="rating"))
    assert run_screening_model(RunOptions()) is None

    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["refine", str(DATA), "--limit", "4", "--budget", "1000", "--quiet",
                                      "--calibration", str(tmp_path / "gone.json")],
                                env={"REFINELAB_RUNS_DIR": str(runs)})
    assert result.exit_code == 2 and "gone.json" in result.output and not runs.exists(), result.output


def test_the_p_error_floors_are_run_options_the_planner_follows() -> None:
    """`fix_min_p_error` (an item is a fix candidate from this p_error) and `remove_min_p_error` (a defect
    removable without allow_shrink) come from the run's options, not a constant of the catalogue."""
    profiles = [ItemProfile(id="low", domain="d", skill="s", difficulty=0.5, p_error=0.03, length_tokens=80),
                ItemProfile(id="mid", domain="d", skill="s", difficulty=0.5, p_error=0.3, length_tokens=80)]

    def candidates(options: RunOptions) -> set[tuple[str, Op]]:
        problem = build_problem(profiles, 50_000, catalogue=edit_catalogue(["fix", "remove"], 2, options))
        return {(item.id, c.op) for item in problem.items for c in item.candidates}

    assert candidates(RunOptions()) == {("mid", Op.FIX)}
    assert candidates(RunOptions(fix_min_p_error=0.01)) == {("low", Op.FIX), ("mid", Op.FIX)}
    assert ("mid", Op.REMOVE) in candidates(RunOptions(remove_min_p_error=0.2))


def test_a_mistyped_weight_of_the_error_model_is_refused_not_dropped(tmp_path: Path) -> None:
    opts = tmp_path / "opts.yaml"
    opts.write_text("error_model: {w_panel: 3}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"field 'error_model.w_panel': Extra inputs are not permitted"):
        read_options_file(opts)


def test_screen_reads_the_calibration_its_options_name_before_any_folder(tmp_path: Path) -> None:
    """`screen --options` naming a `screening_model` that is missing, or fitted on other members, stops
    before the screen's folder exists (the model used to be read inside it, leaving store and ledger)."""
    record = json.loads(_calibration(tmp_path, []).read_text())
    record["model"]["fitted_on"] = {"members": ["smollm2-135m"]}
    other = tmp_path / "other.json"
    other.write_text(json.dumps(record), encoding="utf-8")
    for named, says in ((tmp_path / "gone.json", "gone.json"), (other, "fitted on the answers of smollm2-135m")):
        opts = tmp_path / "opts.yaml"
        opts.write_text(f"screening_model: {named}\n", encoding="utf-8")
        out = tmp_path / "screen"
        result = CliRunner().invoke(app, ["screen", str(DATA), "--limit", "2", "--options", str(opts), "--out",
                                          str(out), "--quiet"])
        assert result.exit_code == 2 and says in " ".join(result.output.split()), result.output
        assert not out.exists()


@pytest.mark.parametrize("flag", ["--model", "--endpoint", "--api-key-env"])
def test_a_mistyped_role_is_refused_not_taken_as_a_value_for_every_role(flag: str) -> None:
    result = CliRunner().invoke(app, ["plan", str(DATA), "--budget", "1000", "--dry-run", flag, "jduge=big"])
    line = " ".join(result.output.split())
    assert result.exit_code == 2 and f"{flag} jduge=big: unknown role 'jduge'" in line, line


def test_a_limit_below_one_is_refused() -> None:
    result = CliRunner().invoke(app, ["plan", str(DATA), "--budget", "1000", "--dry-run", "--limit", "0"])
    assert result.exit_code == 2 and "--limit" in result.output


def test_screen_can_skip_the_response_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """`screen` spends tokens like `profile` and `refine`, and like them can be told not to replay answers."""
    seen: dict[str, Any] = {}

    def captured(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        raise ConfigError("stopped by the test")

    monkeypatch.setattr("refinelab.api.screening.screen", captured)
    for flags, cached in (([], True), (["--no-cache"], False)):
        result = CliRunner().invoke(app, ["screen", str(DATA), "--limit", "2", "--quiet", *flags])
        assert result.exit_code == 2 and seen["settings"].use_cache is cached, result.output
