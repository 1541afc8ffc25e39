"""Skill labels: constrained to the taxonomy or "unsure", never empty; computable items by their signals."""

from __future__ import annotations

import json
from pathlib import Path

from refinelab.agents.labels import classify_skill, label_schema, normalise_skill
from refinelab.agents.profiler import labelled
from refinelab.schema import QAItem
from tests.support.pa_helpers import make_context
from tests.support.scripted_model import ScriptedChatModel

WORD_PROBLEM = QAItem(id="m1", question="A shop sells pens at 3 for $2. How much do 12 pens cost in dollars?",
                      choices=["6", "8", "10", "12"], answer=1, subject="gsm8k")
FACT = QAItem(id="f1", question="Which organelle produces most of a cell's ATP?",
              choices=["Nucleus", "Mitochondrion", "Ribosome", "Golgi body"], answer=1, subject="biology")


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
    ctx = make_context(tmp_path, judge)
    diag = classify_skill(ctx, FACT, 80)
    assert diag.evidence["skill"] == "recall" and diag.evidence["by"] == "model"
    assert 'e.g. "Which organelle' in seen[0] and "- unsure:" in seen[0]


def test_computable_items_are_calculation_whatever_the_model_says(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, _judge("comprehension"))
    diag = classify_skill(ctx, WORD_PROBLEM, 80)
    assert diag.evidence["skill"] == "calculation" and diag.evidence["model_skill"] == "comprehension"
    assert classify_skill(ctx, FACT, 80).evidence["skill"] == "comprehension"


def test_a_failed_label_is_unsure_never_an_empty_cell(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "no json here"))
    ctx.store.load_items([FACT])
    diag = classify_skill(ctx, FACT, 80)
    assert diag.flag and diag.evidence["skill"] == "unsure"
    ctx.store.put_diagnostics([diag])
    assert labelled(ctx, FACT).skill == "unsure" and labelled(ctx, FACT).domain
