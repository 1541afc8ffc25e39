"""Program-of-Thoughts validation: the validator model writes Python that computes the answer, the code
runs in the sandbox, and the printed result is matched against the options; the item passes iff the
matched option is the key.

The model never sees the key, so the program is an independent computation. Model-written code only
ever runs in a `CodeSandbox` (local bubblewrap, warm, or E2B per `settings.sandbox_backend`); when no
sandbox can be had the verdict fails and says so — nothing runs unsandboxed. Program output is untrusted
text: it is parsed with regular expressions, never evaluated on the host.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
from typing import Any

from pydantic import BaseModel, Field

from refinelab.agents.context import AgentContext
from refinelab.agents.validation.answer import (
    answer_check,
    kept_original_distractor,
    original_of_distractor_edit,
    removed_option,
)
from refinelab.errors import LLMCallFailed
from refinelab.metrics.item_signals import Number, parse_number
from refinelab.schema import LETTERS, QAItem, normalise_text
from refinelab.state import SETTLED_CONFIDENCE, EditTask, Outcome, Verdict
from refinelab.tools.ledger import CallTag
from refinelab.tools.sandbox_base import CodeSandbox, ExecResult, SandboxError, SandboxLimits

POT_MAX_TOKENS = 350
EVIDENCE_CHARS = 2000  # stdout/stderr kept per attempt
REL_TOL = 1e-4
ABS_TOL = 1e-6
SANDBOX_PRELOAD = ("math", "fractions", "decimal", "statistics", "itertools", "json", "sympy", "numpy")


class PotProgram(BaseModel):
    """The validator model's program; `maxLength` keeps a small model from looping."""

    code: str = Field(min_length=1, max_length=2500)


# ------------------------------------------------------------------------------------------- sandbox

_SANDBOXES: dict[str, CodeSandbox] = {}
_SANDBOX_LOCK = threading.Lock()


def get_sandbox(ctx: AgentContext) -> CodeSandbox:
    """The process-wide sandbox for the configured backend, created on first use and reused.

    `ctx.hooks.sandbox` injects one (tests, custom backends). Raises `SandboxError` (incl.
    `SandboxUnavailable`) when the backend cannot run; failures are not cached, so a fixed install
    is picked up without a restart."""
    if ctx.hooks.sandbox is not None:
        return ctx.hooks.sandbox
    backend = ctx.settings.sandbox_backend
    with _SANDBOX_LOCK:
        if backend not in _SANDBOXES:
            limits = SandboxLimits(timeout_s=ctx.options.pot_timeout_s)
            sandbox: CodeSandbox
            if backend == "local":
                from refinelab.tools.sandbox_local import LocalSandbox

                sandbox = LocalSandbox(limits, mode="warm", workers=min(2, os.cpu_count() or 1),
                                       preload=SANDBOX_PRELOAD)
            elif backend == "e2b":
                from refinelab.tools.sandbox_e2b import E2BSandbox

                sandbox = E2BSandbox(limits)
            else:
                raise SandboxError(f"unknown sandbox backend {backend!r}")
            _SANDBOXES[backend] = sandbox
            atexit.register(sandbox.close)
        return _SANDBOXES[backend]


# ------------------------------------------------------------------------------------------ matching

def _close(a: float, b: float) -> bool:
    return abs(a - b) <= max(ABS_TOL, REL_TOL * max(abs(a), abs(b)))


def numbers_match(result: Number, option: Number) -> bool:
    """Equal within tolerance, or equal once the result is rounded as a decimal option is written; a
    percent on either side also compares against the fraction (25% vs 0.25)."""
    candidates = [result.value]
    if option.percent and not result.percent:
        candidates.append(result.value * 100)
    if result.percent and not option.percent:
        candidates.append(result.value / 100)
    for value in candidates:
        if _close(value, option.value):
            return True
        # rounded as written: 3.14159 matches "3.14"; integer options need the tolerance (18.4 is not 18)
        if 1 <= option.decimals <= 6 and abs(value - option.value) <= 0.5 * 10 ** -option.decimals + 1e-12:
            return True
    return False


def _norm(text: str) -> str:
    text = normalise_text(text).replace("**", "^").strip("'\"`")
    return re.sub(r"\s+", "", text)


def answer_line(res: ExecResult) -> str:
    """What the program answered: its last printed line, else the value of its last expression."""
    lines = [line.strip() for line in res.stdout.splitlines() if line.strip()]
    if lines:
        return lines[-1]
    if res.result_text is not None and res.result_text not in ("None", ""):
        return res.result_text.strip().strip("'\"")
    return ""


def match_option(answer: str, choices: list[str]) -> tuple[int | None, str]:
    """(index of the option the answer names, how it matched) — number first, then normalised text,
    then a bare option letter; (None, "") when no option matches."""
    if not answer:
        return None, ""
    number = parse_number(answer)
    if number is None and re.search(r"[:=]", answer):  # "x = 7", "Answer: 7"
        number = parse_number(re.split(r"[:=]", answer)[-1])
    if number is not None:
        hits = []
        for index, choice in enumerate(choices):
            option = parse_number(choice)
            if option is not None and numbers_match(number, option):
                hits.append((abs(number.value - option.value), index))
        if hits:
            return min(hits)[1], "number"
    wanted = _norm(answer)
    for index, choice in enumerate(choices):
        if _norm(choice) == wanted:
            return index, "text"
    contained = [i for i, c in enumerate(choices) if len(_norm(c)) >= 3 and _norm(c) in wanted]
    if len(contained) == 1:
        return contained[0], "text"
    letter = answer.strip().strip("().").upper()
    if len(letter) == 1 and letter in LETTERS[: len(choices)]:
        return LETTERS.index(letter), "letter"
    return None, ""


# ---------------------------------------------------------------------------------------- the check


def _strip_code_fences(code: str) -> str:
    match = re.search(r"```(?:python|py)?\s*\n(.*?)```", code, re.DOTALL)
    return match.group(1) if match else code


def _problem(res: ExecResult, timeout_s: float) -> str:
    """Why a run is unusable, phrased as feedback for the next program ('' when usable)."""
    if res.timed_out:
        return f"it did not finish within {timeout_s:g} s; compute directly, without loops that may not end"
    if res.output_truncated:
        return "it printed too much; print only the final answer"
    if res.error is not None:
        return f"it raised {res.error.name}: {res.error.value}"[:400]
    if res.exit_code not in (0, None):
        return f"it exited with status {res.exit_code}"
    if not answer_line(res):
        return "it printed nothing; print the final answer on the last line"
    return ""


def _attempt_record(code: str, res: ExecResult | None, answer: str = "", problem: str = "") -> dict[str, Any]:
    record: dict[str, Any] = {"code": code, "answer": answer, "problem": problem}
    if res is not None:
        record.update(stdout=res.stdout[-EVIDENCE_CHARS:], stderr=res.stderr[-EVIDENCE_CHARS:],
                      result=res.result_text, error=res.error.__dict__ if res.error else None,
                      timed_out=res.timed_out, exit_code=res.exit_code, duration_s=round(res.duration_s, 4))
    return record


def run_code(ctx: AgentContext, sandbox: CodeSandbox, code: str, item_id: str, timeout_s: float) -> ExecResult:
    """One sandboxed run, traced as a `tool` run with the code in and the result out."""
    with ctx.tracer.span("sandbox.execute", "tool",
                         {"code": code, "backend": ctx.settings.sandbox_backend, "item_id": item_id}) as run:
        res = sandbox.execute(code, timeout_s=timeout_s)
        run.outputs = {"stdout": res.stdout[-EVIDENCE_CHARS:], "stderr": res.stderr[-EVIDENCE_CHARS:],
                       "result": res.result_text, "error": res.error.__dict__ if res.error else None,
                       "timed_out": res.timed_out, "exit_code": res.exit_code}
    return res


def pot_check(ctx: AgentContext, task: EditTask, item: QAItem) -> Verdict:
    """PoT verdict for one item. Code errors get `pot_attempts` tries; if none runs, the independent
    answer check decides (recorded as the fallback). A result that matches no option, or another option
    than the key, fails — unless the edit changed only distractors and the result is no new one of them
    (the answer check's rule, `kept_original_distractor`: the doubt is about the original item) and no
    original option the edit removed (`removed_option`)."""
    attempts, timeout_s = ctx.options.pot_attempts, ctx.options.pot_timeout_s
    evidence: dict[str, Any] = {"key": item.answer_letter, "backend": ctx.settings.sandbox_backend, "attempts": []}
    try:
        sandbox = get_sandbox(ctx)
    except SandboxError as exc:
        return Verdict(False, f"PoT could not run: the code sandbox is unavailable ({exc}); nothing was run "
                              "unsandboxed. Install bubblewrap or set sandbox_backend: e2b.", "pot", evidence,
                       outcome="unavailable")
    pack = ctx.pack(item)
    tag = CallTag(node=task.ledger_node("validate"), operation=task.operation, item_id=task.item_id)
    tokens = 0
    feedback = ""
    last_answer = ""
    for _ in range(max(1, attempts)):
        messages = pack.messages("validate_pot", item=item, feedback=feedback)
        try:
            result = ctx.client("validator").structured(messages, PotProgram, tag, max_tokens=POT_MAX_TOKENS)
        except LLMCallFailed as exc:
            evidence["attempts"].append({"code": "", "problem": f"no usable program: {exc}",
                                         "raw": exc.raw_outputs[-1:] if exc.raw_outputs else []})
            break
        tokens += result.tokens
        code = _strip_code_fences(result.parsed.code)
        try:
            res = run_code(ctx, sandbox, code, item.id, timeout_s)
        except SandboxError as exc:
            evidence["attempts"].append(_attempt_record(code, None, problem=f"sandbox failed: {exc}"))
            return Verdict(False, f"PoT could not run: the sandbox failed ({exc}); nothing was run unsandboxed.",
                           "pot", evidence, tokens, outcome="unavailable")
        problem = _problem(res, timeout_s)
        if problem:
            evidence["attempts"].append(_attempt_record(code, res, problem=problem))
            feedback = problem
            continue
        last_answer = answer_line(res)
        index, how = match_option(last_answer, item.choices)
        evidence["attempts"].append(_attempt_record(code, res, last_answer))
        evidence.update(code=code, stdout=res.stdout[-EVIDENCE_CHARS:], stderr=res.stderr[-EVIDENCE_CHARS:],
                        result=last_answer, matched_option=LETTERS[index] if index is not None else None,
                        matched_by=how)
        if index is None:
            feedback = (f"it printed {last_answer[:80]!r}, which matches none of the options; check the "
                        "computation and print only the final value")
            continue
        return _matched_verdict(ctx, task, item, last_answer, index, evidence, tokens)
    if last_answer:
        return _unmatched_verdict(ctx, task, item, last_answer, evidence, tokens)
    # No program ran to an answer: the independent answer check decides, and the PoT attempts stay on record.
    fallback = answer_check(ctx, task, item)
    reason = f"PoT programs failed ({evidence['attempts'][-1]['problem'] if evidence['attempts'] else 'none'}); " \
             f"answer check: {fallback.reason}"
    return Verdict(fallback.passed, reason, "pot", evidence, tokens + fallback.tokens, outcome="error",
                   fallback=fallback)


def _settled(passed: bool, reason: str, evidence: dict[str, Any], tokens: int, outcome: Outcome) -> Verdict:
    """A verdict the program's answer settled: it computed the answer on its own, so error screening weighs it
    above an independent model's pick (`SETTLED_CONFIDENCE`)."""
    return Verdict(passed, reason, "pot", evidence, tokens, outcome=outcome, confidence=SETTLED_CONFIDENCE)


def _matched_verdict(ctx: AgentContext, task: EditTask, item: QAItem, computed: str, index: int,
                     evidence: dict[str, Any], tokens: int) -> Verdict:
    """The verdict when the program's answer is option `index`: the key passes; another option fails, unless
    it is a distractor the original item already had and the edit changed only distractors."""
    if index == item.answer:
        return _settled(True, f"the program computed {computed[:80]!r}, which is the key {item.answer_letter}",
                        evidence, tokens, "match_key")
    if kept_original_distractor(ctx, task, item, item.choices[index]):
        evidence["picked_original_distractor"] = item.choices[index]
        return _settled(True, f"the program computed {computed[:80]!r}, option {LETTERS[index]} "
                        f"({item.choices[index]!r}), a distractor the original item already had; no new "
                        "distractor is the computed value", evidence, tokens, "match_other")
    reason = (f"a program that computes the answer printed {computed[:80]!r}, which is option "
              f"{LETTERS[index]} ({item.choices[index]!r}), not the key {item.answer_letter} "
              f"({item.answer_text!r}); make the key the computed value")
    return _settled(False, reason, evidence, tokens, "match_other")


def _unmatched_verdict(ctx: AgentContext, task: EditTask, item: QAItem, computed: str,
                       evidence: dict[str, Any], tokens: int) -> Verdict:
    """The verdict when the program's last answer matches no option: a fail, unless the edit changed only
    distractors and the computed value is none of the new ones nor an original option the edit removed."""
    original = original_of_distractor_edit(ctx, task, item)  # None unless only distractors changed
    removed = removed_option(original, item, match_option(computed, original.choices)[0]) if original else None
    if removed is not None:
        evidence["computed_removed_option"] = removed
        return _settled(False, f"the program computed {computed[:80]!r}, the original option {removed!r}, "
                        "which this rewrite removes: dropping the option an independent solver picks may drop "
                        "the right answer", evidence, tokens, "no_match")
    if original is not None:
        evidence["no_new_distractor_matched"] = True
        return _settled(True, f"the program computed {computed[:80]!r}, which matches no option; the edit "
                        "changed only distractors and none of the new ones is the computed value",
                        evidence, tokens, "no_match")
    reason = (f"a program that computes the answer printed {computed[:80]!r}, which matches no option; "
              f"the key {item.answer_letter} ({item.answer_text!r}) may be wrong or the options miss the answer")
    return _settled(False, reason, evidence, tokens, "no_match")
