"""Human review end to end: a run pauses at `interrupt()`, `refinelab review` (a real subprocess) shows the
cases and takes decisions from the terminal, the run resumes with `Command(resume=…)` and finishes; the
queue round-trips through `--export`/`--import`; decisions land in changes.jsonl with who/when.

The model is scripted and served over loopback HTTP, so the CLI process resumes the run through the
endpoints its settings name, exactly as a user's would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from refinelab.api import refine
from refinelab.api.review import decide, decided_by_policy, pending_reviews, read_decisions
from refinelab.errors import DataError
from refinelab.io import read_jsonl
from refinelab.metrics.targets import Targets
from tests.support.fault_proxy import FaultProxy
from tests.support.review_scripted import UNDECIDABLE, undecided_respond
from tests.support.rl_helpers import KEY_ENV, mmlu, proxied_settings
from tests.support.scripted import EXTRAS

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = {**EXTRAS, "operations": ["expand", "generate"], "pilot_per_op": 0, "review": "ask", "rounds": 1,
           "max_attempts": 1}
# Cells the 8 items leave empty, so the auto-policy run buys expand as well as generate (with targets taken
# from the items' own cells, an expansion can only overshoot them and the plan buys generate alone)
TARGETS = Targets(coverage={"STEM": {"recall": 0.25, "reasoning": 0.25}, "other": {"recall": 0.25, "comprehension": 0.25}})


def _cli(args: list[str], stdin: str = "", timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), KEY_ENV: "sk-review", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "refinelab", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout, check=False)


@pytest.fixture
def paused_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(KEY_ENV, "sk-review")
    with FaultProxy(undecided_respond) as proxy:
        settings = proxied_settings(tmp_path, proxy.url, timeout_s=10.0)
        result = refine(mmlu(8), budget=40_000, settings=settings, run_id="rv", options=OPTIONS)
        yield result, tmp_path / "runs"


def test_interrupt_cli_decisions_resume_and_queue_roundtrip(paused_run, tmp_path: Path) -> None:
    result, runs = paused_run
    assert result.paused and result.pending_review >= 4
    assert not (result.run_dir / "refined.jsonl").exists()  # nothing final while decisions are pending
    cases = pending_reviews("rv", runs_dir=runs)
    assert len(cases) == result.pending_review
    assert all(c.request.kind == "undecided" and c.before and c.after and UNDECIDABLE in c.after["question"]
               and c.reasons[0].startswith("validator could not answer") for c in cases)

    # terminal session: accept the first, edit the second, skip the third, reject the rest
    edited_question = "Which planet is closest to the Sun?"
    answers = ["a", "e", edited_question, "Venus | Mercury | Mars | Earth", "B", "fixed by hand", "s"]
    answers += ["r", "not sure"] * (len(cases) - 3)
    shown = _cli(["review", "rv", "--runs-dir", str(runs), "--reviewer", "alice"], "\n".join(answers) + "\n")
    assert shown.returncode == 0, shown.stderr
    for case in cases:
        assert case.key in shown.stdout  # every case was shown with its item and reasons
    assert "validator could not answer" in shown.stdout and "after (proposed)" in shown.stdout
    left = pending_reviews("rv", runs_dir=runs)
    assert [c.key for c in left] == [cases[2].key]  # the skipped case is still pending, the others resumed

    # the same queue, decided elsewhere: export, fill in, import
    queue = tmp_path / "queue.jsonl"
    exported = _cli(["review", "rv", "--runs-dir", str(runs), "--export", str(queue)])
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in queue.read_text().splitlines()]
    assert [line["key"] for line in lines] == [cases[2].key] and lines[0]["decision"] is None
    lines[0].update(decision="accept", note="checked in the spreadsheet")
    queue.write_text("".join(json.dumps(line) + "\n" for line in lines))
    imported = _cli(["review", "rv", "--runs-dir", str(runs), "--import", str(queue), "--reviewer", "bob"])
    assert imported.returncode == 0, imported.stderr
    assert "finished" in imported.stdout

    run_dir = runs / "rv"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["reviews"] == {"undecided:accept": 2, "undecided:edit": 1,
                                 "undecided:reject": len(cases) - 3}
    assert report["new_items"] == 3
    refined = read_jsonl(run_dir / "refined.jsonl")
    assert any(i.question == edited_question and i.answer == 1 for i in refined)
    reviewed = {}
    for line in (run_dir / "changes.jsonl").read_text().splitlines():
        change = json.loads(line)
        if "review" in change:
            reviewed[change["edit_id"]] = change["review"]
    assert set(reviewed) == {c.key for c in cases}
    assert reviewed[cases[0].key]["by"] == "alice" and reviewed[cases[0].key]["decision"] == "accept"
    assert reviewed[cases[1].key]["note"] == "fixed by hand"
    assert reviewed[cases[2].key]["by"] == "bob" and reviewed[cases[2].key]["note"] == "checked in the spreadsheet"
    assert all(r["at"].endswith("+00:00") for r in reviewed.values())
    assert decided_by_policy("rv", runs_dir=runs) == {}  # people decided these, not a policy
    outcomes = {o["edit_id"]: o for o in json.loads(json.dumps(report["gave_up"]))}
    assert {k for k, r in reviewed.items() if r["decision"] == "reject"} == set(outcomes)
    assert all("rejected in review by alice" in o["reason"] for o in outcomes.values())


def test_bad_decisions_fail_before_anything_resumes(paused_run, tmp_path: Path) -> None:
    result, runs = paused_run
    key = pending_reviews("rv", runs_dir=runs)[0].key
    with pytest.raises(ValueError, match="no pending review case 'nope'"):
        decide("rv", [{"key": "nope", "decision": "accept"}], runs_dir=runs)
    with pytest.raises(ValueError, match=r"item\.choices"):
        decide("rv", [{"key": key, "decision": "edit", "item": {"choices": ["same", "same"]}}], runs_dir=runs)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"key": key, "decision": "maybe"}) + "\n")
    with pytest.raises(DataError, match=r"row 1, field 'decision'"):
        read_decisions(bad)
    failed = _cli(["review", "rv", "--runs-dir", str(runs), "--import", str(bad)])
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1 and "bad.jsonl" in failed.stderr
    assert len(pending_reviews("rv", runs_dir=runs)) == result.pending_review  # nothing was decided


def test_auto_policies_decide_without_pausing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-review")
    with FaultProxy(undecided_respond) as proxy:
        for mode, status in (("auto-accept", "committed"), ("auto-reject", "gave_up")):
            settings = proxied_settings(tmp_path / mode, proxy.url, timeout_s=10.0)
            result = refine(mmlu(8), budget=40_000, settings=settings, run_id="rv", targets=TARGETS,
                            options={**OPTIONS, "review": mode})
            assert not result.paused and result.report["reviews"]
            decision = "accept" if mode == "auto-accept" else "reject"
            assert set(result.report["reviews"]) == {f"undecided:{decision}"}
            changes = [json.loads(line) for line in (result.run_dir / "changes.jsonl").read_text().splitlines()]
            assert all(c["review"]["by"] == f"policy:{mode}" for c in changes if "review" in c)
            # every edit the policy decided ended as it says; the plan buys more new items than the 8 items give
            # templates, and a writer at temperature 0 repeats a reused template's draft: such repeats are
            # refused by the structural checks before any review, and are the only other outcome
            outcomes = set(result.report["edits"]["outcomes"])
            assert {f"{op}:{status}" for op in ("expand", "generate")} <= outcomes
            reviewed = [c for c in changes if "review" in c]
            assert reviewed and all(c["review"]["decision"] == decision for c in reviewed)
            # nothing is pending, and `refinelab review` says where the policy's decisions went
            assert decided_by_policy("rv", runs_dir=settings.runs_dir) == result.report["reviews"]
            told = _cli(["review", "rv", "--runs-dir", str(settings.runs_dir)])
            assert told.returncode == 0 and "nothing to review" in told.stdout, told.stderr
            assert f"its review policy decided {len(reviewed)} case(s)" in told.stdout
            if mode == "auto-accept":
                assert all("too close to existing item" in g["reason"] for g in result.report["gave_up"])
            else:
                assert not any(o.endswith(":committed") for o in outcomes)
