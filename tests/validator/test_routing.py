"""Routing: pack → method, regex signals first, the LLM only for ambiguous pot_or_rag items;
`validate` uses the built-in methods when no validators are injected; profiling's entry point."""

from __future__ import annotations

import json

import pytest

from refinelab.agents.validation.routing import (
    choose_method,
    classify_item,
    default_validators,
)
from refinelab.agents.validation.verdicts import check_original, validate
from refinelab.metrics.error_checks import validator_diagnostic
from refinelab.metrics.item_signals import regex_route, route_signals
from refinelab.state import Candidate, EditTask
from tests.support.validator_helpers import answer, code, mcq, scripted

TASK = EditTask(edit_id="e1", item_id="t1", operation="fix", round=1)
PHYSICS = mcq("A car accelerates from rest at 2 m/s^2 for 5 s. What is its final speed?",
              ["5 m/s", "10 m/s", "20 m/s", "2.5 m/s"], 1, subject="high_school_physics")
BIOLOGY = mcq("Which organelle is the site of cellular respiration?",
              ["Nucleus", "Mitochondrion", "Ribosome", "Golgi apparatus"], 1, subject="high_school_biology")
YEARS = mcq("In which year did the first crewed Moon landing take place?", ["1965", "1969", "1972", "1959"], 1,
            subject="astronomy")


def classify(kind: str) -> str:
    return json.dumps({"reason": "scripted", "kind": kind})


def test_packs_pick_methods(make_ctx) -> None:
    ctx = make_ctx()
    assert set(default_validators()) == {"pot", "rag", "pot_or_rag"}
    assert choose_method(ctx, mcq("2+2?", ["3", "4"], 1, subject="elementary_mathematics")) == "pot"
    assert choose_method(ctx, mcq("Who?", ["x", "y"], 1, subject="world_religions")) == "rag"
    science = mcq("Why?", ["x", "y"], 1, subject="college_physics").model_copy(update={"domain": "STEM"})
    assert choose_method(ctx, science) == "pot_or_rag"
    assert choose_method(make_ctx(validators=[]), science) == "answer"  # explicit opt-out keeps the lead's path


@pytest.mark.parametrize(("item", "expected"), [(PHYSICS, "pot"), (BIOLOGY, "rag"), (YEARS, None)])
def test_regex_route(item, expected) -> None:
    assert regex_route(route_signals(item)) == expected


def test_clear_items_route_without_a_model_call(make_ctx) -> None:
    script = scripted()
    ctx = make_ctx(script)
    assert classify_item(ctx, TASK, PHYSICS)[0] == "pot"
    method, route = classify_item(ctx, TASK, BIOLOGY)
    assert method == "rag" and route["by"] == "regex" and script.seen == []


def test_ambiguous_item_asks_the_llm(make_ctx) -> None:
    script = scripted(classify=classify("lookup"))
    method, route = classify_item(make_ctx(script), TASK, YEARS)
    assert method == "rag" and route["by"] == "llm" and route["kind"] == "lookup" and route["tokens"] > 0
    script = scripted(classify=classify("compute"))
    assert classify_item(make_ctx(script), TASK, YEARS)[0] == "pot"


def test_validate_routes_a_science_item_to_pot_and_records_the_route(make_ctx, sandbox) -> None:
    item = PHYSICS.model_copy(update={"domain": "STEM"})
    script = scripted(pot=code("print(2 * 5)"))
    verdict = validate(make_ctx(script, sandbox=sandbox), TASK, Candidate(item, "", 0))
    assert verdict.passed and verdict.method == "pot"
    assert verdict.evidence["route"]["by"] == "regex" and script.kinds() == ["pot"]


def test_validate_routes_a_factual_item_to_rag(make_ctx, tiny_retriever) -> None:
    item = mcq("Which city is the capital of Japan and seat of its government?", ["Kyoto", "Osaka", "Tokyo", "Nara"],
               2, subject="high_school_geography").model_copy(update={"domain": "STEM"})
    rag = json.dumps({"reasoning": "[p:tokyo]", "passage_ids": ["p:tokyo"],
                      "supported_option": "C"})
    script = scripted(rag=rag)
    verdict = validate(make_ctx(script, rag_corpus=tiny_retriever), TASK, Candidate(item, "", 0))
    assert verdict.passed and verdict.method == "rag" and verdict.evidence["cited_ids"] == ["p:tokyo"]


def test_check_original_for_profiling(make_ctx, sandbox) -> None:
    item = mcq("What is 6 times 7?", ["42", "36", "48", "49"], 2, subject="elementary_mathematics")
    verdict = check_original(make_ctx(scripted(pot=code("print(6 * 7)")), sandbox=sandbox), item)
    assert not verdict.passed and verdict.evidence["matched_option"] == "A" and verdict.outcome == "match_other"
    pooled = validator_diagnostic(item.id, verdict).evidence
    assert pooled["key_correct"] is False and pooled["error_type"] == "wrong_groundtruth" and pooled["method"] == "pot"
    assert pooled["confidence"] == 0.85  # the program computed the answer itself


def test_check_original_answer_pack(make_ctx) -> None:
    item = mcq("Pick B", ["a", "b"], 1, subject="misc")
    ctx = make_ctx(scripted(answer=answer("B")), validators=[])
    verdict = check_original(ctx, item)
    assert verdict.passed and verdict.method == "answer" and verdict.outcome == "answered"
    pooled = validator_diagnostic(item.id, verdict)
    assert pooled.evidence["key_correct"] is True and pooled.evidence["confidence"] == 0.7 and pooled.score == 1.0


def test_a_plugged_in_validator_is_used_when_the_pack_names_it(make_ctx) -> None:
    from refinelab.state import Verdict

    calls: list[str] = []

    def unit_checker(ctx, task, item):  # noqa: ANN001, ANN202
        calls.append(item.id)
        return Verdict(True, "units agree", "units", {"checked": True})

    ctx = make_ctx(validators=[])
    ctx.hooks.validators["units"] = unit_checker
    item = mcq("2+2?", ["3", "4"], 1, subject="elementary_mathematics")
    ctx.pack(item).options["validator"] = "units"
    try:
        verdict = validate(ctx, TASK, Candidate(item, "", 0))
    finally:
        ctx.pack(item).options["validator"] = "pot"
    assert verdict.passed and verdict.method == "units" and calls == [item.id]


def test_a_plugged_in_validator_that_returns_another_shape_is_refused_by_name(make_ctx) -> None:
    """A `hooks.validators` method returning a dict is a caller's bug: one line naming the method and the
    item, not a verdict read by guessing at its keys."""
    from refinelab.errors import ConfigError

    ctx = make_ctx(validators=[])
    ctx.hooks.validators["units"] = lambda ctx, task, item: {"passed": True}
    item = mcq("2+2?", ["3", "4"], 1, subject="elementary_mathematics")
    ctx.pack(item).options["validator"] = "units"
    try:
        with pytest.raises(ConfigError, match=r"validator 'units' returned a dict for item .*refinelab.state.Verdict"):
            validate(ctx, TASK, Candidate(item, "", 0))
    finally:
        ctx.pack(item).options["validator"] = "pot"


def test_the_run_option_names_exactly_the_built_in_methods() -> None:
    """`RunOptions.validators` is checked against `ValidatorName`; a method added to `default_validators`
    without it (or the reverse) would be refused, or allowed but never found."""
    from typing import get_args

    from refinelab.agents.options import ValidatorName
    from refinelab.agents.validation.routing import default_validators
    from refinelab.agents.validation.tools import BUILT_IN

    assert sorted(get_args(ValidatorName)) == sorted(default_validators())
    assert sorted(BUILT_IN) == sorted(["answer", *default_validators()])
