"""The validator agent's entry points: `validate` an edit's candidate, and `check_original` an existing item
for profiling (error screening stores its verdict as the `validator` diagnostic,
`metrics.error_checks.validator_diagnostic`).

Structural checks come first; then the model-based method the item's domain pack names (`routing`):
`answer` (an independent model must pick the key), `pot` (Python computing the answer, run in the
sandbox), `rag` (retrieved passages judge the key) — or, when the pack lists `tools:`, the one of them
the router picks (`tools`: built-ins, LangChain tools, entry points). Every verdict is a `state.Verdict`: its
typed `outcome` says what the method concluded, its evidence what that rests on; a failure carries a reason
the refiner can act on. Operations that name a `measure` are committed only when it shows the
improvement (validation/measured.py).
"""

from __future__ import annotations

from refinelab.agents.context import AgentContext
from refinelab.agents.validation.answer import answer_check
from refinelab.agents.validation.fix_evidence import check_fix
from refinelab.agents.validation.measured import measured, place_new_item, places_new_item
from refinelab.agents.validation.routing import available_validators, choose_method
from refinelab.agents.validation.structural import structural_problems
from refinelab.agents.validation.tools import tools_check
from refinelab.errors import ConfigError
from refinelab.operations import operation
from refinelab.schema import QAItem
from refinelab.state import CHECK_ROUND, Candidate, EditTask, Verdict


def validate(ctx: AgentContext, task: EditTask, candidate: Candidate) -> Verdict:
    """The verdict on an edit's candidate: structural checks, then the pack's method (or the answer check)."""
    if not operation(task.operation).validated:
        return Verdict(True, f"{task.operation} needs no validation", "none")
    if candidate.abstained:  # the refiner declined on the evidence: a person decides, no retry
        # the reason keeps its ABSTAINED prefix: a validation re-run after a crash reads it back from the
        # store (`attempt_error`) and must see the same abstention
        return Verdict(False, candidate.error, "abstain", {"needs_review": True, "abstained": True})
    if candidate.item is None or candidate.error:
        return Verdict(False, candidate.error or "no candidate", "structural")
    problems = structural_problems(ctx, task, candidate.item)
    if problems:
        return Verdict(False, "structural checks failed: " + "; ".join(problems), "structural",
                       {"problems": problems})
    placement = None
    if places_new_item(ctx, task):  # a new item in a covered cell helps nothing: refused before paid checks
        placement = place_new_item(ctx, task, candidate.item)
        if not placement.improved:
            return Verdict(False, placement.reason, "measured", {"measured": placement.evidence}, placement.tokens)
    verdict = _method_verdict(ctx, task, candidate.item)
    if operation(task.operation).needs_fix_check:
        try:
            original = ctx.store.item(task.item_id)
        except KeyError:
            return verdict
        verdict = check_fix(ctx, original, candidate.item, verdict)
    return measured(ctx, task, candidate.item, verdict, placement)


def _method_verdict(ctx: AgentContext, task: EditTask, item: QAItem) -> Verdict:
    """The pack's method on an edit's candidate, with a note in its evidence when the answer check stood in
    for the method the pack asked for: the edit's record then says why its check is not the pack's."""
    verdict = _run_method(ctx, task, item)
    wanted = ctx.pack(item).options.get("validator", "answer")
    if wanted != "answer" and not ctx.pack(item).tools and choose_method(ctx, item) == "answer":
        verdict.evidence["note"] = f"pack asked for {wanted!r}, not available here; used the answer check"
    return verdict


def _run_method(ctx: AgentContext, task: EditTask, item: QAItem) -> Verdict:
    """The one dispatch of the model-based check, shared by edits and profiling so both route an item
    alike: the router among the pack's `tools:` when it lists any, else the pack's method (`choose_method`),
    the answer check when that is unavailable."""
    if ctx.pack(item).tools:  # the pack names its tools: the router chooses among them
        return tools_check(ctx, task, item)
    method = choose_method(ctx, item)
    if method == "answer":
        return answer_check(ctx, task, item)
    verdict = available_validators(ctx)[method](ctx, task, item)
    if not isinstance(verdict, Verdict):  # a plugged-in method (`hooks.validators`) that returned another shape
        raise ConfigError(f"validator {method!r} returned a {type(verdict).__name__} for item {item.id!r}; it must "
                          "return a refinelab.state.Verdict")
    return verdict


def check_original(ctx: AgentContext, item: QAItem) -> Verdict:
    """Validate an existing (suspect) item with its pack's method, for profiling. No structural checks:
    profiling runs those itself."""
    task = EditTask(edit_id=f"check:{item.id}", item_id=item.id, operation="check", round=CHECK_ROUND)
    return _run_method(ctx, task, item)

