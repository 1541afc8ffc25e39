"""Several items per label call (`label_batch`): one numbered, schema-bound reply per batch, tokens shared
out exactly, and a reply that cannot be matched to its items labels nothing (each is then asked alone)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from refinelab.agents.label_batches import batch_label_schema, batches, label_in_batches
from refinelab.agents.profiler import profile_items
from refinelab.schema import QAItem
from tests.support.pa_helpers import make_context
from tests.support.scripted_model import ScriptedChatModel

FACTS = [QAItem(id=f"f{i}", question=f"Which organelle is named in fact number {i}?",
                choices=["Nucleus", "Mitochondrion", "Ribosome", "Golgi body"], answer=1, subject="biology")
         for i in range(5)]
WORD_PROBLEM = QAItem(id="m1", question="A shop sells pens at 3 for $2. How much do 12 pens cost in dollars?",
                      choices=["6", "8", "10", "12"], answer=1, subject="gsm8k")


class Judge:
    """Answers a batch label prompt with one numbered label per question (skills cycling through
    `skills`, numbering bent by `renumber`), a single label prompt with "recall"."""

    def __init__(self, skills: tuple[str, ...] = ("recall", "reasoning"), renumber: bool = False) -> None:
        self.skills, self.renumber, self.batch_sizes, self.single = skills, renumber, [], 0

    def __call__(self, messages: list[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        if "Classify each of the" in text:
            n = len(re.findall(r"^Question \d+ \(subject", text, flags=re.M))
            self.batch_sizes.append(n)
            order = list(range(n, 0, -1)) if self.renumber else list(range(1, n + 1))
            return json.dumps({"labels": [{"item": k, "skill": self.skills[i % len(self.skills)], "difficulty": 2}
                                          for i, k in enumerate(order)]})
        if "Classify the question" in text:
            self.single += 1
            return json.dumps({"skill": "recall", "difficulty": 3})
        return json.dumps({"answer": "B"})


def _context(tmp_path: Path, judge: Judge, size: int = 3):  # type: ignore[no-untyped-def]
    return make_context(tmp_path, ScriptedChatModel(respond=judge), options={"skill_method": "model",
                                                                            "label_batch": size})


def test_the_batch_schema_holds_exactly_one_numbered_label_per_item() -> None:
    schema = batch_label_schema(("recall", "reasoning"), 2)
    ok = schema.model_validate({"labels": [{"item": 1, "skill": "recall", "difficulty": 2},
                                           {"item": 2, "skill": "unsure", "difficulty": 5}]})
    assert [e.skill for e in ok.labels] == ["recall", "unsure"]
    for bad in ([{"item": 1, "skill": "recall", "difficulty": 2}],
                [{"item": 1, "skill": "vibes", "difficulty": 2}, {"item": 2, "skill": "recall", "difficulty": 2}],
                [{"item": 1, "skill": "recall", "difficulty": 2}, {"item": 3, "skill": "recall", "difficulty": 2}]):
        with pytest.raises(ValidationError):
            schema.model_validate({"labels": bad})


def test_batches_keep_the_order_and_never_hold_one_item(tmp_path: Path) -> None:
    ctx = _context(tmp_path, Judge())
    assert [[i.id for i in run] for run in batches(ctx, FACTS, 2)] == [["f0", "f1"], ["f2", "f3"]]
    assert batches(ctx, FACTS[:1], 4) == []


def test_one_call_labels_a_batch_and_its_tokens_add_up_to_the_ledger(tmp_path: Path) -> None:
    judge = Judge()
    ctx = _context(tmp_path, judge, size=3)
    assert label_in_batches(ctx, [*FACTS[:3], WORD_PROBLEM]) == 3  # the computable item is nobody's to ask
    assert judge.batch_sizes == [3] and judge.single == 0
    labels = [ctx.store.diagnostic(i.id, "label") for i in FACTS[:3]]
    assert [d.evidence["skill"] for d in labels] == ["recall", "reasoning", "recall"]  # each its own answer
    assert all(d.evidence["by"] == "model" and d.evidence["batch"] == 3 for d in labels)
    assert sum(d.evidence["tokens"] for d in labels) == ctx.ledger.spent > 0
    assert ctx.store.diagnostic(WORD_PROBLEM.id, "label") is None


def test_a_reply_out_of_order_labels_nothing_and_each_item_is_asked_alone(tmp_path: Path) -> None:
    judge = Judge(renumber=True)
    ctx = _context(tmp_path, judge, size=3)
    ctx.store.load_items(FACTS[:3])
    assert label_in_batches(ctx, FACTS[:3]) == 0
    profile_items(ctx, FACTS[:3])
    # profile_items asks the batch again (its reply replayed from the response cache), then each item alone
    assert judge.batch_sizes == [3] and judge.single == 3
    assert all(ctx.store.diagnostic(i.id, "label").evidence["skill"] == "recall" for i in FACTS[:3])


def test_a_profile_with_batches_labels_every_item_once(tmp_path: Path) -> None:
    judge = Judge()
    ctx = _context(tmp_path, judge, size=2)
    ctx.store.load_items(FACTS)
    done, stop = profile_items(ctx, FACTS)
    assert done == 5 and not stop
    assert judge.batch_sizes == [2, 2] and judge.single == 1  # the fifth item is a batch of one: asked alone
    assert all(ctx.store.diagnostic(i.id, "label").evidence["skill"] in ("recall", "reasoning") for i in FACTS)


def test_batching_is_off_by_default_and_for_the_exemplar_labeller(tmp_path: Path) -> None:
    judge = Judge()
    ctx = make_context(tmp_path, ScriptedChatModel(respond=judge), options={"skill_method": "model"})
    assert label_in_batches(ctx, FACTS) == 0
    ctx = make_context(tmp_path / "r", ScriptedChatModel(respond=judge),
                       options={"skill_method": "exemplars", "label_batch": 4, "difficulty_method": "rating"})
    assert label_in_batches(ctx, FACTS) == 0 and judge.batch_sizes == []


def test_a_batch_carries_each_item_s_rating_for_the_rating_method(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, ScriptedChatModel(respond=Judge()),
                       options={"skill_method": "model", "label_batch": 2, "difficulty_method": "rating"})
    assert label_in_batches(ctx, FACTS[:2]) == 2
    assert [ctx.store.diagnostic(i.id, "label").evidence["rating"] for i in FACTS[:2]] == [2, 2]
    # with the rating wanted a computable item is batched too, for its rating; its skill stays the signals'
    assert label_in_batches(ctx, [FACTS[2], WORD_PROBLEM]) == 2
    word = ctx.store.diagnostic(WORD_PROBLEM.id, "label").evidence
    assert (word["skill"], word["by"], word["model_skill"]) == ("calculation", "signals", "reasoning")


def test_the_stop_reason_names_the_work_the_budget_ran_out_in(tmp_path: Path) -> None:
    """A run whose last tokens went to labelling what a round wrote said "budget exhausted during profiling"
    (the demo, after its edits); the caller now names the work."""
    ctx = make_context(tmp_path, ScriptedChatModel(respond=Judge()), budget=1, options={"skill_method": "model"})
    ctx.store.load_items(FACTS[:2])
    assert profile_items(ctx, FACTS[:2])[1] == "budget exhausted during profiling"
    done, stop = profile_items(ctx, FACTS[:2], what="the measuring of round 1's edited and new items")
    assert done == 0 and stop == "budget exhausted during the measuring of round 1's edited and new items"
