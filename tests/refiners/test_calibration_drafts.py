"""Calibrate as over-generate-then-select: drafts measured by the panel, the furthest move wins."""

from __future__ import annotations

import itertools
import re
import threading
from pathlib import Path

from refinelab.agents.refiner import refine
from refinelab.state import EditTask
from tests.refiners.test_refiners import BASE, draft, make_ctx
from tests.support.scripted_model import ScriptedChatModel, logprobs_block

EASIER_STILL = "Which planet is nearest the Sun?"
A_BIT_HARDER = "Which planet has the shortest year?"
MUCH_HARDER = "Which planet's orbit is the most eccentric of the eight?"
REWORDED = "Name the planet that is closest to the Sun."
#: the scripted panel's probability of the key (Mercury) for each stem
P_KEY = {BASE.question: 0.80, EASIER_STILL: 0.90, A_BIT_HARDER: 0.60, MUCH_HARDER: 0.30, REWORDED: 0.77}


def scripted(stems: list[str]) -> ScriptedChatModel:
    """Writer: the next of `stems` per call (the same item's options and key). Judge probe: the key's
    probability by stem, wherever the order put the key."""
    cycle, lock = itertools.cycle(stems), threading.Lock()

    def respond(messages) -> str:  # noqa: ANN001
        text = messages[-1]["content"]
        if text.rstrip().endswith("Answer:"):
            stem = next(s for s in P_KEY if s in text)
            letters = dict(re.findall(r"^([A-J])\. (.+)$", text, flags=re.M))
            rest = (1 - P_KEY[stem]) / (len(letters) - 1)
            return logprobs_block({x: P_KEY[stem] if t.strip() == "Mercury" else rest for x, t in letters.items()})
        with lock:
            stem = next(cycle)
        return draft(question=stem, choices=list(BASE.choices), answer=BASE.answer)

    return ScriptedChatModel(respond=respond)


def test_the_draft_the_panel_finds_hardest_is_the_candidate(tmp_path: Path) -> None:
    model = scripted([BASE.question, A_BIT_HARDER, MUCH_HARDER])  # the first changes nothing
    ctx = make_ctx(tmp_path, model)
    candidate = refine(ctx, EditTask("e", BASE.id, "calibrate", 1, target="hard"))
    assert not candidate.error, candidate.error
    assert candidate.item.question == MUCH_HARDER
    drafts = candidate.item.metadata["calibration_drafts"]
    assert drafts["asked"] == 3 and drafts["usable"] == 2 and drafts["direction"] == "harder"
    assert drafts["kind"] == "stem" and drafts["swaps"] == 0  # the writer's reply was no distractor list
    assert drafts["set_aside"] == ["the edit changed nothing; rewrite as asked"]
    assert drafts["p_before"] == 0.8 and sorted(drafts["p_drafts"]) == [0.3, 0.6]
    # every draft and every probe is the edit's cost
    assert candidate.tokens == ctx.ledger.spent > 0


def test_no_draft_moving_the_right_way_fails_the_attempt_with_the_measurement(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, scripted([EASIER_STILL]))
    candidate = refine(ctx, EditTask("e", BASE.id, "calibrate", 1, target="hard"))
    assert candidate.item is None
    assert "none of 3 usable drafts made the item harder" in candidate.error and "0.800" in candidate.error
    assert candidate.tokens == ctx.ledger.spent > 0


def test_one_draft_is_the_single_unmeasured_call(tmp_path: Path) -> None:
    model = scripted([MUCH_HARDER])
    ctx = make_ctx(tmp_path, model)
    ctx.options = ctx.options.model_copy(update={"calibrate_drafts": 1})
    candidate = refine(ctx, EditTask("e", BASE.id, "calibrate", 1, target="hard"))
    assert candidate.item.question == MUCH_HARDER and "calibration_drafts" not in candidate.item.metadata
    assert model.calls == 1


def test_the_profiles_stored_panel_answers_are_p_before_and_the_original_is_not_probed_again(tmp_path: Path) -> None:
    from refinelab.agents.difficulty import JUDGE_MEMBER
    from refinelab.schema import Diagnostic

    model = scripted([A_BIT_HARDER, MUCH_HARDER, MUCH_HARDER])
    asked: list[str] = []
    respond = model.respond
    model.respond = lambda messages: (asked.append(messages[-1]["content"]), respond(messages))[1]
    ctx = make_ctx(tmp_path, model)
    stored = Diagnostic(item_id=BASE.id, check="panel", flag=False, score=1.0,
                        evidence={"key": BASE.answer, "answers": {JUDGE_MEMBER: BASE.answer}, "answered": 1,
                                  "probs": {JUDGE_MEMBER: {"p": [0.75 if i == BASE.answer else 0.25 / 3
                                                                 for i in range(len(BASE.choices))]}}})
    ctx.store.put_diagnostics([stored])
    candidate = refine(ctx, EditTask("e", BASE.id, "calibrate", 1, target="hard"))
    drafts = candidate.item.metadata["calibration_drafts"]
    assert drafts["p_before"] == 0.75  # the stored reading, not the scripted probe's 0.80
    probes = [text for text in asked if text.rstrip().endswith("Answer:")]
    assert probes and not any(BASE.question in text for text in probes)
    assert candidate.tokens == ctx.ledger.spent > 0


def test_a_move_within_rewording_noise_is_not_a_calibration(tmp_path: Path) -> None:
    # 0.80 -> 0.77: a plain rewording moves p(correct) that far (evals/results/rewording_noise.md: sd 0.034)
    ctx = make_ctx(tmp_path, scripted([REWORDED]))
    candidate = refine(ctx, EditTask("e", BASE.id, "calibrate", 1, target="hard"))
    assert candidate.item is None
    assert "none of 3 usable drafts made the item harder" in candidate.error
    assert "a move counts from 0.05" in candidate.error
