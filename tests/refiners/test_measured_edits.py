"""Measured edits: calibrate, rewrite_distractors, expand and generate are committed only when a
measurement shows the improvement the plan paid for, and the measurement is kept as the edit's evidence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from refinelab.agents.calibration_drafts import p_correct
from refinelab.agents.context import AgentContext
from refinelab.agents.options import RunHooks, RunOptions
from refinelab.agents.validation.verdicts import validate
from refinelab.config import load_settings
from refinelab.metrics.targets import Targets
from refinelab.schema import Cell, Diagnostic, QAItem
from refinelab.state import Candidate, EditTask
from refinelab.tools.ledger import Ledger
from refinelab.tools.store import RunStore
from refinelab.tools.tracing import Tracer
from tests.support.scripted_model import ScriptedChatModel, logprobs_block
from tests.support.validator_helpers import HashEmbedder

BASE = QAItem(id="chem-1", question="What is the chemical symbol of sodium?", choices=["So", "Na", "Sd", "Sn"],
              answer=1, subject="high_school_chemistry", domain="STEM", skill="recall", difficulty=0.1)


def make_ctx(tmp_path: Path, panel_letter: str, validator_letter: str = "B", panel_method: str = "letter") -> AgentContext:
    """The validator answers `validator_letter` (the answer check); the judge, which measures p(correct)
    when no panel is configured, answers `panel_letter` on every candidate."""
    settings = load_settings(overrides={"runs_dir": str(tmp_path)})
    store = RunStore(tmp_path / "store.sqlite")
    store.load_items([BASE])
    # the stored panel says the original is easy: the judge picked the key
    store.put_diagnostics([Diagnostic(item_id=BASE.id, check="panel", flag=False, score=1.0,
                                      evidence={"answers": {"judge": 1}, "key": 1, "answered": 1})])
    validator = ScriptedChatModel(respond=lambda m: json.dumps({"reasoning": "r", "answer": validator_letter}))
    panel = ScriptedChatModel(respond=lambda m: json.dumps({"answer": panel_letter}))
    models = {"validator": validator, "judge": panel, "panel:judge": panel}
    return AgentContext(run_dir=tmp_path, settings=settings, store=store, ledger=Ledger(cap=100_000),
                        tracer=Tracer(tmp_path / "trace.jsonl"), targets=Targets(),
                        hooks=RunHooks(chat_models=models, embed=HashEmbedder().embed),
                        options=RunOptions(dedup="lexical", validators=[], panel_method=panel_method,
                                           measure_new_item_cells=True))


HARDER = BASE.model_copy(update={"question": "Which symbol denotes the element with atomic number 11?",
                                 "choices": ["K", "Na", "Mg", "Ne"]})


def test_calibrate_is_committed_when_p_correct_moved_the_intended_way(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="A")  # the panel now misses the key: harder, as paid for
    verdict = validate(ctx, EditTask("e", BASE.id, "calibrate", 1, target="medium"), Candidate(HARDER, "", 0))
    assert verdict.passed, verdict.reason
    measured = verdict.evidence["measured"]
    assert measured["direction"] == "harder" and measured["p_before"] == 1.0 and measured["p_after"] == 0.0
    assert measured["change"] < 0 and verdict.tokens > 0


def test_calibrate_that_moved_nothing_is_rejected_with_the_measurement(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="B")  # the panel still gets it right
    verdict = validate(ctx, EditTask("e", BASE.id, "calibrate", 1, target="medium"), Candidate(HARDER, "", 0))
    assert not verdict.passed and verdict.method == "measured"
    assert "did not make the item harder" in verdict.reason
    assert verdict.evidence["measured"]["p_after"] == 1.0


def test_calibrate_with_a_wrong_key_fails_before_any_measurement(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="A", validator_letter="C")
    verdict = validate(ctx, EditTask("e", BASE.id, "calibrate", 1, target="medium"), Candidate(HARDER, "", 0))
    assert not verdict.passed and "measured" not in verdict.evidence


def test_rewrite_committed_only_when_diversity_rose(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="B")
    ctx.store.replace_item(BASE.model_copy(update={"choices": ["sodium one", "Na", "sodium two", "sodium three"]}),
                           "kept")
    diverse = BASE.model_copy(update={"choices": ["Sodium chloride", "Na", "Potassium ion", "Table salt crystal"]})
    verdict = validate(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1), Candidate(diverse, "", 0))
    assert verdict.passed, verdict.reason
    m = verdict.evidence["measured"]
    assert m["diversity_after"] > m["diversity_before"] and m["key_kept"] and m["new_distractors"] == 3


def test_rewrite_that_lowers_diversity_is_rejected(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="B")
    base = BASE.model_copy(update={"choices": ["Sodium chloride", "Na", "Potassium ion", "Table salt crystal"]})
    ctx.store.replace_item(base, "kept")
    samey = base.model_copy(update={"choices": ["sodium one", "Na", "sodium two", "sodium three"]})
    verdict = validate(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1), Candidate(samey, "", 0))
    assert not verdict.passed and "diversity did not rise" in verdict.reason


def test_rewrite_that_paraphrases_the_key_is_rejected(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="B")
    ctx.hooks.embed = lambda texts: HashEmbedder().embed([t.replace("the symbol ", "") for t in texts])
    sneaky = BASE.model_copy(update={"choices": ["the symbol Na", "Na", "Potassium", "Chlorine gas"]})
    verdict = validate(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1), Candidate(sneaky, "", 0))
    assert not verdict.passed and "paraphrase the correct answer" in verdict.reason


def test_rewrite_with_a_distractor_restating_the_keys_ratio_is_rejected(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="B")
    ratio = BASE.model_copy(update={"question": "Balanced, which is true?",
                                    "choices": ["The H+ : I- ratio is 2:1.", "The MnO4- : I- ratio is 6:5.",
                                                "The I- : IO3- ratio is 3:1.", "The MnO4- : Mn2+ ratio is 3:1."]})
    ctx.store.replace_item(ratio, "kept")
    restated = ratio.model_copy(update={"choices": ["The correct ratio is 6:5.", *ratio.choices[1:]]})
    verdict = validate(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1), Candidate(restated, "", 0))
    assert not verdict.passed and "paraphrase the correct answer" in verdict.reason
    assert verdict.evidence["measured"]["paraphrases_key"] == ["The correct ratio is 6:5."]


def test_rewrite_with_a_distractor_equal_to_the_key_as_a_formula_is_rejected(tmp_path: Path) -> None:
    """From a demo run: "r = k [B]^0" next to the key "r = k" (a zero-order rate) is the key again."""
    ctx = make_ctx(tmp_path, panel_letter="B")
    rate = BASE.model_copy(update={"question": "The rate, r, of a zero-order reaction A → B is",
                                   "choices": ["r = k / t", "r = k", "r = k ln[A]", "r = k [A]^2"]})
    ctx.store.replace_item(rate, "kept")
    restated = rate.model_copy(update={"choices": ["r = k [B]^0", *rate.choices[1:]]})
    verdict = validate(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1), Candidate(restated, "", 0))
    assert not verdict.passed and verdict.evidence["measured"]["paraphrases_key"] == ["r = k [B]^0"]


def test_p_correct_prefers_option_probabilities_over_votes() -> None:
    votes = Diagnostic(item_id="x", check="panel", flag=False, score=0.5,
                       evidence={"answers": {"a": 1, "b": 0}, "key": 1, "answered": 2})
    assert p_correct(votes) == 0.5
    probs = votes.model_copy(update={"evidence": {**votes.evidence, "probs": {"a": {"p": [0.2, 0.8]},
                                                                               "b": {"p": [0.6, 0.4]}}}})
    assert abs(p_correct(probs) - 0.6) < 1e-9
    assert p_correct(None) is None


def test_a_committed_calibration_adopts_its_measurement_and_a_rerun_measures_the_same(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="A")
    ctx.store.put_diagnostics([Diagnostic(item_id=BASE.id, check="difficulty", flag=False, score=0.1, evidence={
        "method": "irt", "logit": -2.0, "panel_ability": {"judge": 1.0}, "anchors": [0.0, 2.0]})])
    task = EditTask("e", BASE.id, "calibrate", 1, target="medium")
    candidate = HARDER.model_copy()
    first = validate(ctx, task, Candidate(candidate, "", 0))
    assert first.passed
    assert ctx.store.diagnostic(BASE.id, "panel_original").evidence["answers"] == {"judge": 1}
    assert ctx.store.diagnostic(BASE.id, "panel").evidence["answers"] == {"judge": 0}
    moved = ctx.store.diagnostic(BASE.id, "difficulty")
    assert moved.evidence["measured_after_edit"] and moved.score > 0.5 and candidate.difficulty == moved.score
    again = validate(ctx, task, Candidate(HARDER.model_copy(), "", 0))  # e.g. re-run after a crash
    assert again.passed and again.evidence["measured"] == first.evidence["measured"]


def test_a_calibration_on_the_reference_scale_is_placed_on_it(tmp_path: Path) -> None:
    """The one-member embedded panel places items on the shipped p(key) reference, with no Rasch anchors; a
    committed calibration must move the item there too (it used to keep no difficulty at all)."""
    from refinelab.agents.difficulty import difficulty_reference
    from refinelab.metrics.irt import reference_difficulty

    ctx = make_ctx(tmp_path, panel_letter="A")
    ctx.store.put_diagnostics([Diagnostic(item_id=BASE.id, check="difficulty", flag=False, score=0.5, evidence={
        "method": "irt", "logit": 0.0, "panel_ability": {"judge": 0.0}, "anchors": None,
        "reference": "qwen2.5-coder-1.5b on 304 MMLU-Redux items"})])
    candidate = HARDER.model_copy()
    assert validate(ctx, EditTask("e", BASE.id, "calibrate", 1, target="hard"), Candidate(candidate, "", 0)).passed
    moved = ctx.store.diagnostic(BASE.id, "difficulty")
    expected = reference_difficulty(0.0, difficulty_reference()["p_key_quantiles"])  # the judge now misses it
    assert moved.evidence["measured_after_edit"] and moved.score == expected > 0.9
    assert candidate.difficulty == expected


def test_calibrate_measures_option_probabilities_when_the_panel_has_them(tmp_path: Path) -> None:
    from tests.support.scripted_model import logprobs_block

    ctx = make_ctx(tmp_path, panel_letter="A", panel_method="logprobs")
    probe = ScriptedChatModel(respond=lambda m: logprobs_block({"A": 0.6, "B": 0.3, "C": 0.05, "D": 0.05}))
    ctx.hooks.chat_models["panel:judge"] = probe
    ctx.store.put_diagnostics([Diagnostic(item_id=BASE.id, check="panel", flag=False, score=1.0, evidence={
        "answers": {"judge": 1}, "key": 1, "answered": 1, "probs": {"judge": {"p": [0.05, 0.9, 0.03, 0.02]}}})])
    verdict = validate(ctx, EditTask("e", BASE.id, "calibrate", 1, target="medium"), Candidate(HARDER, "", 0))
    measured = verdict.evidence["measured"]
    assert measured["p_before"] == 0.9 and 0.0 < measured["p_after"] < 0.9  # continuous, not 0/1
    assert verdict.passed and probe.calls >= 2  # both option orders


NEW_ITEM = QAItem(id="r1-expand-1", question="Which treaty ended the Thirty Years' War in 1648?",
                  choices=["Peace of Westphalia", "Treaty of Utrecht", "Treaty of Paris", "Peace of Augsburg"],
                  answer=0, subject="", domain="humanities", skill="recall")


def _labelling_judge(ctx: AgentContext, skill: str) -> None:
    ctx.hooks.chat_models["judge"] = ScriptedChatModel(respond=lambda m: json.dumps({"skill": skill, "difficulty": 2}))


def test_expand_counts_only_when_the_new_item_is_labelled_into_the_cell_paid_for(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="A", validator_letter="A")
    _labelling_judge(ctx, "recall")
    task = EditTask("r1-expand-1", BASE.id, "expand", 1, target=Cell("humanities", "recall").key)
    candidate = NEW_ITEM.model_copy()
    verdict = validate(ctx, task, Candidate(candidate, "", 0))
    assert verdict.passed, verdict.reason
    measured = verdict.evidence["measured"]
    assert measured["measure"] == "cell" and measured["skill"] == "recall" and measured["domain"] == "humanities"
    label = ctx.store.diagnostic(NEW_ITEM.id, "label")  # kept, so the item is not labelled again after the round
    assert label is not None and label.evidence["skill"] == "recall"
    # the label call is part of what the edit cost: charged to its validate node, not to the profile
    by_node = ctx.ledger.summary()["by_node"]
    assert "profile" not in by_node and any(node.endswith("validate") for node in by_node), by_node


def test_expand_labelled_into_another_skill_is_sent_back_with_what_was_measured(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="A", validator_letter="A")
    _labelling_judge(ctx, "reasoning")
    task = EditTask("r1-expand-1", BASE.id, "expand", 1, target=Cell("humanities", "recall").key)
    verdict = validate(ctx, task, Candidate(NEW_ITEM.model_copy(), "", 0))
    assert not verdict.passed and verdict.method == "measured"
    assert "reads as humanities x reasoning" in verdict.reason and "mainly tests recall" in verdict.reason
    assert ctx.store.diagnostic(NEW_ITEM.id, "label") is None
    # placed before the validator: an item that helps no cell costs no answer check
    assert ctx.hooks.chat_models["validator"].calls == 0
    assert verdict.tokens == ctx.ledger.summary()["spent"] > 0  # the label's call, and nothing else


def test_a_placed_new_item_is_labelled_once_and_its_label_call_charged_once(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="A", validator_letter="A")
    _labelling_judge(ctx, "recall")
    task = EditTask("r1-expand-1", BASE.id, "expand", 1, target=Cell("humanities", "recall").key)
    verdict = validate(ctx, task, Candidate(NEW_ITEM.model_copy(), "", 0))
    assert verdict.passed, verdict.reason
    assert ctx.hooks.chat_models["validator"].calls == 1  # the answer check, after the placement
    assert verdict.tokens == ctx.ledger.summary()["spent"]  # label, answer check and panel, each counted once


def test_a_placed_new_item_the_validator_refuses_still_counts_its_label(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="A", validator_letter="B")  # the answer check picks another option
    _labelling_judge(ctx, "recall")
    task = EditTask("r1-expand-1", BASE.id, "expand", 1, target=Cell("humanities", "recall").key)
    verdict = validate(ctx, task, Candidate(NEW_ITEM.model_copy(), "", 0))
    assert not verdict.passed and verdict.method == "answer"
    assert verdict.evidence["measured"]["skill"] == "recall"  # what the placement measured, kept
    assert verdict.tokens == ctx.ledger.summary()["spent"]  # the label call and the answer check


def test_expand_labelled_into_another_under_covered_cell_still_counts(tmp_path: Path) -> None:
    """Written for humanities x recall, labelled humanities x reasoning: the set has no item there and the
    target wants one, so the new item still moves coverage towards the target; the evidence says so."""
    from refinelab.metrics.targets import Targets

    ctx = make_ctx(tmp_path, panel_letter="A", validator_letter="A")
    ctx.targets = Targets(coverage={"STEM": {"recall": 1.0}, "humanities": {"recall": 1.0, "reasoning": 1.0}})
    _labelling_judge(ctx, "reasoning")
    task = EditTask("r1-expand-1", BASE.id, "expand", 1, target=Cell("humanities", "recall").key)
    verdict = validate(ctx, task, Candidate(NEW_ITEM.model_copy(), "", 0))
    assert verdict.passed, verdict.reason
    measured = verdict.evidence["measured"]
    assert measured["skill"] == "reasoning" and measured["cell_share"] == 0.0 and measured["cell_target"] > 0.3
    assert "under-covered" in verdict.reason


def test_a_new_item_that_points_at_a_missing_passage_or_copies_a_taxonomy_example_counts_nowhere(
        tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="A", validator_letter="A")
    _labelling_judge(ctx, "comprehension")
    task = EditTask("r1-expand-1", BASE.id, "expand", 1, target=Cell("humanities", "comprehension").key)
    no_passage = NEW_ITEM.model_copy(update={"question": "Based on the following passage, the author's attitude is:"})
    verdict = validate(ctx, task, Candidate(no_passage, "", 0))
    assert not verdict.passed and "does not include" in verdict.reason
    example = ctx.skills.examples["recall"][0]
    copied = NEW_ITEM.model_copy(update={"question": example})
    verdict = validate(ctx, EditTask("r1-expand-2", BASE.id, "expand", 1, target=Cell("humanities", "recall").key),
                       Candidate(copied, "", 0))
    assert not verdict.passed and "copies an example" in verdict.reason
    with_passage = no_passage.model_copy(update={"question": "Read the following passage. " + "x " * 120 +
                                                 "Based on the passage, the author's attitude is:"})
    assert validate(ctx, task, Candidate(with_passage, "", 0)).passed
    # a structural flaw of any new item, checked before any model call: generate's too
    before = ctx.ledger.summary()["spent"]
    verdict = validate(ctx, EditTask("r1-generate-1", BASE.id, "generate", 1, target="hard"),
                       Candidate(no_passage.model_copy(update={"id": "r1-generate-1"}), "", 0))
    assert not verdict.passed and verdict.method == "structural" and "does not include" in verdict.reason
    assert ctx.ledger.summary()["spent"] == before


def _judge_believing(belief: dict[str, float]):  # noqa: ANN202
    """A logprobs judge giving each shown option the probability `belief` has for its text, wherever the
    option order put it."""
    def respond(messages) -> str:  # noqa: ANN001
        shown = dict(re.findall(r"^([A-J])\. (.+)$", messages[-1]["content"], flags=re.M))
        return logprobs_block({letter: belief.get(text.strip(), 0.01) for letter, text in shown.items()})
    return ScriptedChatModel(respond=respond)


#: the judge reads the new item the other way: Utrecht well ahead of the key, Westphalia
DOUBTS_WESTPHALIA = {"Peace of Westphalia": 0.2, "Treaty of Utrecht": 0.6, "Treaty of Paris": 0.1,
                     "Peace of Augsburg": 0.1}
AGREES_WESTPHALIA = {"Peace of Westphalia": 0.6, "Treaty of Utrecht": 0.2, "Treaty of Paris": 0.1,
                     "Peace of Augsburg": 0.1}


@pytest.mark.parametrize(("belief", "passes"), [(DOUBTS_WESTPHALIA, False), (AGREES_WESTPHALIA, True)])
def test_expand_whose_key_the_panel_contradicts_is_sent_back(tmp_path: Path, belief: dict[str, float],
                                                             passes: bool) -> None:
    """The writer's key is one source at most; the panel preferring another option by `NEW_KEY_LEAD` is
    evidence against it (the demo's AIC item: 0.46 on another option against the key's 0.18)."""
    ctx = make_ctx(tmp_path, panel_letter="A", validator_letter="A", panel_method="logprobs")
    _labelling_judge(ctx, "recall")
    ctx.hooks.chat_models["panel:judge"] = _judge_believing(belief)
    task = EditTask("r1-expand-1", BASE.id, "expand", 1, target=Cell("humanities", "recall").key)
    verdict = validate(ctx, task, Candidate(NEW_ITEM.model_copy(), "", 0))
    assert verdict.passed is passes, verdict.reason
    p_options = verdict.evidence["measured"]["p_options"]
    assert len(p_options) == 4 and (p_options[1] > p_options[0]) is not passes
    if not passes:
        assert verdict.method == "measured" and "prefers option B ('Treaty of Utrecht'" in verdict.reason
        assert ctx.store.diagnostic(NEW_ITEM.id, "label") is None  # nothing kept for a refused item


GENERATED = NEW_ITEM.model_copy(update={"id": "r1-generate-1", "domain": "STEM"})


def _reference_scale(ctx: AgentContext) -> None:
    """The profile's difficulty of the template: the one-member embedded panel's p(key) reference."""
    ctx.store.put_diagnostics([Diagnostic(item_id=BASE.id, check="difficulty", flag=False, score=0.1, evidence={
        "method": "irt", "logit": -2.0, "panel_ability": {"judge": 0.0}, "anchors": None,
        "reference": "qwen2.5-coder-1.5b on 304 MMLU-Redux items"})])


def test_generate_counts_only_when_the_new_item_measures_in_the_bucket_paid_for(tmp_path: Path) -> None:
    """The judge misses the new item's key: on the reference scale it is hard, so an item written for
    "hard" counts (and keeps the difficulty it was measured at), one written for "easy" is sent back."""
    from refinelab.agents.difficulty import difficulty_reference
    from refinelab.metrics.irt import reference_difficulty

    ctx = make_ctx(tmp_path, panel_letter="B", validator_letter="A")  # B is not the new item's key (A)
    _reference_scale(ctx)
    candidate = GENERATED.model_copy()
    verdict = validate(ctx, EditTask("r1-generate-1", BASE.id, "generate", 1, target="hard"),
                       Candidate(candidate, "", 0))
    assert verdict.passed, verdict.reason
    expected = reference_difficulty(0.0, difficulty_reference()["p_key_quantiles"])
    measured = verdict.evidence["measured"]
    assert measured["bucket"] == "hard" and measured["difficulty"] == round(expected, 4) and verdict.tokens > 0
    assert candidate.difficulty == expected
    assert ctx.store.diagnostic(candidate.id, "difficulty").score == expected
    assert ctx.store.diagnostic(candidate.id, "panel").evidence["answers"] == {"judge": 1}

    ctx.targets = Targets(difficulty={"easy": 0.5, "medium": 0.5})  # hard is not wanted: no other bucket helps
    refused = validate(ctx, EditTask("r1-generate-2", BASE.id, "generate", 1, target="easy"),
                       Candidate(GENERATED.model_copy(update={"id": "r1-generate-2"}), "", 0))
    assert not refused.passed and refused.method == "measured"
    assert "measures hard" in refused.reason and "not easy" in refused.reason
    assert ctx.store.diagnostic("r1-generate-2", "difficulty") is None  # nothing kept for a refused item


def test_generate_in_another_under_filled_bucket_counts(tmp_path: Path) -> None:
    """Written for "easy", measured "hard": it counts while the set has fewer hard items than the target
    asks for (the evidence says so), and is sent back when the target wants none. Without a difficulty
    target the share is the planner's default, a third per bucket."""
    ctx = make_ctx(tmp_path, panel_letter="B", validator_letter="A")
    _reference_scale(ctx)  # the one stored item (BASE, difficulty 0.1) is easy: hard has share 0
    verdict = validate(ctx, EditTask("r1-generate-1", BASE.id, "generate", 1, target="easy"),
                       Candidate(GENERATED.model_copy(), "", 0))
    assert verdict.passed, verdict.reason
    measured = verdict.evidence["measured"]
    assert measured["bucket"] == "hard" and measured["bucket_share"] == 0.0
    assert measured["bucket_target"] == pytest.approx(1 / 3, abs=1e-4)
    assert "under-filled" in verdict.reason

    ctx.targets = Targets(difficulty={"easy": 1.0})
    ctx.targets = Targets(difficulty={"easy": 0.5, "medium": 0.5})  # hard is not wanted: no other bucket helps
    refused = validate(ctx, EditTask("r1-generate-2", BASE.id, "generate", 1, target="easy"),
                       Candidate(GENERATED.model_copy(update={"id": "r1-generate-2"}), "", 0))
    assert not refused.passed and "already filled" in refused.reason


def test_generate_without_an_irt_scale_passes_and_says_it_was_not_measured(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, panel_letter="B", validator_letter="A")
    verdict = validate(ctx, EditTask("r1-generate-1", BASE.id, "generate", 1, target="hard"),
                       Candidate(GENERATED.model_copy(), "", 0))
    assert verdict.passed and verdict.evidence["measured"]["measured"] is False
    assert "not measured" in verdict.reason


@pytest.mark.llm
def test_the_real_embedded_judge_places_a_new_item_in_a_bucket(embedded_server, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real llama.cpp server: the judge's two-order probe on a new item gives p(key), the item
    is placed on the profile's reference scale, and it counts exactly when that lands in the bucket paid
    for; the measurement's tokens are on the ledger."""
    from refinelab.agents.difficulty import difficulty_reference
    from refinelab.agents.refiner import run_buckets
    from refinelab.agents.validation.measured import measure_bucket
    from refinelab.config import ModelSpec, Roles
    from refinelab.metrics.irt import reference_difficulty
    from tests.conftest import SMALL_MODEL

    monkeypatch.setenv("LOCAL_KEY", "sk-local")
    spec = ModelSpec(endpoint=embedded_server.base_url, model=SMALL_MODEL, api_key_env="LOCAL_KEY", max_tokens=60)
    ctx = make_ctx(tmp_path, panel_letter="A", panel_method="logprobs")
    ctx.settings = ctx.settings.model_copy(update={"roles": Roles(judge=spec, writer=spec, validator=spec)})
    ctx.hooks = RunHooks(embed=HashEmbedder().embed)  # no scripted models: every call goes to the server
    _reference_scale(ctx)
    result = measure_bucket(ctx, EditTask("r1-generate-1", BASE.id, "generate", 1, target="hard"),
                            GENERATED.model_copy())
    measured = result.evidence
    assert result.tokens == ctx.ledger.spent > 0, result.reason
    assert 0.0 <= measured["p_key"] <= 1.0
    expected = reference_difficulty(measured["p_key"], difficulty_reference()["p_key_quantiles"])
    assert measured["difficulty"] == round(expected, 4)
    assert measured["bucket"] == run_buckets(ctx).bucket(expected)
    assert result.improved == (measured["bucket"] == "hard"), result.reason


@pytest.mark.llm
def test_the_real_embedded_judge_checks_a_new_items_key(embedded_server, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real llama.cpp server: the panel's two-order option probabilities on a new item, and a
    key refused exactly when another option leads it by `NEW_KEY_LEAD`, whichever option is keyed."""
    from refinelab.agents.validation.measured import NEW_KEY_LEAD, _panel_on, contradicted_key
    from refinelab.config import ModelSpec, Roles
    from tests.conftest import SMALL_MODEL

    monkeypatch.setenv("LOCAL_KEY", "sk-local")
    spec = ModelSpec(endpoint=embedded_server.base_url, model=SMALL_MODEL, api_key_env="LOCAL_KEY", max_tokens=60)
    ctx = make_ctx(tmp_path, panel_letter="A", panel_method="logprobs")
    ctx.settings = ctx.settings.model_copy(update={"roles": Roles(judge=spec, writer=spec, validator=spec)})
    ctx.hooks = RunHooks(embed=HashEmbedder().embed)
    refused = 0
    for key in range(len(NEW_ITEM.choices)):  # the same item keyed on each option in turn
        item = NEW_ITEM.model_copy(update={"id": f"r1-expand-{key}", "answer": key})
        panel, tokens = _panel_on(ctx, EditTask(item.id, BASE.id, "expand", 1, target="humanities|recall"), item,
                                  ["judge"])
        pooled = panel.evidence["pooled"]
        assert tokens > 0 and len(pooled) == 4 and sum(pooled) == pytest.approx(1.0, abs=0.01), pooled
        contradicted = max(pooled) - pooled[key] >= NEW_KEY_LEAD
        assert bool(contradicted_key(panel, item)) is contradicted, (key, pooled)
        refused += contradicted
    assert refused >= 1  # one distribution, four keys: unless the judge reads all four options alike, some key
    #                      trails the favourite by the lead
