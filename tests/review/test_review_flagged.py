"""Flagged items no edit fixed pause for review before finalize: accept removes the item (the flag stands),
edit replaces it with the reviewer's version, reject keeps it; each decision is a line of changes.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

from refinelab.agents.options import RunHooks
from refinelab.api import refine
from refinelab.api.review import decide, pending_reviews
from refinelab.config import load_settings
from refinelab.io import read_jsonl
from tests.support.rl_helpers import mmlu
from tests.support.scripted import EXTRAS, models

# a low flag threshold flags items on the prior alone; no `fix` to buy, so the flags stay unfixed
OPTIONS = {**EXTRAS, "operations": ["expand"], "pilot_per_op": 0, "error_model": {"threshold": 0.05},
           "validate_suspects": False, "rounds": 1}


def _settings(tmp_path: Path):
    return load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite")})


def test_unfixed_flags_pause_then_accept_edit_reject(tmp_path: Path) -> None:
    result = refine(mmlu(6), budget=20_000, settings=_settings(tmp_path), hooks=RunHooks(chat_models=models()),
                    options={**OPTIONS, "review": "ask"})
    assert result.paused
    cases = pending_reviews(result.run_id, runs_dir=tmp_path / "runs")
    assert len(cases) >= 3 and {c.request.kind for c in cases} == {"unfixable"}
    assert all(c.key == f"item:{c.request.item_id}" and c.before and c.after is None for c in cases)
    assert all("p_error" in c.evidence and "no edit fixed it" in c.reasons[0] for c in cases)
    accept, edit, *rest = cases
    new_question = "Which gas do plants take in for photosynthesis?"
    done = decide(result.run_id, [
        {"key": accept.key, "decision": "accept"},
        {"key": edit.key, "decision": "edit", "item": {"question": new_question,
                                                        "choices": ["Oxygen", "Carbon dioxide", "Helium", "Argon"],
                                                        "answer": 1}},
        *({"key": c.key, "decision": "reject"} for c in rest)], runs_dir=tmp_path / "runs", reviewer="carol",
        hooks=RunHooks(chat_models=models()))
    assert not done.paused
    refined = {i.id: i for i in read_jsonl(done.run_dir / "refined.jsonl")}
    assert accept.request.item_id not in refined
    assert refined[edit.request.item_id].question == new_question
    assert refined[edit.request.item_id].provenance.created_by == "review"
    assert all(c.request.item_id in refined for c in rest)
    lines = [json.loads(line) for line in (done.run_dir / "changes.jsonl").read_text().splitlines()]
    reviewed = {line["item_id"]: line for line in lines if line["operation"] == "review"}
    assert set(reviewed) == {c.request.item_id for c in cases}
    assert reviewed[accept.request.item_id]["after"] is None and reviewed[accept.request.item_id]["review"]["by"] == "carol"
    assert reviewed[edit.request.item_id]["after"]["question"] == new_question
    assert done.report["reviews"]["unfixable:accept"] == 1 and done.report["unfixed_flagged_items"]
    assert done.report["items_by_status"]["removed"] >= 1


def test_auto_accept_removes_unfixed_flags_and_default_keeps_them(tmp_path: Path) -> None:
    accepted = refine(mmlu(6), budget=20_000, settings=_settings(tmp_path / "a"), hooks=RunHooks(chat_models=models()),
                      options={**OPTIONS, "review": "auto-accept"})
    kept = refine(mmlu(6), budget=20_000, settings=_settings(tmp_path / "b"), hooks=RunHooks(chat_models=models()),
                  options=OPTIONS)  # the default, auto-reject: no pause, nothing removed, nothing recorded
    assert not accepted.paused and not kept.paused
    flagged = {f["item_id"] for f in kept.report["unfixed_flagged_items"]}
    assert flagged and not kept.report["reviews"]
    assert accepted.report["reviews"] == {"unfixable:accept": len(flagged)}
    refined = {json.loads(line)["id"] for line in (accepted.run_dir / "refined.jsonl").read_text().splitlines()}
    assert not flagged & refined  # (here every item was flagged on the prior, so none is left)
    assert accepted.report["items_by_status"]["removed"] == len(flagged)


def test_key_fix_below_the_evidence_bar_pauses_and_accept_commits_it(tmp_path: Path) -> None:
    # the scripted writer moves every key; its own model is the validator, so its agreement does not count,
    # and with no panel the two-source bar is not met: each fix is held back for a person
    options = {**OPTIONS, "operations": ["fix"], "review": "ask", "max_attempts": 1}
    settings = load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite")})
    result = refine(mmlu(6), budget=40_000, settings=settings, hooks=RunHooks(chat_models=models()), options=options)
    assert result.paused
    cases = pending_reviews(result.run_id, runs_dir=tmp_path / "runs")
    fixes = [c for c in cases if c.request.kind == "below_bar"]
    assert fixes and all(c.request.operation == "fix" and c.evidence.get("needs_review") for c in fixes)
    # held back at the bar, or (the panel doubts the key and favours no option) abstained before any draft
    assert all(c.reasons[0].startswith(("key fix not committed", "abstained: the panel doubts")) for c in fixes)
    done = decide(result.run_id, [{"key": c.key, "decision": "accept"} for c in fixes], runs_dir=tmp_path / "runs",
                  reviewer="dan", hooks=RunHooks(chat_models=models()))
    while done.paused:  # then the flagged items the held-back fixes did not cover
        rest = pending_reviews(result.run_id, runs_dir=tmp_path / "runs")
        assert {c.request.kind for c in rest} == {"unfixable"}
        done = decide(result.run_id, [{"key": c.key, "decision": "reject"} for c in rest],
                      runs_dir=tmp_path / "runs", reviewer="dan", hooks=RunHooks(chat_models=models()))
    assert done.report["reviews"]["below_bar:accept"] == len(fixes)
    proposed = [c for c in fixes if c.after is not None]
    abstained = [c for c in fixes if c.after is None]  # no draft: accepting the doubt removes the item
    assert proposed and abstained
    outcomes = done.report["edits"]["outcomes"]
    assert outcomes.get("fix:committed") == len(proposed) and outcomes.get("fix:gave_up", 0) == len(abstained)
    refined = {i.id: i for i in read_jsonl(done.run_dir / "refined.jsonl")}
    assert all(refined[c.request.item_id].question == c.after["question"] for c in proposed)
    assert not {c.request.item_id for c in abstained} & set(refined)
