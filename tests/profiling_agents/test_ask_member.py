"""One way to ask a panel member (`panel.ask_member`): the profile's panel (`answer_panel`) and a measured
edit's panel (validation/measured.py) ask a `cloze:` or `rag:` member alike, a member that gives no answer
says why, and what a failed call cost is still counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refinelab.agents.panel import MemberProbe, answer_panel, ask_member, member_client
from refinelab.agents.validation.measured import _panel_on, measure_p_correct
from refinelab.schema import QAItem
from refinelab.state import EditTask
from tests.support.pa_helpers import make_context
from tests.support.scripted_model import ScriptedChatModel, logprobs_block

ITEM = QAItem(id="q00", question="Which city is the capital of the country in this question?",
              choices=["Alpha", "Bravo", "Charlie", "Delta"], answer=1, subject="geography")
HARDER = ITEM.model_copy(update={"question": "Which city, by a harder reading, is the capital in this question?"})
TASK = EditTask("e1", ITEM.id, "calibrate", 1, target="hard")
PASSAGES = "PASSAGE-TEXT: Bravo is the capital."


def _cloze_member(asked: list[str]) -> ScriptedChatModel:
    """A cloze member that prefers Charlie after the stem; any letter request is recorded (it must not come)."""
    def forced(messages: list[dict[str, str]], text: str) -> list[tuple[str, float]]:
        after_stem = "capital" in messages[-1]["content"]
        return [(text, -1.0 if after_stem and text == "Charlie" else -3.0)]

    def respond(messages: list[dict[str, str]]) -> str:
        asked.append(messages[-1]["content"])
        return json.dumps({"answer": "A"})

    return ScriptedChatModel(respond=respond, respond_forced=forced)


def test_a_cloze_member_in_the_letter_method_is_measured_in_validation_as_in_profiling(tmp_path: Path) -> None:
    """`panel_method="letter"` with a `cloze:` member: the profile read its option distribution, and a
    measured calibration reads the candidate's the same way (it asked the member for a JSON letter
    before, so p(correct) before and after came from two methods)."""
    letters: list[str] = []
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"),
                       panel={"cloze:m": _cloze_member(letters)},
                       options={"panel": ["cloze:m"], "panel_method": "letter"})
    ctx.store.load_items([ITEM])
    profiled = answer_panel(ctx, ITEM, ["cloze:m"])
    assert profiled is not None
    ctx.store.put_diagnostics([profiled])
    measured, tokens = _panel_on(ctx, TASK, ITEM, ["cloze:m"])
    assert measured.evidence["answers"] == profiled.evidence["answers"] == {"cloze:m": 2}
    assert measured.evidence["probs"]["cloze:m"]["p"] == profiled.evidence["probs"]["cloze:m"]["p"]
    assert letters == [] and "failures" not in measured.evidence

    result = measure_p_correct(ctx, TASK, ITEM, HARDER)
    p_before, p_after = result.evidence["p_before"], result.evidence["p_after"]
    assert p_before == pytest.approx(profiled.evidence["probs"]["cloze:m"]["p"][1])
    assert p_after is not None and 0.0 < p_after < 1.0  # a distribution's p(key), not a 0/1 vote
    assert letters == [] and result.tokens > 0


def _rag_member(seen: list[str], method: str) -> ScriptedChatModel:
    def respond(messages: list[dict[str, str]]) -> str:
        seen.append(messages[-1]["content"])
        if method == "logprobs":
            return logprobs_block({"A": 0.1, "B": 0.7, "C": 0.1, "D": 0.1})
        return json.dumps({"answer": "B"})
    return ScriptedChatModel(respond=respond)


@pytest.mark.parametrize("method", ["letter", "logprobs"])
def test_a_rag_member_reads_its_passages_in_profiling_and_in_validation(tmp_path: Path, method: str) -> None:
    """A `rag:` member is asked with its passages by both panels, whichever method: in the letter method it
    used to be a plain member under another name."""
    seen: list[str] = []
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"),
                       panel={"rag:m": _rag_member(seen, method)},
                       options={"panel": ["rag:m"], "panel_method": method})
    ctx.hooks.passages = lambda item: PASSAGES
    ctx.store.load_items([ITEM])
    profiled = answer_panel(ctx, ITEM, ["rag:m"])
    assert profiled is not None and profiled.evidence["answers"] == {"rag:m": 1}
    asked_in_profile = len(seen)
    measured, _ = _panel_on(ctx, TASK, HARDER, ["rag:m"])
    assert measured.evidence["answers"] == {"rag:m": 1}
    assert asked_in_profile >= 1 and len(seen) > asked_in_profile
    assert all(PASSAGES in text for text in seen), seen


def test_the_reasoning_prompt_is_used_by_both_panels(tmp_path: Path) -> None:
    """`panel_reasoning`: the measured panel asks with a reason first too (it always used the bare letter)."""
    seen: list[str] = []

    def respond(messages: list[dict[str, str]]) -> str:
        seen.append(messages[-1]["content"])
        return json.dumps({"reasoning": "r", "answer": "B"})

    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"),
                       panel={"m": ScriptedChatModel(respond=respond)},
                       options={"panel": ["m"], "panel_method": "letter", "panel_reasoning": True})
    ctx.store.load_items([ITEM])
    assert answer_panel(ctx, ITEM, ["m"]).evidence["answers"] == {"m": 1}
    assert _panel_on(ctx, TASK, HARDER, ["m"])[0].evidence["answers"] == {"m": 1}
    assert len(seen) == 2 and all("Think briefly" in text for text in seen)


def test_each_way_of_giving_no_answer_says_why_and_what_it_cost(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    members = {
        "garbled": ScriptedChatModel(respond=lambda m: "not json at all"),
        "offside": ScriptedChatModel(respond=lambda m: json.dumps({"answer": "E"})),  # 4 options: no E
        "fine": ScriptedChatModel(respond=lambda m: json.dumps({"answer": "B"})),
    }
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"), panel=members,
                       options={"panel": list(members), "panel_method": "letter"})
    ctx.store.load_items([ITEM])

    garbled = ask_member(ctx, "garbled", ITEM)
    assert (garbled.choice, garbled.failure) == (None, "call_failed") and garbled.tokens > 0
    assert garbled.tokens == member_client(ctx, "garbled").ledger.spent  # a failed call's tokens are counted
    offside = ask_member(ctx, "offside", ITEM)
    assert (offside.choice, offside.failure) == (None, "letter_not_offered") and offside.tokens > 0
    assert "E" in offside.detail
    fine = ask_member(ctx, "fine", ITEM)
    assert (fine.choice, fine.failure, fine.failure_evidence()) == (1, None, {})

    monkeypatch.setattr("refinelab.agents.panel.probe_member",
                        lambda *a, **k: MemberProbe(probs=[0.0] * 4, tokens=7))
    ctx.options = ctx.options.model_copy(update={"panel_method": "logprobs"})
    blank = ask_member(ctx, "fine", ITEM)
    assert (blank.choice, blank.failure, blank.tokens) == (None, "no_choice", 7) and blank.probe is not None
    ctx.options = ctx.options.model_copy(update={"panel_method": "letter"})

    stored = answer_panel(ctx, ITEM, list(members))
    assert stored.evidence["answers"] == {"garbled": None, "offside": None, "fine": 1}
    failures = stored.evidence["failures"]
    assert {name: f["reason"] for name, f in failures.items()} == {"garbled": "call_failed",
                                                                  "offside": "letter_not_offered"}
    assert all(f["tokens"] > 0 for f in failures.values())


def test_a_measurement_counts_the_tokens_of_a_failed_probe_order(tmp_path: Path) -> None:
    """A probe whose second option order gets no logprobs fails as a whole, and the first order's tokens
    are in what it reports (they used to be dropped with the exception), so a measured edit's tokens are
    what the ledger charged."""
    def respond(messages: list[dict[str, str]]) -> str:  # the original order answers, the reversed one does not
        original_order = "\nA. Alpha" in messages[-1]["content"]
        return logprobs_block({"A": 0.1, "B": 0.7, "C": 0.1, "D": 0.1}) if original_order else "no logprobs"

    member = ScriptedChatModel(respond=respond)
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"), panel={"m": member},
                       options={"panel": ["m"], "panel_method": "logprobs", "panel_orders": 2})
    ctx.store.load_items([ITEM])
    before = ctx.ledger.spent
    answer = ask_member(ctx, "m", ITEM)
    assert answer.failure == "call_failed" and member.calls == 2
    assert answer.tokens == ctx.ledger.spent - before > 0
    diagnostic, tokens = _panel_on(ctx, TASK, HARDER, ["m"])
    assert tokens == ctx.ledger.spent - before - answer.tokens > 0
    assert diagnostic.evidence["failures"]["m"]["reason"] == "call_failed"


def test_asking_for_the_default_panel_leaves_the_hooks_alone(tmp_path: Path) -> None:
    """`default_panel` is a getter: a judge plugged in answers as the `judge` member through
    `member_client`, without the panel being written into the hooks the caller shares."""
    from refinelab.agents.difficulty import default_panel

    judge = ScriptedChatModel(respond=lambda m: json.dumps({"answer": "B"}))
    ctx = make_context(tmp_path, judge, options={"difficulty_method": "irt"})
    hooks_before = dict(ctx.hooks.chat_models)
    assert default_panel(ctx) == ["judge"]
    assert ctx.hooks.chat_models == hooks_before
    assert ask_member(ctx, "judge", ITEM).choice == 1 and judge.calls == 1
