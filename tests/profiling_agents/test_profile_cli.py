"""`refinelab profile` end to end on scripted models: profile.json with diagnostics, JSD and the ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import refinelab.api.context as api_context
from refinelab.agents.options import RunHooks
from refinelab.cli.app import app
from tests.support.pa_helpers import Recorder
from tests.support.scripted_model import ScriptedChatModel

REPO = Path(__file__).resolve().parents[2]
MMLU_DEV = REPO.parent / "shared" / "data" / "mmlu" / "dev"


class AnyItemJudge(Recorder):
    """Answers the label prompt for real MMLU items (no planted level) and the harder prompt by length."""

    def __call__(self, messages: list[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        if "Which question is harder" in text:
            first, second = text.split("Question 2")[:2]
            return json.dumps({"harder": 1 if len(first) > len(second) else 2})
        return super().__call__(messages)


def test_profile_command_writes_profile_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    judge = ScriptedChatModel(respond=AnyItemJudge())
    real = api_context.open_run_context

    def scripted_context(run_dir, **kwargs):  # type: ignore[no-untyped-def]
        return real(run_dir, **{**kwargs, "hooks": RunHooks(chat_models={"judge": judge})})

    monkeypatch.setattr(api_context, "open_run_context", scripted_context)  # working_folder opens through it
    monkeypatch.setenv("REFINELAB_CACHE_PATH", str(tmp_path / "cache.sqlite"))
    out = tmp_path / "prof"
    result = CliRunner().invoke(app, [
        "profile", str(MMLU_DEV), "--targets", str(REPO / "targets" / "uniform_mmlu.yaml"), "--limit", "10",
        "--difficulty", "elo", "--skill-method", "model", "--out", str(out), "--quiet", "--no-validator",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "profile.json").read_text())
    assert report["profiled"] == report["items"] == 10
    by_component = report["ledger_by_component"]
    # the judge labels the items whose signals do not decide the skill (computable ones are calculation)
    by = [d["diagnostics"]["label"]["evidence"]["by"] for d in report["items_detail"]]
    assert set(by) == {"model", "signals"} and by_component["label"]["calls"] == by.count("model")
    assert by_component["elo"]["calls"] > 10
    assert sum(s["tokens"] for s in by_component.values()) == report["ledger"]["spent"] > 0
    assert 0 <= report["coverage"]["jsd"] <= 1 and 0 <= report["difficulty"]["jsd"] <= 1
    checks = {row["check"] for row in report["summary"]["checks"]}
    assert {"error", "difficulty"} <= checks
    detail = report["items_detail"][0]
    assert {"label", "difficulty", "error"} <= set(detail["diagnostics"]) and detail["domain"]
    assert "tokens by component" in result.output or result.output  # table printed to stdout


def test_profile_command_rejects_unknown_method(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["profile", str(MMLU_DEV), "--difficulty", "vibes", "--out", str(tmp_path)])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["profile", str(MMLU_DEV), "--skill-method", "vibes", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--skill-method" in result.output
