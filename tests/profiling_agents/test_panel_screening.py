"""Panel answers → p_error and error type, IRT difficulty, pick rates; validator on suspects; skipping."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from refinelab.agents.profiler import profile_items
from refinelab.schema import QAItem
from refinelab.state import SETTLED_CONFIDENCE, Verdict
from tests.support.pa_helpers import Recorder, make_context, planted_items
from tests.support.scripted_model import ScriptedChatModel


def _member(letter_for: dict[str, str], default: str = "A") -> ScriptedChatModel:
    """A panel member answering `letter_for[level]` for items at that level, else `default`."""
    def respond(messages: list[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        level = text.split("level ")[1].split(" ")[0]
        return json.dumps({"answer": letter_for.get(level, default)})

    return ScriptedChatModel(respond=respond)


def _panel() -> dict[str, ScriptedChatModel]:
    # item at level 0: every member picks C (key is A) → a likely wrong key; level 1: scattered dissent
    return {"m1": _member({"0": "C", "1": "B"}), "m2": _member({"0": "C", "1": "C"}),
            "m3": _member({"0": "C", "1": "D"})}


def test_panel_disagreement_raises_p_error_and_names_wrong_groundtruth(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, ScriptedChatModel(respond=Recorder()), panel=_panel(),
                       options={"panel": ["m1", "m2", "m3"], "validate_suspects": False})
    ctx.store.load_items(planted_items(4))
    profile_items(ctx, ctx.store.items(("kept",)))
    errors = {d.item_id: d for d in ctx.store.diagnostics("error")}
    assert errors["q00"].flag and errors["q00"].evidence["error_type"] == "wrong_groundtruth"
    assert errors["q00"].evidence["p_error"] > 0.5 > errors["q02"].evidence["p_error"]
    assert errors["q01"].evidence["p_error"] > errors["q02"].evidence["p_error"]
    assert "panel" in errors["q00"].evidence["stages"]
    panel = ctx.store.diagnostic("q00", "panel")
    assert panel is not None and panel.evidence["answers"] == {"m1": 2, "m2": 2, "m3": 2} and panel.flag


def test_panel_feeds_irt_and_pick_rates_and_is_not_asked_twice(tmp_path: Path) -> None:
    members = _panel()
    ctx = make_context(tmp_path, ScriptedChatModel(respond=Recorder()), panel=members,
                       options={"panel": "m1,m2,m3", "difficulty_method": "irt", "distractors": True,
                               "validate_suspects": False,
                               "embed": lambda texts: np.random.default_rng(len(texts)).normal(size=(len(texts), 8))})
    ctx.store.load_items(planted_items(4))
    profile_items(ctx, ctx.store.items(("kept",)))
    diff = {d.item_id: d for d in ctx.store.diagnostics("difficulty")}
    assert {d.evidence["method"] for d in diff.values()} == {"irt"}
    assert diff["q00"].score > diff["q02"].score  # everyone fails q00; everyone solves q02
    dis = ctx.store.diagnostic("q00", "distractors")
    assert dis is not None and dis.evidence["pick_rates"]["C"] == 1.0 and "diversity" in dis.evidence
    calls = sum(m.calls for m in members.values())
    profile_items(ctx, ctx.store.items(("kept",)))
    assert sum(m.calls for m in members.values()) == calls


def test_validator_runs_on_suspects_only(tmp_path: Path) -> None:
    seen: list[str] = []

    def check_original(ctx: object, item: QAItem) -> Verdict:
        seen.append(item.id)
        return Verdict(False, "computed answer differs", "pot", {"x": 1}, 7, outcome="match_other",
                       confidence=SETTLED_CONFIDENCE)

    ctx = make_context(tmp_path, ScriptedChatModel(respond=Recorder()), panel=_panel(),
                       options={"panel": ["m1", "m2", "m3"], "check_original": check_original})
    ctx.store.load_items(planted_items(4))
    profile_items(ctx, ctx.store.items(("kept",)))
    assert sorted(seen) == ["q00", "q01"]  # the panel's suspects; q02, q03 are answered with the key
    verdict = ctx.store.diagnostic("q00", "validator")
    assert verdict is not None and verdict.flag and verdict.evidence["method"] == "pot" and verdict.evidence["tokens"] == 7
    error = ctx.store.diagnostic("q00", "error")
    assert error is not None and "validator" in error.evidence["stages"] and error.evidence["p_error"] > 0.95
    profile_items(ctx, ctx.store.items(("kept",)))
    assert len(seen) == 2  # stored verdicts are not asked for again


def test_graph_defaults_make_two_calls_per_item(tmp_path: Path) -> None:
    """The default measures difficulty by IRT on how the judge does (one short answer per item, besides
    the label call), not by the labeller's 1-5 guess."""
    judge = ScriptedChatModel(respond=Recorder())
    ctx = make_context(tmp_path, judge)
    ctx.store.load_items(planted_items(5))
    done, stop = profile_items(ctx, ctx.store.items(("kept",)))
    assert (done, stop, judge.calls) == (5, "", 10)
    assert {d.evidence["method"] for d in ctx.store.diagnostics("difficulty")} == {"irt"}
    assert len(ctx.store.diagnostics("error")) == 5
    assert all(i.skill == "recall" and i.difficulty is not None for i in ctx.store.items())


def test_exemplar_skills_leave_one_call_per_item(tmp_path: Path) -> None:
    """With `skill_method="exemplars"` (and IRT difficulty) the judge is not asked for labels at all."""
    judge = ScriptedChatModel(respond=Recorder())
    ctx = make_context(tmp_path, judge, options={"skill_method": "exemplars"})
    ctx.store.load_items(planted_items(5))
    done, stop = profile_items(ctx, ctx.store.items(("kept",)))
    assert (done, stop, judge.calls) == (5, "", 5)
    assert {d.evidence["by"] for d in ctx.store.diagnostics("label")} <= {"exemplars", "signals"}
    assert all(i.skill in [*ctx.skills.names, "unsure"] and i.difficulty is not None for i in ctx.store.items())


def test_rating_stays_an_option(tmp_path: Path) -> None:
    judge = ScriptedChatModel(respond=Recorder())
    ctx = make_context(tmp_path, judge, options={"difficulty_method": "rating", "skill_method": "exemplars"})
    ctx.store.load_items(planted_items(5))
    done, stop = profile_items(ctx, ctx.store.items(("kept",)))
    assert (done, stop, judge.calls) == (5, "", 5)
    assert {d.evidence["method"] for d in ctx.store.diagnostics("difficulty")} == {"rating"}
    assert all(i.difficulty == 0.5 for i in ctx.store.items())
    # the judge is asked for the rating; its skill is kept beside the exemplar one
    assert {d.evidence["model_skill"] for d in ctx.store.diagnostics("label")} == {"recall"}


def test_distractor_pick_rates_come_from_the_panels_option_probabilities(tmp_path: Path) -> None:
    """A logprob panel's distributions are its pick rates: every option the member gives >= 5% works, the
    one it never picks does not (two argmax votes would have called B and C idle too). One member's
    distribution is not `min_responses` test-takers, so the score does not judge them yet."""
    from tests.support.scripted_model import logprobs_block

    def by_text(messages: list[dict[str, str]]) -> str:
        belief = {"Alpha": 0.6, "Bravo": 0.25, "Charlie": 0.14, "Delta": 0.01}
        shown = [ln for ln in messages[-1]["content"].splitlines() if len(ln) > 3 and ln[1:3] == ". "]
        return logprobs_block({ln[0]: next(p for name, p in belief.items() if ln[3:].startswith(name))
                               for ln in shown})

    ctx = make_context(tmp_path, ScriptedChatModel(respond=Recorder()), panel={"m": ScriptedChatModel(respond=by_text)},
                       options={"panel": ["m"], "panel_method": "logprobs", "distractors": True,
                                "validate_suspects": False,
                                "embed": lambda texts: np.random.default_rng(len(texts)).normal(size=(len(texts), 8))})
    item = QAItem(id="q", question="Which of these is the first letter of the NATO alphabet?",
                  choices=["Alpha", "Bravo", "Charlie", "Delta"], answer=0, subject="misc")
    ctx.store.load_items([item])
    profile_items(ctx, ctx.store.items(("kept",)))
    dis = ctx.store.diagnostic("q", "distractors")
    assert dis is not None, "no distractor diagnostic"
    assert dis.evidence["nonfunctional"] == ["D"] and dis.evidence["n_responses"] == 1
    assert dis.evidence["pick_rates"]["B"] == pytest.approx(0.25, abs=0.01)
    assert "function" not in dis.evidence["components"]
