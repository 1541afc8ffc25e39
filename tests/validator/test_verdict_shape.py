"""One verdict shape: every validator method returns a `state.Verdict` with a typed outcome; error screening
stores it as the `validator` diagnostic (flag, score, evidence) and pools that; a hook must return a Verdict.

The pooled p_error values below were taken from the code before the typed outcome existed (a Verdict read
through `to_validator_verdict` and stored as the `validator` diagnostic): on the same evidence the pooling
must give the same numbers, and an old run folder's stored diagnostics must pool as they did."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from refinelab.agents.screening import error_diagnostic, load_check_original, validate_suspect
from refinelab.agents.validation.answer import answer_check
from refinelab.agents.validation.fix_evidence import validator_source
from refinelab.agents.validation.pot import pot_check
from refinelab.agents.validation.rag import rag_check
from refinelab.agents.validation.strength import evidence_strength
from refinelab.agents.validation.tools import verdict_from_output
from refinelab.errors import ConfigError
from refinelab.metrics.error_checks import check_row, combine_error_evidence, validator_diagnostic
from refinelab.schema import Diagnostic, QAItem
from refinelab.state import SETTLED_CONFIDENCE, EditTask, Verdict
from refinelab.tools.sandbox_base import ExecResult, SandboxError
from tests.support.validator_helpers import answer, code, mcq, scripted

ITEM = QAItem(id="q1", question="What is 6*7?", choices=["42", "41", "40", "43"], answer=0)
FLAWED = QAItem(id="q2", question="What is 6*7?", choices=["42", "4 2", "40", "all of the above"], answer=3)


def _answered(passed: bool) -> Verdict:
    return Verdict(passed, "an independent model answered", "answer", {"validator_answer": "A"}, outcome="answered")


UNANSWERED = Verdict(False, "no usable answer", "answer", outcome="unanswered")
S = SETTLED_CONFIDENCE
#: name → (verdict, p_error with a 2-of-3 dissenting panel on ITEM, p_error on FLAWED without a panel, error type);
#: the figures from before the typed outcome, but for the three undecided ones ("answer unanswered", "tool
#: undecided", "pot error, answer unanswered"), which pooled as a failed verdict then and as no verdict now
CASES: dict[str, tuple[Verdict, float, float, str]] = {
    "pot match_key": (Verdict(True, "r", "pot", outcome="match_key", confidence=S), 0.4477157360406091,
                      0.8819213973799126, "ok"),
    "pot match_other": (Verdict(False, "r", "pot", outcome="match_other", confidence=S), 0.9630057803468208,
                        0.9958477933724393, "wrong_groundtruth"),
    "pot no_match": (Verdict(False, "r", "pot", outcome="no_match", confidence=S), 0.9630057803468208,
                     0.9958477933724393, "no_correct_answer"),
    "pot unavailable": (Verdict(False, "r", "pot", outcome="unavailable"), 0.2420519316022799, 0.746341463414634,
                        "ok"),
    "pot error, answer passes": (Verdict(True, "r", "pot", outcome="error", fallback=_answered(True)),
                                 0.6631578947368422, 0.9477502346381053, "wrong_groundtruth"),
    "pot error, answer unanswered": (Verdict(False, "r", "pot", outcome="error", fallback=UNANSWERED), 0.2420519316022799, 0.746341463414634, "ok"),
    "rag supported": (Verdict(True, "r", "rag", outcome="supported", confidence=S), 0.4477157360406091,
                      0.8819213973799126, "ok"),
    "rag contradicted": (Verdict(False, "r", "rag", outcome="contradicted", confidence=S), 0.9630057803468208,
                         0.9958477933724393, "wrong_groundtruth"),
    "rag insufficient, answer fails": (Verdict(False, "r", "rag", outcome="insufficient", fallback=_answered(False)),
                                       0.9146666666666666, 0.9899755319937718, "wrong_groundtruth"),
    "rag unavailable, answer passes": (Verdict(True, "r", "rag", outcome="unavailable", fallback=_answered(True)),
                                       0.6631578947368422, 0.9477502346381053, "wrong_groundtruth"),
    "answer passes": (_answered(True), 0.6631578947368422, 0.9477502346381053, "wrong_groundtruth"),
    "answer fails": (_answered(False), 0.9146666666666666, 0.9899755319937718, "wrong_groundtruth"),
    "answer unanswered": (UNANSWERED, 0.2420519316022799, 0.746341463414634, "ok"),
    "tool pass": (Verdict(True, "r", "tool:t", outcome="pass"), 0.6631578947368422, 0.9477502346381053,
                  "wrong_groundtruth"),
    "tool undecided": (Verdict(False, "r", "tool:t", outcome="undecided"), 0.2420519316022799, 0.746341463414634, "ok"),
}
#: `validator` diagnostics' evidence as run folders written before the typed outcome hold it
STORED: dict[str, tuple[dict[str, Any], float, str]] = {
    "built-in, key wrong": ({"key_correct": False, "error_type": "wrong_groundtruth", "confidence": 0.85,
                             "method": "pot", "evidence": {"outcome": "match_other", "tokens": 9, "reason": "r"},
                             "tokens": 9}, 0.9630057803468208, "wrong_groundtruth"),
    "built-in, no option": ({"key_correct": False, "error_type": "no_correct_answer", "confidence": 0.85,
                             "method": "pot", "evidence": {}, "tokens": 9}, 0.9630057803468208, "no_correct_answer"),
    "undecided": ({"key_correct": None, "error_type": None, "confidence": 0.85, "method": "pot", "evidence": {},
                   "tokens": 0}, 0.2420519316022799, "ok"),
    "answer check, key right": ({"key_correct": True, "error_type": None, "confidence": 0.7, "method": "answer",
                                 "evidence": {}, "tokens": 4}, 0.6631578947368422, "wrong_groundtruth"),
    "a hook's own diagnosis": ({"key_correct": False, "error_type": "multiple_correct_answers", "confidence": 0.95,
                                "method": "mine", "evidence": {"x": 1}, "tokens": 7}, 0.9886725663716813,
                               "multiple_correct_answers"),
}
#: the keys of a `validator` diagnostic's evidence, as every run has written them
RECORD_KEYS = {"key_correct", "error_type", "confidence", "method", "evidence", "tokens"}


def _pool(item: QAItem, panel: list[int] | None, validator: Diagnostic | None) -> Any:
    return combine_error_evidence(item.id, check_row(item, expected_choices=4), panel_answers=panel, key=item.answer,
                                  validator=validator)


@pytest.mark.parametrize("name", list(CASES))
def test_pooling_gives_the_same_p_error_as_before(name: str) -> None:
    verdict, dissent, flawed, error_type = CASES[name]
    diagnostic = validator_diagnostic("q", verdict)
    assert set(diagnostic.evidence) == RECORD_KEYS and diagnostic.check == "validator"
    assert diagnostic.evidence["evidence"]["reason"] == verdict.reason
    pooled = _pool(ITEM, [1, 1, 0], diagnostic)
    assert pooled.p_error == pytest.approx(dissent, rel=1e-12) and pooled.error_type == error_type
    assert _pool(FLAWED, None, diagnostic).p_error == pytest.approx(flawed, rel=1e-12)


@pytest.mark.parametrize("name", list(STORED))
def test_an_old_run_folders_validator_diagnostic_pools_as_it_did(name: str) -> None:
    evidence, dissent, error_type = STORED[name]
    key_correct = evidence["key_correct"]
    stored = Diagnostic(item_id="q1", check="validator", flag=key_correct is False,
                        score=0.5 if key_correct is None else float(key_correct), evidence=evidence)
    stored = Diagnostic.model_validate_json(stored.model_dump_json())  # as the run store reads it back
    pooled = _pool(ITEM, [1, 1, 0], stored)
    assert pooled.p_error == pytest.approx(dissent, rel=1e-12) and pooled.error_type == error_type


def test_the_validator_diagnostic_flags_a_wrong_key_and_scores_an_undecided_one_half() -> None:
    wrong = validator_diagnostic("q", Verdict(False, "r", "pot", {"x": 1}, 7, outcome="no_match", confidence=S))
    assert wrong.flag and wrong.score == 0.0 and wrong.evidence["tokens"] == 7
    assert wrong.evidence["evidence"] == {"x": 1, "outcome": "no_match", "tokens": 7, "reason": "r"}
    undecided = validator_diagnostic("q", Verdict(False, "r", "pot", outcome="unavailable"))
    assert not undecided.flag and undecided.score == 0.5 and undecided.evidence["key_correct"] is None
    assert "validator:pot" not in _pool(ITEM, [1, 1, 0], undecided).contributions


# ------------------------------------------------------------------ the typed fields and their record


def test_the_typed_outcome_and_fallback_are_written_under_the_keys_runs_have_always_written() -> None:
    fallback = _answered(True)
    verdict = Verdict(True, "r", "rag", {"rag_verdict": "insufficient"}, outcome="insufficient", fallback=fallback)
    assert verdict.evidence == {"rag_verdict": "insufficient", "outcome": "insufficient", "fallback": "answer",
                                "answer_check": fallback.evidence}
    assert "outcome" not in Verdict(True, "units agree", "units", {"checked": True}).evidence  # "decided"
    copy = dataclasses.replace(verdict, passed=False, evidence={**verdict.evidence, "needs_review": True})
    assert copy.outcome == "insufficient" and copy.fallback is fallback


def test_evidence_that_disagrees_with_the_typed_fields_is_refused() -> None:
    with pytest.raises(ValueError, match="outcome 'unanswered'.*set `outcome`"):
        Verdict(False, "r", "answer", {"outcome": "unanswered"})
    with pytest.raises(ValueError, match="names a fallback"):
        Verdict(True, "r", "rag", {"fallback": "answer"}, outcome="insufficient")
    with pytest.raises(ValueError, match="confidence 1.0"):
        Verdict(True, "r", "pot", outcome="match_key", confidence=1.0)


def test_review_and_the_fix_rule_read_the_typed_fields() -> None:
    assert evidence_strength(Verdict(False, "r", "pot", outcome="unavailable")) == 0.0
    assert evidence_strength(Verdict(False, "r", "rag", outcome="insufficient", fallback=UNANSWERED)) == 0.0
    assert evidence_strength(Verdict(True, "r", "rag", outcome="insufficient", fallback=_answered(True))) == 0.5
    assert evidence_strength(Verdict(True, "r", "pot", outcome="match_key", confidence=S)) == 1.0


def test_a_tool_that_could_not_run_abstains_in_the_fix_rule(make_ctx) -> None:
    ctx = make_ctx()
    assert validator_source(ctx, Verdict(False, "r", "pot", outcome="unavailable")).stance == "abstains"
    rag = validator_source(ctx, Verdict(True, "r", "rag", outcome="unavailable", fallback=_answered(True)))
    assert rag.stance == "agrees" and rag.detail["outcome"] == "unavailable"
    assert validator_source(ctx, Verdict(False, "r", "rag", outcome="contradicted", confidence=S)).stance == "contradicts"


# ------------------------------------------------------------------ each method sets its outcome

TASK = EditTask(edit_id="check:t1", item_id="t1", operation="check", round=-1)
APPLES = mcq("Ann has 12 apples and buys 3 bags of 5 apples. How many apples does she have now?",
             ["17", "27", "32", "20"], 1)


class _Box:
    """A sandbox that prints what it is given, or cannot run at all."""

    def __init__(self, stdout: str | None) -> None:
        self.stdout = stdout

    def execute(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
        if self.stdout is None:
            raise SandboxError("the sandbox went away")
        return ExecResult(stdout=self.stdout)

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("printed", "outcome", "passed", "confidence"), [
    ("27\n", "match_key", True, S), ("17\n", "match_other", False, S), ("99\n", "no_match", False, S),
    (None, "unavailable", False, 0.7)])
def test_pot_sets_its_outcome(make_ctx, printed: str | None, outcome: str, passed: bool, confidence: float) -> None:
    verdict = pot_check(make_ctx(scripted(pot=code("print(27)")), sandbox=_Box(printed)), TASK, APPLES)
    assert (verdict.outcome, verdict.passed, verdict.confidence) == (outcome, passed, confidence)
    assert verdict.evidence["outcome"] == outcome and verdict.fallback is None


def test_pot_without_a_running_program_falls_back_to_the_answer_check(make_ctx) -> None:
    ctx = make_ctx(scripted(pot=code("print()"), answer=answer("B")), sandbox=_Box(""), pot_attempts=1)
    verdict = pot_check(ctx, TASK, APPLES)
    assert verdict.outcome == "error" and verdict.fallback is not None and verdict.fallback.outcome == "answered"
    assert verdict.passed and verdict.confidence == 0.7 and verdict.evidence["fallback"] == "answer"


def test_rag_and_the_answer_check_set_their_outcomes(make_ctx, tiny_retriever) -> None:
    capital = mcq("What is the capital city of France?", ["Rome", "Paris", "Tokyo", "Berlin"], 1, subject="geography")
    judge = json.dumps({"reasoning": "[p:paris] says so", "passage_ids": ["p:paris"], "supported_option": "B"})
    supported = rag_check(make_ctx(scripted(rag=judge), rag_corpus=tiny_retriever), TASK, capital)
    assert (supported.outcome, supported.confidence, supported.evidence["rag_verdict"]) == ("supported", S, "supported")
    unsettled = json.dumps({"reasoning": "no", "passage_ids": [], "supported_option": "none"})
    fallback = rag_check(make_ctx(scripted(rag=unsettled, answer=answer("C")), rag_corpus=tiny_retriever), TASK,
                         capital)
    assert fallback.outcome == "insufficient" and fallback.fallback is not None and not fallback.passed
    assert answer_check(make_ctx(scripted(answer=answer("B"))), TASK, capital).outcome == "answered"
    assert answer_check(make_ctx(scripted(answer="not json")), TASK, capital).outcome == "unanswered"


def test_a_tools_answer_sets_its_outcome() -> None:
    assert verdict_from_output("t", {"passed": True, "reason": "ok"}).outcome == "pass"
    assert verdict_from_output("t", {"passed": False, "reason": "no"}).outcome == "fail"
    assert verdict_from_output("t", {"passed": None, "reason": "?"}).outcome == "undecided"
    assert verdict_from_output("t", "no verdict here").outcome == "undecided"


# ------------------------------------------------------------------ the check_original hook


def test_a_hook_that_returns_a_dict_is_refused_in_a_line_naming_it(make_ctx) -> None:
    ctx = make_ctx(check_original=lambda ctx, item: {"passed": False, "reason": "computed otherwise"})
    check = load_check_original(ctx)
    assert check is not None
    with pytest.raises(ConfigError) as raised:
        validate_suspect(ctx, check, ITEM)
    message = str(raised.value)
    assert "hooks.check_original" in message and "dict" in message and "Verdict" in message and "\n" not in message


def test_a_hook_verdict_is_stored_and_pooled(make_ctx) -> None:
    def hook(ctx: object, item: QAItem) -> Verdict:
        return Verdict(False, "my checker disagrees", "mine", {"x": 1}, 5, outcome="no_match", confidence=0.9)

    ctx = make_ctx(check_original=hook)
    ctx.store.load_items([ITEM])
    check = load_check_original(ctx)
    assert check is not None
    ctx.store.put_diagnostics([validate_suspect(ctx, check, ITEM)])
    stored = ctx.store.diagnostic(ITEM.id, "validator")
    assert stored is not None and stored.flag and set(stored.evidence) == RECORD_KEYS
    assert stored.evidence["confidence"] == 0.9 and stored.evidence["error_type"] == "no_correct_answer"
    error = error_diagnostic(ctx, ITEM, 4)
    assert "validator" in error.evidence["stages"] and "validator:mine" in error.evidence["contributions"]
