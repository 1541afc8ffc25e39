"""Calibrate by distractors: swaps built from the judge's probe, measured first, the stem left alone."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from refinelab.agents.calibration_swaps import swap_items
from refinelab.agents.refiner import refine
from refinelab.agents.validation.answer import answer_check
from refinelab.state import EditTask
from tests.refiners.test_refiners import BASE, draft, make_ctx
from tests.support.scripted_model import ScriptedChatModel, logprobs_block

#: how tempting each option text is to the scripted judge: p(option) = weight / sum of the shown options'
WEIGHT = {"Mercury": 4.0, "Venus": 1.0, "Earth": 1.0, "Mars": 1.0,
          "Vulcan": 3.0, "Pluto": 2.0, "the Moon": 0.1, "the Sun itself": 12.0}
STEM_DRAFT = "Which planet has the shortest year?"


def scripted(candidates: list[str], writer_calls: list[str]) -> ScriptedChatModel:
    """Writer: `candidates` when asked for distractors, else a stem draft (recorded in `writer_calls`).
    Judge probe: each shown option's weight, normalised, wherever the order put it."""
    lock = threading.Lock()

    def respond(messages) -> str:  # noqa: ANN001
        text = messages[-1]["content"]
        if text.rstrip().endswith("Answer:"):
            letters = dict(re.findall(r"^([A-J])\. (.+)$", text, flags=re.M))
            total = sum(WEIGHT.get(t.strip(), 1.0) for t in letters.values())
            return logprobs_block({x: WEIGHT.get(t.strip(), 1.0) / total for x, t in letters.items()})
        with lock:
            if "wrong options (distractors)" in messages[0]["content"]:
                writer_calls.append("distractors")
                return json.dumps({"distractors": candidates})
            writer_calls.append("stem")
        return draft(question=STEM_DRAFT, choices=list(BASE.choices), answer=BASE.answer)

    return ScriptedChatModel(respond=respond)


def test_a_swap_that_moves_the_item_is_chosen_and_no_stem_is_written(tmp_path: Path) -> None:
    calls: list[str] = []
    ctx = make_ctx(tmp_path, scripted(["Vulcan", "Pluto", "the Moon"], calls))
    candidate = refine(ctx, EditTask("e", BASE.id, "calibrate", 1, target="hard"))
    assert not candidate.error, candidate.error
    item = candidate.item
    assert item.question == BASE.question and item.answer == BASE.answer and item.answer_text == "Mercury"
    # the two most tempting candidates in two slots: p(key) 4/7 -> 4/10, the furthest move of the three swaps
    assert sorted(item.choices) == sorted(["Mercury", "Vulcan", "Pluto", "Mars"])
    drafts = item.metadata["calibration_drafts"]
    assert drafts["kind"] == "swap" and drafts["swaps"] == 3 and drafts["direction"] == "harder"
    assert drafts["p_before"] == round(4 / 7, 4) and min(drafts["p_drafts"]) == 0.4
    assert calls == ["distractors"]  # a swap moved it: no stem rewrite asked for
    assert candidate.tokens == ctx.ledger.spent > 0


def test_a_candidate_the_judge_prefers_to_the_key_never_enters_a_swap(tmp_path: Path) -> None:
    calls: list[str] = []
    ctx = make_ctx(tmp_path, scripted(["the Sun itself", "Vulcan", "the Moon"], calls))
    candidate = refine(ctx, EditTask("e", BASE.id, "calibrate", 1, target="hard"))
    assert not candidate.error, candidate.error
    assert "the Sun itself" not in candidate.item.choices and "Vulcan" in candidate.item.choices


def test_when_no_swap_moves_the_item_the_stem_drafts_compete(tmp_path: Path) -> None:
    calls: list[str] = []
    ctx = make_ctx(tmp_path, scripted(["Mars-like world"], calls))  # weight 1: replaces an equal, moves nothing
    candidate = refine(ctx, EditTask("e", BASE.id, "calibrate", 1, target="hard"))
    assert calls.count("distractors") == 1 and calls.count("stem") == 3
    assert candidate.item is None  # the stem drafts keep the options: p(key) does not move either
    assert "made the item harder" in candidate.error


def test_swaps_replace_the_originals_least_suited_to_the_direction_first() -> None:
    p = [0.30, 0.40, 0.05, 0.25]  # Venus tempting, Earth not, Mars between; Mercury (the key) 0.40
    harder = swap_items(BASE, ["X", "Y", "Z"], p, "harder")
    assert [i.choices for i in harder] == [["Venus", "Mercury", "X", "Mars"], ["Venus", "Mercury", "X", "Y"],
                                           ["Z", "Mercury", "X", "Y"]]
    easier = swap_items(BASE, ["X", "Y"], p, "easier")
    assert [i.choices for i in easier] == [["X", "Mercury", "Earth", "Mars"], ["X", "Mercury", "Earth", "Y"]]


def test_the_answer_check_judges_a_swap_on_the_distractors_it_brought(tmp_path: Path) -> None:
    def solver(letter: str) -> ScriptedChatModel:
        return ScriptedChatModel(respond=lambda m: json.dumps({"reasoning": "r", "answer": letter}))

    swapped = BASE.model_copy(update={"choices": ["Venus", "Mercury", "Vulcan", "Mars"]})
    task = EditTask("e", BASE.id, "calibrate", 1, target="hard")
    kept = answer_check(make_ctx(tmp_path / "a", solver("A")), task, swapped)  # Venus: the original had it
    assert kept.passed and kept.evidence["picked_original_distractor"] == "Venus"
    new = answer_check(make_ctx(tmp_path / "b", solver("C")), task, swapped)  # Vulcan: the swap brought it
    assert not new.passed
    reworded = swapped.model_copy(update={"question": STEM_DRAFT})  # a stem draft gets no such allowance
    assert not answer_check(make_ctx(tmp_path / "c", solver("A")), task, reworded).passed


def test_the_slots_are_ordered_by_the_panels_stored_pooled_distribution() -> None:
    from refinelab.agents.calibration_swaps import pooled_option_p
    from refinelab.agents.panel import panel_diagnostic

    probes = {"a": {"p": [0.5, 0.3, 0.1, 0.1]}, "b": {"p": [0.1, 0.5, 0.3, 0.1]}}
    stored = panel_diagnostic(BASE, {"a": 0, "b": 1}, probes)
    assert pooled_option_p(stored, 4) == [0.3, 0.4, 0.2, 0.1]  # the mean the panel stored
    assert pooled_option_p(stored, 5) is None and pooled_option_p(None, 4) is None
    letters_only = panel_diagnostic(BASE, {"a": 0}, {})
    assert pooled_option_p(letters_only, 4) is None
