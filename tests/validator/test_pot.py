"""PoT verdicts on a scripted model with code that really runs in the warm bubblewrap sandbox."""

from __future__ import annotations

import pytest

from refinelab.agents.validation.pot import match_option, pot_check
from refinelab.metrics.item_signals import parse_number
from refinelab.state import EditTask
from refinelab.tools.tracing import read_trace
from tests.support.validator_helpers import answer, code, mcq, scripted

TASK = EditTask(edit_id="e1", item_id="t1", operation="fix", round=1)
APPLES = mcq("Ann has 12 apples and buys 3 bags of 5 apples. How many apples does she have now?",
             ["17", "27", "32", "20"], 1)
WRONG_KEY = APPLES.model_copy(update={"answer": 2})


def test_pass_when_program_computes_the_key(make_ctx, sandbox) -> None:
    script = scripted(pot=code("apples = 12 + 3 * 5\nprint(apples)"))
    verdict = pot_check(make_ctx(script, sandbox=sandbox), TASK, APPLES)
    assert verdict.passed and verdict.method == "pot"
    ev = verdict.evidence
    assert ev["outcome"] == "match_key" and ev["matched_option"] == "B" and ev["matched_by"] == "number"
    assert ev["code"].startswith("apples") and ev["stdout"].strip() == "27" and ev["result"] == "27"
    assert verdict.tokens > 0 and script.kinds() == ["pot"]


def test_fail_names_the_computed_option_when_key_is_wrong(make_ctx, sandbox) -> None:
    script = scripted(pot=code("print(12 + 3 * 5)"))
    verdict = pot_check(make_ctx(script, sandbox=sandbox), TASK, WRONG_KEY)
    assert not verdict.passed
    assert verdict.evidence["outcome"] == "match_other" and verdict.evidence["matched_option"] == "B"
    assert "option B" in verdict.reason and "not the key C" in verdict.reason


def test_key_never_shown_to_the_program_writer(make_ctx, sandbox) -> None:
    script = scripted(pot=code("print(27)"))
    pot_check(make_ctx(script, sandbox=sandbox), TASK, APPLES)
    prompt = "\n".join(m["content"] for m in script.seen[0][1])
    assert "B." not in prompt and "key" not in prompt.lower().split("question:")[-1]


def test_code_error_is_retried_with_the_error_fed_back(make_ctx, sandbox) -> None:
    script = scripted(pot=[code("print(undefined_name)"), code("print(12 + 15)")])
    verdict = pot_check(make_ctx(script, sandbox=sandbox), TASK, APPLES)
    assert verdict.passed and script.kinds() == ["pot", "pot"]
    retry_prompt = script.seen[1][1][-1]["content"]
    assert "NameError" in retry_prompt and "undefined_name" in retry_prompt
    first = verdict.evidence["attempts"][0]
    assert first["error"]["name"] == "NameError" and "NameError" in first["problem"]


def test_code_that_never_runs_falls_back_to_the_answer_check(make_ctx, sandbox) -> None:
    script = scripted(pot=code("raise ValueError('nope')"), answer=answer("B"))
    verdict = pot_check(make_ctx(script, sandbox=sandbox, pot_attempts=2), TASK, APPLES)
    assert script.kinds() == ["pot", "pot", "answer"]
    assert verdict.passed and verdict.method == "pot"
    ev = verdict.evidence
    assert ev["outcome"] == "error" and ev["fallback"] == "answer" and len(ev["attempts"]) == 2
    assert all("ValueError" in a["problem"] for a in ev["attempts"])
    assert ev["answer_check"]["validator_answer"] == "B"


def test_timeout_is_reported_and_retried(make_ctx, sandbox) -> None:
    script = scripted(pot=[code("while True:\n    pass"), code("print(27)")])
    verdict = pot_check(make_ctx(script, sandbox=sandbox, pot_timeout_s=1.0), TASK, APPLES)
    assert verdict.passed
    first = verdict.evidence["attempts"][0]
    assert first["timed_out"] and "did not finish within 1 s" in first["problem"]
    assert "did not finish" in script.seen[1][1][-1]["content"]


def test_result_matching_no_option_fails_after_retry(make_ctx, sandbox) -> None:
    script = scripted(pot=code("print(99)"))
    verdict = pot_check(make_ctx(script, sandbox=sandbox), TASK, APPLES)
    assert not verdict.passed and verdict.evidence["outcome"] == "no_match"
    assert script.kinds() == ["pot", "pot"] and "matches no option" in verdict.reason


def test_sandbox_run_is_a_tool_span_with_code_and_output(make_ctx, sandbox) -> None:
    ctx = make_ctx(scripted(pot=code("print(27)")), sandbox=sandbox)
    pot_check(ctx, TASK, APPLES)
    tools = [r for r in read_trace(ctx.run_dir / "trace.jsonl") if r["run_type"] == "tool"]
    assert len(tools) == 1 and tools[0]["name"] == "sandbox.execute"
    assert tools[0]["inputs"]["code"] == "print(27)" and tools[0]["outputs"]["stdout"].strip() == "27"


def test_unavailable_sandbox_fails_clearly_and_runs_nothing(make_ctx, monkeypatch) -> None:
    import refinelab.tools.sandbox_local as sandbox_local
    from refinelab.agents.validation import pot as validator_pot
    from refinelab.tools.sandbox_base import SandboxUnavailable

    class NoBwrap:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise SandboxUnavailable("bubblewrap (bwrap) not found")

    monkeypatch.setattr(sandbox_local, "LocalSandbox", NoBwrap)
    monkeypatch.setattr(validator_pot, "_SANDBOXES", {})
    script = scripted()  # any model call would raise: nothing may be asked or run
    verdict = pot_check(make_ctx(script), TASK, APPLES)
    assert not verdict.passed and verdict.evidence["outcome"] == "unavailable"
    assert "sandbox is unavailable" in verdict.reason and "bubblewrap" in verdict.reason
    assert script.seen == []


def test_default_sandbox_is_created_once_and_reused(make_ctx, monkeypatch) -> None:
    import refinelab.tools.sandbox_local as sandbox_local
    from refinelab.agents.validation import pot as validator_pot
    from refinelab.tools.sandbox_base import ExecResult

    made: list[object] = []

    class Fake:
        def __init__(self, limits: object, **kwargs: object) -> None:
            self.limits, self.kwargs = limits, kwargs
            made.append(self)

        def execute(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
            return ExecResult(stdout="27\n", exit_code=0)

        def close(self) -> None:
            pass

    monkeypatch.setattr(sandbox_local, "LocalSandbox", Fake)
    monkeypatch.setattr(validator_pot, "_SANDBOXES", {})
    for _ in range(3):
        assert pot_check(make_ctx(scripted(pot=code("print(27)"))), TASK, APPLES).passed
    assert len(made) == 1 and made[0].kwargs["mode"] == "warm"


@pytest.mark.parametrize(("printed", "choices", "expected"), [
    ("27", ["17", "27", "32"], 1),
    ("27.0", ["$17", "$27", "$32"], 1),
    ("0.25", ["10%", "25%", "50%"], 1),
    ("3.14159", ["3.14", "3.15", "2.72"], 0),
    ("x = 7", ["5", "6", "7"], 2),
    ("3/4", ["0.5", "0.75", "1"], 1),
    ("paris", ["London", "Paris", "Rome"], 1),
    ("17.6", ["17", "18", "19"], None),
    ("1,200", ["1200 m", "120 m", "12 m"], 0),
])
def test_match_option(printed: str, choices: list[str], expected: int | None) -> None:
    assert match_option(printed, choices)[0] == expected


def test_parse_number_rejects_text_with_two_numbers() -> None:
    assert parse_number("3 and 4") is None and parse_number("Paris") is None
    assert parse_number("4.2 m/s").value == 4.2 and parse_number("12.5%").percent


def test_e2b_backend_is_used_when_configured(make_ctx, monkeypatch) -> None:
    import refinelab.tools.sandbox_e2b as sandbox_e2b
    from refinelab.agents.validation import pot as validator_pot
    from refinelab.tools.sandbox_base import ExecResult

    ran: list[str] = []

    class FakeE2B:
        def __init__(self, limits: object, **kwargs: object) -> None:
            self.limits = limits

        def execute(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
            ran.append(code)
            return ExecResult(stdout="27\n")

        def close(self) -> None:
            pass

    monkeypatch.setattr(sandbox_e2b, "E2BSandbox", FakeE2B)
    monkeypatch.setattr(validator_pot, "_SANDBOXES", {})
    ctx = make_ctx(scripted(pot=code("print(27)")))
    ctx.settings = ctx.settings.model_copy(update={"sandbox_backend": "e2b"})
    verdict = pot_check(ctx, TASK, APPLES)
    assert verdict.passed and verdict.evidence["backend"] == "e2b" and ran == ["print(27)"]


# -- an edit that changed only distractors is judged on what it wrote (the answer check's rule) -------------

PHASES = mcq("What is the maximum number of phases at equilibrium in a three component mixture?",
             ["2", "3", "4", "5"], 3, subject="college_chemistry")
PHASES_REWRITE = PHASES.model_copy(update={"choices": ["7", "2", "0", "5"]})  # kept "2" and the key
REWRITE_TASK = EditTask(edit_id="e2", item_id=PHASES.id, operation="rewrite_distractors", round=1)


def _rewrite_ctx(make_ctx, sandbox, program: str):
    ctx = make_ctx(scripted(pot=code(program)), sandbox=sandbox)
    ctx.store.load_items([PHASES])
    return ctx


def test_a_rewrite_whose_program_computes_a_kept_original_distractor_passes(make_ctx, sandbox) -> None:
    """The demo's college_chemistry-3: the program computed 2 (C − 1, not the phase rule's 5), an option the
    original item already had; refusing the rewrite for it blamed the edit for the original's doubt."""
    verdict = pot_check(_rewrite_ctx(make_ctx, sandbox, "print(3 - 1)"), REWRITE_TASK, PHASES_REWRITE)
    assert verdict.passed and verdict.evidence["picked_original_distractor"] == "2"
    assert verdict.evidence["outcome"] == "match_other" and "already had" in verdict.reason


def test_a_rewrite_whose_program_computes_a_new_distractor_fails(make_ctx, sandbox) -> None:
    verdict = pot_check(_rewrite_ctx(make_ctx, sandbox, "print(7)"), REWRITE_TASK, PHASES_REWRITE)
    assert not verdict.passed and "option A ('7')" in verdict.reason


def test_a_rewrite_whose_program_matches_no_option_passes(make_ctx, sandbox) -> None:
    verdict = pot_check(_rewrite_ctx(make_ctx, sandbox, "print(11)"), REWRITE_TASK, PHASES_REWRITE)
    assert verdict.passed and verdict.evidence["no_new_distractor_matched"]


def test_a_rewrite_that_removes_the_option_the_program_computes_fails(make_ctx, sandbox) -> None:
    """The cold demo of 6 Dec (college_chemistry-6): the program computed 3, the original's "3 lines",
    which the rewrite dropped (with "5 lines", MMLU-Redux's right answer for its wrong key); read against
    the new options only, "3" matched none and the rewrite was committed."""
    verdict = pot_check(_rewrite_ctx(make_ctx, sandbox, "print(3)"), REWRITE_TASK, PHASES_REWRITE)
    assert not verdict.passed and verdict.evidence["computed_removed_option"] == "3"
    assert "which this rewrite removes" in verdict.reason


def test_a_fix_keeps_the_strict_program_check(make_ctx, sandbox) -> None:
    fix = EditTask(edit_id="e3", item_id=PHASES.id, operation="fix", round=1)
    ctx = _rewrite_ctx(make_ctx, sandbox, "print(3 - 1)")
    assert not pot_check(ctx, fix, PHASES_REWRITE).passed
    ctx = _rewrite_ctx(make_ctx, sandbox, "print(11)")
    assert not pot_check(ctx, fix, PHASES_REWRITE).passed
