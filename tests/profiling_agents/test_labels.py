"""Skill labels: by skill exemplars (default) or the judge constrained to the taxonomy; "unsure", never
empty; computable items by their signals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from refinelab.agents.labels import asks_judge, classify_skill, label_schema, normalise_skill
from refinelab.agents.profiler import labelled
from refinelab.schema import QAItem
from tests.support.pa_helpers import make_context
from tests.support.scripted_model import ScriptedChatModel

WORD_PROBLEM = QAItem(id="m1", question="A shop sells pens at 3 for $2. How much do 12 pens cost in dollars?",
                      choices=["6", "8", "10", "12"], answer=1, subject="gsm8k")
FACT = QAItem(id="f1", question="Which organelle produces most of a cell's ATP?",
              choices=["Nucleus", "Mitochondrion", "Ribosome", "Golgi body"], answer=1, subject="biology")


MODEL = {"skill_method": "model"}
EXEMPLARS = {"skill_method": "exemplars"}
COMMONSENSE = QAItem(id="c1", question="Where would you usually keep ice cream so that it stays frozen?",
                     choices=["freezer", "oven", "garden", "bookshelf"], answer=0, subject="commonsense")


def _judge(skill: str) -> ScriptedChatModel:
    return ScriptedChatModel(respond=lambda m: json.dumps({"skill": skill, "difficulty": 2}))


def test_schema_is_an_enum_of_the_taxonomy_plus_unsure() -> None:
    schema = label_schema(("recall", "calculation")).model_json_schema()
    assert schema["properties"]["skill"]["enum"] == ["recall", "calculation", "unsure"]
    assert normalise_skill(" Recall ", ["recall"]) == "recall" and normalise_skill("vibes", ["recall"]) == "unsure"


def test_prompt_shows_few_shot_examples_and_unsure(tmp_path: Path) -> None:
    seen: list[str] = []
    judge = ScriptedChatModel(respond=lambda m: seen.append(m[-1]["content"]) or json.dumps(
        {"skill": "recall", "difficulty": 2}))
    ctx = make_context(tmp_path, judge, options=MODEL)
    diag = classify_skill(ctx, FACT, 80)
    assert diag.evidence["skill"] == "recall" and diag.evidence["by"] == "model"
    assert 'e.g. "Which organelle' in seen[0] and "- unsure:" in seen[0]


def test_computable_items_are_calculation_without_asking_the_judge(tmp_path: Path) -> None:
    asked: list[str] = []
    judge = ScriptedChatModel(respond=lambda m: asked.append(m[-1]["content"]) or json.dumps(
        {"skill": "comprehension", "difficulty": 2}))
    ctx = make_context(tmp_path, judge, options=MODEL)
    assert not asks_judge(ctx, WORD_PROBLEM) and asks_judge(ctx, FACT)
    diag = classify_skill(ctx, WORD_PROBLEM, 80)
    assert diag.evidence["skill"] == "calculation" and diag.evidence["by"] == "signals"
    assert diag.evidence["tokens"] == 0 and "model_skill" not in diag.evidence and not asked
    assert classify_skill(ctx, FACT, 80).evidence["skill"] == "comprehension" and len(asked) == 1


def test_a_failed_label_is_unsure_never_an_empty_cell(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "no json here"), options=MODEL)
    ctx.store.load_items([FACT])
    diag = classify_skill(ctx, FACT, 80)
    assert diag.flag and diag.evidence["skill"] == "unsure"
    ctx.store.put_diagnostics([diag])
    assert labelled(ctx, FACT).skill == "unsure" and labelled(ctx, FACT).domain


def _bag_of_words(texts: list[str]) -> np.ndarray:
    """A deterministic stand-in embedder: hashed word counts, so shared words mean nearby vectors."""
    out = np.zeros((len(texts), 64))
    for row, text in enumerate(texts):
        for word in text.lower().replace("?", " ").replace(".", " ").split():
            out[row, sum(map(ord, word)) % 64] += 1.0
    return out


def _never_called(messages: list[dict[str, str]]) -> str:
    raise AssertionError("the judge must not be asked for an exemplar label")


def test_exemplar_labels_need_no_model_call_and_keep_their_evidence(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, ScriptedChatModel(respond=_never_called), options=EXEMPLARS)
    ctx.hooks.embed = _bag_of_words
    ctx.skills = ctx.skills.model_copy(update={"examples": {
        "recall": ["Which organelle produces the energy of a cell?"],
        "reasoning": ["Where would you usually keep milk so that it stays cold?"]}})
    assert not asks_judge(ctx, FACT)
    fact, common = classify_skill(ctx, FACT, 80), classify_skill(ctx, COMMONSENSE, 80)
    assert (fact.evidence["skill"], common.evidence["skill"]) == ("recall", "reasoning")
    assert fact.evidence["by"] == "exemplars" and fact.evidence["tokens"] == 0 and fact.evidence["difficulty"] is None
    assert fact.evidence["similarity"]["recall"] > fact.evidence["similarity"]["reasoning"]
    assert classify_skill(ctx, WORD_PROBLEM, 80).evidence["by"] == "signals"


def test_an_item_like_no_exemplar_is_unsure(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, ScriptedChatModel(respond=_never_called), options=EXEMPLARS)
    ctx.hooks.embed = _bag_of_words
    ctx.skills = ctx.skills.model_copy(update={"examples": {"recall": ["zebra quokka"]}})
    diag = classify_skill(ctx, FACT, 80)
    assert diag.evidence["skill"] == "unsure" and not diag.flag


def test_the_rating_method_still_asks_the_judge_and_keeps_its_skill_beside(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, _judge("comprehension"), options={**EXEMPLARS, "difficulty_method": "rating"})
    ctx.hooks.embed = _bag_of_words
    assert asks_judge(ctx, FACT) and asks_judge(ctx, WORD_PROBLEM)  # the rating is wanted for every item
    diag = classify_skill(ctx, FACT, 80)
    assert diag.evidence["model_skill"] == "comprehension" and diag.evidence["rating"] == 2
    assert diag.evidence["by"] == "exemplars" and diag.score == pytest.approx(0.25)


def test_packaged_exemplars_with_the_real_embedder_separate_a_fact_from_common_sense(tmp_path: Path) -> None:
    """The shipped skills.yaml through real MiniLM (no stand-in): the default labeller's actual behaviour."""
    ctx = make_context(tmp_path, ScriptedChatModel(respond=_never_called), options=EXEMPLARS)
    assert classify_skill(ctx, FACT, 80).evidence["skill"] == "recall"
    assert classify_skill(ctx, COMMONSENSE, 80).evidence["skill"] == "reasoning"


# --- skill_method="probs": the judge's first-token probabilities over numbered skills, calibrated -------

PROBS = {"skill_method": "probs"}


def _shown_skills(messages: list[dict[str, str]]) -> list[str]:
    """The skill names in the order the probe showed them (its system prompt numbers them)."""
    lines = [line.split(".", 1)[1].split(":", 1)[0].strip() for line in messages[0]["content"].splitlines()
             if line[:1].isdigit() and ". " in line]
    return lines


def _probe_judge(favourite: dict[str, str], bias: float = 0.0) -> ScriptedChatModel:
    """Answers the skill probe: most of its probability on the number showing `favourite[question]`, the
    content-free question spread evenly, plus `bias` extra mass on position 1 (a small model's habit)."""
    from tests.support.scripted_model import logprobs_block

    def respond(messages: list[dict[str, str]]) -> str:
        shown = _shown_skills(messages)
        user = messages[-1]["content"]
        want = next((skill for text, skill in favourite.items() if text in user), None)
        probs = {str(k + 1): 0.1 for k in range(len(shown))}
        if want is not None:
            probs[str(shown.index(want) + 1)] = 0.6
        probs["1"] += bias
        total = sum(probs.values())
        return logprobs_block({k: v / total for k, v in probs.items()})

    return ScriptedChatModel(respond=respond)


def test_probe_reads_the_skill_from_numbered_probabilities_in_two_orders(tmp_path: Path) -> None:
    judge = _probe_judge({"ice cream": "reasoning", "organelle": "recall"})
    ctx = make_context(tmp_path, judge, options=PROBS)
    diag = classify_skill(ctx, COMMONSENSE, 80)
    assert diag.evidence["skill"] == "reasoning" and diag.evidence["by"] == "probs" and not diag.flag
    assert classify_skill(ctx, FACT, 80).evidence["skill"] == "recall"
    # two orders per item, plus the content-free prior asked once (two orders) for the whole run
    assert judge.calls == 2 + 2 + 2
    assert abs(sum(diag.evidence["skill_probs"].values()) - 1.0) < 1e-3


def test_calibration_removes_a_bias_every_input_shares(tmp_path: Path) -> None:
    """A judge that leans on whichever skill is shown first: averaging the two orders and dividing by its
    content-free answer leaves the item's own signal, which the raw reading can lose."""
    from refinelab.agents.labels import calibrated

    prior = [0.4, 0.15, 0.15, 0.15, 0.15]
    item = [0.34, 0.12, 0.30, 0.12, 0.12]  # raw argmax: skill 0 (the bias); relative to the prior: skill 2
    out = calibrated(item, prior)
    assert max(range(5), key=item.__getitem__) == 0 and max(range(5), key=out.__getitem__) == 2
    assert abs(sum(out) - 1.0) < 1e-9
    ctx = make_context(tmp_path, _probe_judge({"ice cream": "reasoning"}, bias=0.5), options=PROBS)
    assert classify_skill(ctx, COMMONSENSE, 80).evidence["skill"] == "reasoning"


def test_a_probe_without_logprobs_is_a_flagged_unsure_label(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: json.dumps({"content": []})), options=PROBS)
    diag = classify_skill(ctx, FACT, 80)
    assert diag.flag and diag.evidence["skill"] == "unsure" and diag.evidence["error"]


def test_probe_keeps_computable_items_as_calculation(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, _probe_judge({"pens": "recall"}), options=PROBS)
    diag = classify_skill(ctx, WORD_PROBLEM, 80)
    assert diag.evidence["skill"] == "calculation" and diag.evidence["by"] == "signals"
