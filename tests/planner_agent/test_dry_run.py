"""`refinelab plan --dry-run`: profiles once, plans, edits nothing; a re-plan with a new budget or target
makes no LLM call; the CLI's JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refinelab.agents.options import RunHooks, RunOptions
from refinelab.api.planning import plan as dry_run
from refinelab.cli.app import app
from refinelab.errors import DataError
from refinelab.metrics.targets import load_targets
from refinelab.tools.ledger import Ledger
from refinelab.tools.store import RunStore
from tests.support.plan_helpers import dataset, settings
from tests.support.scripted import EXTRAS, models

REPO = Path(__file__).resolve().parents[2]
N = 16


def _profiled(tmp_path: Path) -> tuple[Path, dict, dict]:
    chat = models()
    folder = tmp_path / "plan"
    report = dry_run(dataset(N), budget=30_000, folder=folder, settings=settings(tmp_path), hooks=RunHooks(chat_models=chat),
                     options=EXTRAS)
    return folder, report, chat


def _options_file(tmp_path: Path) -> Path:
    """The options `_profiled` used, as `plan --options FILE` takes them (its profile is reused only for them)."""
    path = tmp_path / "options.json"
    path.write_text(json.dumps(EXTRAS), encoding="utf-8")
    return path


def test_dry_run_makes_no_edits_and_a_replan_costs_nothing(tmp_path: Path) -> None:
    folder, first, chat = _profiled(tmp_path)
    assert not first["profile"]["reused"] and first["profile"]["tokens"] > 0
    assert first["edits_made"] == 0 and first["llm_calls_for_this_plan"] == 0
    assert first["forecast"]["refine_tokens"] > 0
    assert first["forecast"]["overall_tokens"] == first["profile"]["tokens"] + first["forecast"]["refine_tokens"]
    store = RunStore(folder / "store.sqlite")
    assert not store.edits() and not store.outcomes()
    assert set(store.statuses().values()) <= {"kept", "failed"}  # failed: rows quarantined at load
    assert store.status_counts()["kept"] == N
    store.close()
    spent = Ledger(folder / "ledger.sqlite").spent
    calls = chat["judge"].calls

    # another budget and another target: same profile, no LLM call, the ledger does not move
    second = dry_run(dataset(N), budget=8_000, folder=folder, settings=settings(tmp_path), hooks=RunHooks(chat_models=chat),
                     options=EXTRAS, targets=load_targets(REPO / "targets" / "stem_reasoning.yaml"))
    assert second["profile"]["reused"] and second["llm_calls_for_this_plan"] == 0
    assert chat["judge"].calls == calls and Ledger(folder / "ledger.sqlite").spent == spent
    assert second["forecast"]["refine_tokens"] <= second["plannable_tokens"] < first["plannable_tokens"]
    assert second["metrics"] != first["metrics"]
    assert json.loads((folder / "plan.json").read_text())["budget"] == 8_000


def test_cli_plan_dry_run_json_shape(tmp_path: Path) -> None:
    folder, _, _ = _profiled(tmp_path)  # the CLI reuses this profile: no model is needed
    data = REPO.parent / "shared" / "data" / "mmlu" / "dev"
    runner = CliRunner()
    result = runner.invoke(app, ["plan", str(data), "--budget", "20000", "--dry-run", "--limit", str(N),
                                 "--out", str(folder), "--options", str(_options_file(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"dry_run", "budget", "items", "profile", "plannable_tokens", "status", "reason", "by_op",
            "by_op_and_group", "forecast", "metrics", "marginal_value_per_1k", "objective", "catalogue",
            "llm_calls_for_this_plan", "edits_made"} <= set(report)
    assert report["dry_run"] is True and report["budget"] == 20_000 and report["items"] == N
    assert report["profile"]["reused"] and report["llm_calls_for_this_plan"] == 0 and report["edits_made"] == 0
    assert set(report["forecast"]) == {"refine_tokens", "overall_tokens", "profile_tokens"}
    assert report["forecast"]["refine_tokens"] == sum(t["tokens"] for t in report["by_op"].values()) or \
        abs(report["forecast"]["refine_tokens"] - sum(t["tokens"] for t in report["by_op"].values())) < 0.1
    for op, total in report["by_op"].items():
        assert sum(report["by_op_and_group"][op].values()) == total["count"]
    for metric in report["metrics"].values():
        assert set(metric) == {"before", "after", "change"}
    assert isinstance(report["marginal_value_per_1k"], float)
    # the table view and the refusal to plan without --dry-run
    table = runner.invoke(app, ["plan", str(data), "--budget", "20000", "--dry-run", "--limit", str(N),
                                "--out", str(folder), "--options", str(_options_file(tmp_path))])
    assert table.exit_code == 0 and "plan by operation" in table.stdout and "marginal value" in table.stdout
    refused = runner.invoke(app, ["plan", str(data), "--budget", "20000"])
    assert refused.exit_code == 2


def test_a_profile_replayed_from_the_cache_still_counts_against_the_budget(tmp_path: Path) -> None:
    """Profiling the same data into a second folder replays every answer from the response cache: nothing is
    spent, but a run would count those tokens against its cap, so the plan must leave them out of what it
    plans the edits with (it had planned 17,660 of 20,000 tokens for a set whose profile would take 16,525)."""
    _, first, chat = _profiled(tmp_path)
    again = dry_run(dataset(N), budget=30_000, folder=tmp_path / "plan-again", settings=settings(tmp_path),
                    hooks=RunHooks(chat_models=chat), options=EXTRAS)
    assert not again["profile"]["reused"] and Ledger(tmp_path / "plan-again" / "ledger.sqlite").spent == 0
    assert again["profile"]["tokens"] == first["profile"]["tokens"] > 0
    assert again["plannable_tokens"] == first["plannable_tokens"]


def test_the_plan_folder_is_keyed_by_the_profile_options_and_a_profile_made_otherwise_is_not_reused(
        tmp_path: Path) -> None:
    """`plan --skill-method` / `--panel` / `--options FILE`: options that shape the profile get their own
    default folder (default options keep the key folders had before; options that only decide what a run
    buys do not change it), and a folder profiled one way is refused, naming the difference, when a plan asks
    for another: its labels and evidence would not be the ones asked for."""
    from refinelab.api.planning import plan_dir

    data = REPO.parent / "shared" / "data" / "mmlu" / "dev"
    config = settings(tmp_path)
    default = plan_dir(config, data, None, N)
    assert default == plan_dir(config, data, None, N, RunOptions(skill_method="model", fix_min_p_error=0.01,
                                                                 operations=["fix"]))
    keyed = {plan_dir(config, data, None, N, RunOptions(**fields)) for fields in (
        {"skill_method": "exemplars"}, {"skill_method": "probs"}, {"panel": ["judge"]}, {"panel_orders": 3})}
    assert len(keyed | {default}) == 5

    folder, _, _ = _profiled(tmp_path)  # the judge's labels (skill method "model"), no panel configured
    runner = CliRunner()
    common = ["plan", str(data), "--budget", "20000", "--dry-run", "--limit", str(N), "--out", str(folder)]
    extras = _options_file(tmp_path)
    refused = runner.invoke(app, [*common, "--options", str(extras), "--skill-method", "exemplars"])
    assert refused.exit_code == 2, refused.output
    assert "skill_method \"model\" (the default) there, \"exemplars\" asked" in " ".join(refused.output.split())
    options_file = tmp_path / "opts.yaml"
    options_file.write_text("validators: []\npanel: [judge]\npanel_orders: 3\n", encoding="utf-8")
    refused = runner.invoke(app, [*common, "--options", str(options_file)])
    assert refused.exit_code == 2, refused.output
    line = " ".join(refused.output.split())
    assert "panel [] (the default) there, [\"judge\"] asked" in line, line
    assert "panel_orders 2 (the default) there, 3 asked" in line, line
    options_file.write_text("validators: []\nskill_method: model\nfix_min_p_error: 0.01\n", encoding="utf-8")
    same = runner.invoke(app, [*common, "--options", str(options_file), "--json"])
    assert same.exit_code == 0 and json.loads(same.stdout)["profile"]["reused"], same.output
    bad = runner.invoke(app, ["plan", str(data), "--budget", "20000", "--dry-run", "--skill-method", "vibes"])
    assert bad.exit_code == 2 and "--skill-method" in bad.output


def test_a_plan_against_a_reference_takes_its_items_out_and_plans_for_the_input_size(tmp_path: Path) -> None:
    """`plan --decontaminate`: the items the reference holds are taken out before profiling as a run takes
    them (not profiled, a `contamination` diagnostic each), the plan is made for the input's size, a second
    plan reuses the folder, and a folder measured against other references (or none) is refused."""
    from refinelab.api.planning import plan_dir
    from refinelab.io import write_jsonl

    data = dataset(N)
    leaked = write_jsonl([i.model_copy(update={"id": f"leak-{i.id}"}) for i in data.items[:3]],
                         tmp_path / "leaked.jsonl")
    chat, folder = models(), tmp_path / "plan"
    report = dry_run(data, budget=30_000, folder=folder, settings=settings(tmp_path), hooks=RunHooks(chat_models=chat),
                     options=EXTRAS, decontaminate=leaked)
    assert report["decontamination"]["found"] == 3 and report["decontamination"]["reference"] == str(leaked)
    store = RunStore(folder / "store.sqlite")
    taken_out = {i.id for i in data.items[:3]}
    assert {item_id for item_id, status, _ in store.originals() if status == "removed"} == taken_out
    assert {d.item_id for d in store.diagnostics("contamination")} == taken_out
    assert not any(store.diagnostic(item_id, "label") for item_id in taken_out)  # not profiled
    assert store.get_meta("target_total") == N
    assert not store.edits() or all(e["round"] < 0 for e in store.edits())  # the intake's removals only
    store.close()

    calls = chat["judge"].calls
    again = dry_run(data, budget=20_000, folder=folder, settings=settings(tmp_path), hooks=RunHooks(chat_models=chat),
                    options=EXTRAS, decontaminate=[leaked])
    assert again["profile"]["reused"] and chat["judge"].calls == calls
    with pytest.raises(DataError, match=r"measured with 3 item\(s\) taken out for decontamination, this plan "
                                        r"takes out 0"):
        dry_run(data, budget=20_000, folder=folder, settings=settings(tmp_path), hooks=RunHooks(chat_models=chat),
                options=EXTRAS)
    config, path = settings(tmp_path), REPO.parent / "shared" / "data" / "mmlu" / "dev"
    assert plan_dir(config, path, None, N) != plan_dir(config, path, None, N, decontaminate=[leaked])

    runner = CliRunner()
    shown = runner.invoke(app, ["plan", str(path), "--budget", "20000", "--dry-run", "--limit", str(N), "--out",
                                str(folder), "--decontaminate", str(leaked), "--options", str(_options_file(tmp_path))])
    assert shown.exit_code == 0, shown.output
    unwrapped = "".join(shown.stdout.split())  # the console wraps at its width, inside long paths too
    assert f"3of{N}itemswerefoundin{leaked}" in unwrapped
    alone = runner.invoke(app, ["plan", str(path), "--budget", "1", "--dry-run", "--decontaminate-split", "test"])
    assert alone.exit_code == 2 and "--decontaminate-split needs --decontaminate" in alone.output


@pytest.mark.parametrize(("arguments", "problem"), [({"budget": -1}, "budget must be >= 0"),
                                                    ({"budget": 1.5}, "whole number of tokens"),
                                                    ({"budget": 100, "mode": "vibes"}, "mode 'vibes': expected one of")])
def test_the_library_checks_the_budget_and_mode_before_anything(tmp_path: Path, arguments: dict,
                                                                 problem: str) -> None:
    """The checks the CLI makes hold for a Python caller too: nothing profiled, no folder made."""
    from refinelab.errors import ConfigError

    with pytest.raises(ConfigError, match=problem):
        dry_run(dataset(4), folder=tmp_path / "plan", settings=settings(tmp_path),
                hooks=RunHooks(chat_models=models()), options=EXTRAS, **arguments)
    assert not (tmp_path / "plan").exists()
