"""The refiner agent: turns an edit task into a candidate item.

What each operation asks for comes from the operation registry: its prompt (a file in prompts/, chosen by
the item's domain pack), its output schema, and the rules a candidate must meet (`must_change`,
`keeps_key_text`, `new_distractors`). `prompt_variables` holds the per-operation template variables. A
rejected attempt comes back with the validator's reason as `feedback`; the raw text of every attempt is
kept in the run store by the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from pydantic import BaseModel

from refinelab.agents.calibration_drafts import (
    MeasuredDraft,
    best_draft,
    measure_drafts,
    p_correct,
    panel_p_correct,
    stored_panel,
)
from refinelab.agents.calibration_swaps import distractor_swaps
from refinelab.agents.candidate_probe import OVERGENERATE, CandidateProbe, probe_assembled, probe_candidates
from refinelab.agents.context import AgentContext
from refinelab.agents.difficulty_aims import split_aims
from refinelab.agents.expand_batches import BATCH_PROMPT, DraftShare, DraftSlot, batch_prompt_usable
from refinelab.agents.key_correction import key_doubted, panel_key_move
from refinelab.agents.style_examples import style_examples, subject_examples
from refinelab.errors import LLMCallFailed, validation_problems
from refinelab.metrics.distractors import (
    DistractorConfig,
    distractor_diversity,
    functional_share,
    panel_pick_rates,
    select_distractors,
)
from refinelab.metrics.error_checks import distractors_replaceable
from refinelab.model_outputs import DistractorsOut, ItemDraft
from refinelab.operations import Op, operation
from refinelab.planner.problem import DifficultyBuckets, targets_from_resolved
from refinelab.schema import Cell, Provenance, QAItem, normalise_text, strip_option_labels
from refinelab.state import ABSTAINED, Candidate, EditTask
from refinelab.tools.ledger import CallTag
from refinelab.tools.llm import CallResult
from refinelab.tools.together import run_together

NONFUNCTIONAL_RATE = DistractorConfig().nonfunctional_rate

BUCKET_HINTS = {
    "easy": "It should be answerable by most students who studied the basics (recall of a core fact).",
    "medium": "It should need understanding or one step of reasoning, not just recall.",
    "hard": "It should need several steps of reasoning or specialist knowledge; distractors should be close.",
}


def _examples(ctx: AgentContext, subject: str, exclude: str, limit: int = 2) -> list[QAItem]:
    return subject_examples(ctx.store.items(("kept", "edited")), subject, exclude, limit)



def _draft_to_item(draft: ItemDraft, task: EditTask, base: QAItem) -> QAItem:
    """Build the candidate; schema validation (distinct options, key in range) raises ValueError."""
    op = operation(task.operation)
    new = op.creates_item
    item_id = f"{task.edit_id}" if new else base.id
    subject, domain, skill = base.subject, base.domain, base.skill
    if op.target == "cell":  # written for the cell: its domain, and the template's subject only if it is there
        cell = Cell.parse(task.target)
        skill = cell.skill
        if cell.domain and cell.domain != base.domain:
            subject, domain = "", cell.domain
    return QAItem(
        id=item_id, question=draft.question.strip(), choices=strip_option_labels([c.strip() for c in draft.choices]),
        answer=draft.answer_index, subject=subject, domain=domain, skill=skill,
        difficulty=None if new or op.resets_difficulty else base.difficulty,
        metadata={**({} if new else base.metadata), "rationale": draft.rationale},
        provenance=Provenance(source=base.provenance.source, created_by=task.operation,
                              parent_id=base.id, run_id=None),
    )


def _distractors(item: QAItem) -> set[str]:
    return {normalise_text(c) for i, c in enumerate(item.choices) if i != item.answer}


def _expand_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    """The plan's difficulty aims for the task's batch (`EditTask.aims`, agents/difficulty_aims.py): a batch
    prompt reads `aims`, one per draft; a single draft (a retry, or a batch drafted one by one) its own."""
    cell = Cell.parse(task.target)
    slot = DraftSlot.parse(task.batch)
    aims = split_aims(task.aims)
    position = slot.position if slot is not None else 0
    bucket = aims[position] if position < len(aims) else ""
    return {"subject": base.subject, "domain": cell.domain or base.domain, "skill": cell.skill,
            "skill_description": ctx.skills.skills.get(cell.skill, ""),
            "skill_writing": ctx.skills.writing.get(cell.skill, ""),
            "examples": style_examples(ctx.options.expand_examples, ctx.store.items(("kept", "edited")),
                                       base.subject, cell.domain or base.domain, cell.skill, base.id),
            "aims": aims, "aim_hints": {name: BUCKET_HINTS[name] for name in dict.fromkeys(aims) if name in BUCKET_HINTS},
            "bucket": bucket, "bucket_hint": BUCKET_HINTS.get(bucket, "")}


def _generate_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    return {"subject": base.subject, "bucket": task.target, "bucket_hint": BUCKET_HINTS.get(task.target, ""),
            "examples": _examples(ctx, base.subject, base.id, 1)}


def run_buckets(ctx: AgentContext) -> DifficultyBuckets:
    """The run's difficulty buckets as the planner reads them (`targets_from_resolved`; the default thirds
    when they are unusable): what calibrate and generate aim at, and what their measurements are read
    against."""
    try:
        return targets_from_resolved(ctx.targets)[1]
    except ValueError:
        return DifficultyBuckets()


def calibrate_direction(ctx: AgentContext, base: QAItem, target: str) -> str:
    """"harder" when `target` is a harder bucket than the item's own (by the run's bucket names and edges),
    else "easier"; what calibrate asks the writer for and what its measurement must show."""
    buckets = run_buckets(ctx)
    names = buckets.names
    here = names.index(buckets.bucket(base.difficulty if base.difficulty is not None else 0.5))
    return "harder" if target in names and names.index(target) > here else "easier"


def _calibrate_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    return {"item": base, "bucket": task.target, "direction": calibrate_direction(ctx, base, task.target)}


def pick_rates(ctx: AgentContext, item: QAItem) -> list[float] | None:
    """The panel's pick rate per option of `item` from its stored panel diagnostic (option probabilities
    where measured, else answer shares: `panel_pick_rates`); None without either."""
    panel = ctx.store.diagnostic(item.id, "panel")
    measured = panel_pick_rates(panel.evidence, len(item.choices)) if panel is not None else None
    return measured.rates if measured is not None else None


def weak_distractors(item: QAItem, rates: list[float] | None) -> list[str]:
    """Distractors the panel never (or almost never) picks at pick `rates` (`pick_rates`); all of them when
    nothing was measured."""
    others = [i for i in range(len(item.choices)) if i != item.answer]
    if rates is None:
        return [item.choices[i] for i in others]
    return [item.choices[i] for i in others if rates[i] < NONFUNCTIONAL_RATE]


def _rewrite_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    return {"item": base, "weak": weak_distractors(base, pick_rates(ctx, base)),
            "n_candidates": OVERGENERATE * (len(base.choices) - 1)}


def _fix_variables(ctx: AgentContext, task: EditTask, base: QAItem) -> dict[str, Any]:
    error = ctx.store.diagnostic(base.id, "error")
    label = error.evidence.get("error_label") if error else None
    # "ok" is screening's label for an item it did not flag; a fix bought on the panel's doubt alone got
    # "This question was flagged: ok." and the 1.5B writer returned that sentence as the new stem
    problem = label if label and label != "ok" else "its key may be wrong, or the question unclear"
    return {"item": base, "problem": problem}


#: The template variables of each operation that calls the writer (its prompt is in the registry).
PROMPT_VARIABLES: dict[Op, Callable[[AgentContext, EditTask, QAItem], dict[str, Any]]] = {
    Op.EXPAND: _expand_variables, Op.GENERATE: _generate_variables, Op.CALIBRATE: _calibrate_variables,
    Op.REWRITE_DISTRACTORS: _rewrite_variables, Op.FIX: _fix_variables,
}


class NoImprovement(ValueError):
    """A candidate that could be built but cannot pass its measurement: said before any validation."""


def no_new_candidate(count: int, reasons: list[str]) -> str:
    """The refusal, and the writer's feedback on its retry, when none of its `count` candidates survives
    (`reasons`: why each was dropped, "" for one the selection passed over). Said as it is: the demo's
    first econometrics-1 rewrite wrote nine rewordings of the key, all dropped as paraphrases, and was
    refused as "the edit changed nothing", which told the retry nothing it could act on."""
    paraphrases = sum(r.startswith("paraphrases the key") for r in reasons)
    if paraphrases > count // 2:
        return (f"{paraphrases} of the {count} new wrong options reword the correct answer (a second right "
                "answer, not a distractor); write options that state different, wrong ideas, not variations "
                "of the correct answer")
    kinds = sorted({r.split(" (")[0] for r in reasons if r})
    return (f"none of the {count} new wrong options could be used ({'; '.join(kinds) or 'none adds diversity'}); "
            "write different wrong options")


def distractors_to_item(ctx: AgentContext, out: DistractorsOut, task: EditTask, base: QAItem,
                        probe: CandidateProbe, refuse: dict[str, str], rates: list[float] | None) -> QAItem:
    """The item with its distractor slots refilled: the stem and the key (text and position) are the
    original's by construction. The pool is the writer's new candidates and the original distractors;
    `select_distractors` drops paraphrases of the key and chooses, among the sets holding at least one new
    candidate, the most diverse and plausible one. A set less diverse than the original's fails here
    (`NoImprovement`): the validator's measurement would refuse it after paying for an answer check.

    With a measured `probe` (agents/candidate_probe.py) the judge's probabilities are the new candidates'
    plausibility, and one it clearly prefers to the key is dropped; the originals are rated by the panel's
    pick rates, on the same scale. `refuse` (text -> reason) are candidates already refused on other
    evidence (the judge preferring one to the key on an assembled set, `choose_distractors`). `rates` are
    the original's pick rates (`pick_rates`), read once by the caller for every set it tries."""
    slots = [i for i in range(len(base.choices)) if i != base.answer]
    originals = [base.choices[i] for i in slots]
    weak = set(weak_distractors(base, rates))
    uniform = probe.even_share()
    refused: dict[str, str] = {}
    new: list[str] = []
    for text in (str(d).strip() for d in out.distractors):
        if text in refuse:
            refused[text] = refuse[text]
        elif (p := probe.preferred_to_key(text)) is not None:
            refused[text] = f"the judge prefers it to the key ({p:.2f} vs {probe.p_key:.2f})"
        else:
            new.append(text)
    pool = new + [o for o in originals if o not in weak] + [o for o in originals if o in weak]
    plausibility: list[float | None] | None = None
    if not probe.not_measured:
        plausibility = []
        for text in pool:
            if (p := probe.measured(text)) is not None:  # half an even share counts fully
                plausibility.append(min(1.0, p / (0.5 * uniform)))
            elif rates is not None and text in originals:
                plausibility.append(min(1.0, rates[base.choices.index(text)] / NONFUNCTIONAL_RATE))
            else:
                plausibility.append(None)
    before = distractor_diversity(base.choices, base.answer, ctx.embedder())
    choice = select_distractors(base.answer_text, pool, len(slots), ctx.embedder(), exclude=[base.question],
                                known_wrong=originals, plausibility=plausibility, include_one_of=new,
                                above_diversity=before)
    dropped = {**refused, **{pool[i]: why for i, why in choice.dropped.items()}}
    if len(choice.chosen) < len(slots):
        reasons = sorted(set(dropped.values()))
        raise ValueError(f"only {len(choice.chosen)} usable distractors for {len(slots)} slots "
                         f"(dropped: {'; '.join(reasons) or 'none'}); write more, different wrong options")
    if out.distractors and not any(index < len(new) for index in choice.chosen):
        raise NoImprovement(no_new_candidate(len(out.distractors), [dropped.get(str(d).strip(), "")
                                                                     for d in out.distractors]))
    choices = list(base.choices)
    for slot, index in zip(slots, choice.chosen, strict=True):
        choices[slot] = pool[index]
    if {normalise_text(c) for c in choices} != {normalise_text(c) for c in base.choices} \
            and before is not None and choice.diversity is not None and choice.diversity < before:
        raise NoImprovement(f"distractor diversity would not rise ({before:.3f} -> at best {choice.diversity:.3f} "
                            "with these candidates); write wrong options that differ more from each other and "
                            "from the current ones")
    return QAItem(
        id=base.id, question=base.question, choices=choices, answer=base.answer, subject=base.subject,
        domain=base.domain, skill=base.skill, difficulty=base.difficulty,
        metadata={**base.metadata, "distractor_choice": {
            "candidates": len(out.distractors), "kept_original": sum(pool[i] in base.choices for i in choice.chosen),
            "diversity_before": before, "diversity_chosen": choice.diversity,
            "dropped": dropped, "probe": probe.as_evidence()}},
        provenance=Provenance(source=base.provenance.source, created_by=task.operation, parent_id=base.id,
                              run_id=None),
    )


class NoSetStands(NoImprovement):
    """Every distractor set tried was refused on the judge's measurement of the assembled item (a new option
    preferred to the key, or fewer working distractors than the original); carries the probes' tokens,
    which the attempt still spent."""

    def __init__(self, message: str, tokens: int) -> None:
        super().__init__(message)
        self.tokens = tokens


MAX_RESELECTIONS = 2  # new distractor sets chosen after the judge refused one on the assembled item


def choose_distractors(ctx: AgentContext, out: DistractorsOut, task: EditTask, base: QAItem,
                       probe: CandidateProbe) -> tuple[QAItem, int]:
    """The rewrite's distractor set, measured as it will be asked, and the tokens that measurement cost.

    The set `distractors_to_item` chooses is asked of the judge in the panel's orders (`probe_assembled`)
    and the next-best set chosen, at most `MAX_RESELECTIONS` times, when
    - a new distractor is preferred to the key there: the validator's solver is not asked to pass a set
      the judge already reads as having a second right answer;
    - the set has fewer working distractors (judge's probability >= `NONFUNCTIONAL_RATE`) than the
      original had on the panel's stored probabilities (`fewer_working`): a rewrite that leaves students
      fewer tempting wrong options has not improved the item, however far apart its options are.
    When every set tried is refused the attempt fails with the last reason, and the writer's retry is
    told it. Without stored pick rates (nothing measured the original) only the first rule applies.

    A set that stands but has a new distractor no one picks on the assembled item (an idle one, under
    `NONFUNCTIONAL_RATE`) is kept aside and the next set is tried without it, while reselections are
    left: the rewrite was bought to give students wrong options worth picking. The set with the most
    working distractors among those that stood is chosen (the later one on a tie). In the cold distractor
    evals the only rewritten items with idle distractors were of this kind (marketing items whose key the
    judge picks at 0.9 and more), and taking the first set that stood left "functional distractors" flat
    in one of two runs."""
    refused: dict[str, str] = {}
    tokens = 0
    last_reason = ""  # why the last set tried was refused, for the failure below
    stood: tuple[QAItem, float] | None = None  # the best set that stood so far, and its working share
    rates = pick_rates(ctx, base)  # the original's, the same for every set tried
    working_before = functional_share(rates, base.answer, NONFUNCTIONAL_RATE) if rates is not None else None
    for _ in range(MAX_RESELECTIONS + 1):
        try:
            item = distractors_to_item(ctx, out, task, base, probe, refused, rates)
        except ValueError:
            if not refused:
                raise
            break  # no other set without the refused ones: the last refusal is the attempt's reason
        if refused and _distractors(item) == _distractors(base):
            break  # only the original distractors are left: no rewrite without the refused ones
        assembled = probe_assembled(ctx, task, base, item)
        tokens += assembled.tokens
        item.metadata["distractor_choice"]["assembled_probe"] = assembled.as_evidence()
        if assembled.preferred is not None:
            text = item.choices[assembled.preferred]
            lead = f"{assembled.probs[assembled.preferred]:.2f} vs the key's {assembled.probs[item.answer]:.2f}"
            refused[text] = f"on the assembled item the judge prefers it to the key ({lead})"
            last_reason = (f"the judge prefers a new wrong option to the key ({text!r}: {lead}); write wrong "
                           "options that are clearly wrong, not partly true statements or synonyms of the correct "
                           "answer")
            continue
        weaker = fewer_working(base, item, assembled.probs, working_before)
        if weaker is not None:
            index, why = weaker
            refused[item.choices[index]] = why
            last_reason = (f"the set has fewer working distractors than the original ({why}); write wrong options "
                           "a student who half-knows the topic would pick")
            continue
        working = functional_share(assembled.probs, item.answer, NONFUNCTIONAL_RATE) or 0.0
        if stood is None or working >= stood[1]:
            stood = (item, working)
        idle = idle_new_distractor(base, item, assembled.probs)
        if idle is None:
            return stood[0], tokens
        refused[item.choices[idle]] = (f"on the assembled item no one picks it (p {assembled.probs[idle]:.3f}); the "
                                       "set stood, and the next one is tried without it")
    if stood is not None:
        return stood[0], tokens
    raise NoSetStands(f"no distractor set stood on the assembled item ({MAX_RESELECTIONS + 1} at most tried): "
                      f"{last_reason}", tokens)


def idle_new_distractor(base: QAItem, item: QAItem, probs: list[float]) -> int | None:
    """The least picked new distractor of `item` that the judge picks under `NONFUNCTIONAL_RATE` on the
    assembled item (`probs`), or None when every new one works."""
    if len(probs) != len(item.choices):
        return None
    known = {normalise_text(c) for c in base.choices}
    idle = [i for i in range(len(item.choices)) if i != item.answer and normalise_text(item.choices[i]) not in known
            and probs[i] < NONFUNCTIONAL_RATE]
    return min(idle, key=lambda i: probs[i]) if idle else None


def fewer_working(base: QAItem, item: QAItem, probs: list[float],
                  working_before: float | None) -> tuple[int, str] | None:
    """When `item`'s share of working distractors (`functional_share` of the assembled probe's `probs`) is
    below `working_before`, the original's on the panel's stored pick rates: the new distractor to refuse,
    and why. That is the least picked new one under `NONFUNCTIONAL_RATE` (it does no work); when every new
    one works, the new one the judge picks most, which drew the original distractors it kept below the rate.
    None when the set has as many working distractors (or nothing was measured)."""
    if working_before is None or len(probs) != len(item.choices):
        return None
    working_after = functional_share(probs, item.answer, NONFUNCTIONAL_RATE)
    if working_after is None or working_after >= working_before:
        return None
    known = {normalise_text(c) for c in base.choices}
    new = [i for i in range(len(item.choices)) if i != item.answer and normalise_text(item.choices[i]) not in known]
    if not new:
        return None
    index = idle_new_distractor(base, item, probs)
    if index is not None:
        return index, (f"on the assembled item no one picks it (p {probs[index]:.3f}) and the set has fewer "
                       "working distractors than the original")
    index = max(new, key=lambda i: probs[i])
    drawn = [item.choices[i] for i in range(len(item.choices))
             if i != item.answer and i not in new and probs[i] < NONFUNCTIONAL_RATE]
    return index, (f"on the assembled item it draws the picks (p {probs[index]:.3f}) from original distractors "
                   f"now under {NONFUNCTIONAL_RATE:.2f} ({', '.join(map(repr, drawn))}), so the set has fewer "
                   "working distractors than the original")


def draft_to_item(parsed: BaseModel, task: EditTask, base: QAItem) -> QAItem:
    """The candidate from a writer's whole-item draft (a distractor list goes through `choose_distractors`,
    which measures it)."""
    if not isinstance(parsed, ItemDraft):
        raise ValueError(f"no candidate builder for {type(parsed).__name__}")
    return _draft_to_item(parsed, task, base)


def prompt_for(ctx: AgentContext, task: EditTask, base: QAItem) -> list[dict[str, str]]:
    """The writer's messages for this attempt: the operation's template with its variables."""
    op = operation(task.operation)
    if op.prompt is None:
        raise ValueError(f"operation {op.name!r} asks no model for a candidate")
    variables = PROMPT_VARIABLES[op.op](ctx, task, base)
    return ctx.pack(base).messages(op.prompt, feedback=task.feedback, n_choices=len(base.choices), **variables)


def batched_draft(ctx: AgentContext, task: EditTask, base: QAItem, tag: CallTag) -> DraftShare | None:
    """This expand's draft from its batch (agents/expand_batches.py): its own position on a first attempt, a
    spare on a retry. None when it has no batch, no spare is left, or its pack words the single prompt its
    own way: then it asks the writer for its own draft."""
    slot = DraftSlot.parse(task.batch)
    pack = ctx.pack(base)
    if slot is None or not batch_prompt_usable(pack):
        return None
    if task.attempt > 0:
        return ctx.draft_batches.spare(slot)
    return ctx.draft_batches.share(ctx.client("writer"), slot, lambda: pack.messages(
        BATCH_PROMPT, count=slot.drafts, n_choices=len(base.choices), **_expand_variables(ctx, task, base)), tag)


def refine(ctx: AgentContext, task: EditTask) -> Candidate:
    """Ask the writer model for a candidate. Never returns a silent None: failures carry a reason."""
    base = ctx.store.item(task.item_id)
    op = operation(task.operation)
    if op.op is Op.FIX and task.attempt == 0:  # measured, not written: see key_correction.py
        if (moved := panel_key_move(ctx, base)) is not None:
            return Candidate(moved, moved.metadata["rationale"], 0)
        if (doubt := key_doubted(ctx, base)) is not None:
            return Candidate(None, "", 0, error=ABSTAINED + doubt)
    if op.new_distractors and not distractors_replaceable(base.choices):
        return Candidate(None, "", 0, error="the options refer to each other (e.g. 'A and D', 'all of the above'): "
                         "replacing distractors would change what the key says; not rewritten")
    tag = CallTag(node=task.ledger_node("refine"), operation=task.operation, item_id=task.item_id)
    if op.op is Op.CALIBRATE and ctx.options.calibrate_drafts > 1:
        return refine_calibration(ctx, task, base, prompt_for(ctx, task, base), tag)
    batched = batched_draft(ctx, task, base, tag) if op.op is Op.EXPAND else None
    if batched is not None and batched.draft is not None:
        parsed, text, tokens = batched.draft, batched.text, batched.tokens
    else:  # no batch, or its call failed (its share of that call is still this edit's)
        spent = batched.tokens if batched is not None else 0
        try:
            # each new item is its own draw: two expands from one template into one cell send the same
            # prompt, and without a sample of their own the second replayed the first's draft (a duplicate)
            result = ctx.client("writer").structured(prompt_for(ctx, task, base), op.output_schema or ItemDraft, tag,
                                                     sample=task.edit_id if op.creates_item else "")
        except LLMCallFailed as exc:
            return Candidate(None, "\n---\n".join(exc.raw_outputs), exc.tokens + spent,
                             error=f"writer output unusable: {exc}")
        parsed, text, tokens = result.parsed, result.text, result.tokens + spent
    try:
        if isinstance(parsed, DistractorsOut):  # measured before and after they are chosen
            probe = probe_candidates(ctx, task, base, [str(d) for d in parsed.distractors])
            tokens += probe.tokens
            item, measuring = choose_distractors(ctx, parsed, task, base, probe)
            tokens += measuring
        else:
            item = draft_to_item(parsed, task, base)
    except NoSetStands as exc:
        return Candidate(None, text, tokens + exc.tokens, error=str(exc))
    except NoImprovement as exc:
        return Candidate(None, text, tokens, error=str(exc))
    except ValueError as exc:
        return Candidate(None, text, tokens, error=f"structurally invalid: {validation_problems(exc)}")
    if op.must_change and item.same_text(base):
        return Candidate(item, text, tokens,
                         error="the edit changed nothing; rewrite as asked" + (
                             " (replace the wrong options with new ones)" if op.new_distractors else ""))
    if op.keeps_key_text and item.answer_text.strip() != base.answer_text.strip():
        return Candidate(item, text, tokens,
                         error="the correct option was changed; keep its text exactly" + (
                             " and only replace distractors" if op.new_distractors else
                             " and change the question and the other options"))
    if op.new_distractors and _distractors(item) == _distractors(base):
        return Candidate(item, text, tokens, error="the distractors are unchanged; replace them")
    return Candidate(item, text, tokens)


def refine_calibration(ctx: AgentContext, task: EditTask, base: QAItem, messages: list[dict[str, str]],
                       tag: CallTag) -> Candidate:
    """Calibrate as over-generate-then-select, the least invasive edit first: distractor swaps (stem and key
    kept, agents/calibration_swaps.py) are measured first; only when none moved the item far enough does
    the writer draft `options.calibrate_drafts` stem rewrites (agents/calibration_drafts.py). Every measured
    draft competes, and the one whose p(correct) moved furthest in the intended direction is the candidate."""
    direction = calibrate_direction(ctx, base, task.target)
    stored = stored_panel(ctx, base)
    tokens = 0
    if stored is not None:
        p_before = p_correct(stored)
    else:
        p_before, tokens = panel_p_correct(ctx, task, base)
    measured: list[MeasuredDraft] = []
    texts: list[str] = []  # the writer text each measured draft came from, in the order of `measured`
    n_swaps = 0  # the first `n_swaps` of `measured` are distractor swaps, the rest stem drafts
    swap_problem = ("distractor swaps off (options.calibrate_swaps)" if not ctx.options.calibrate_swaps else
                    "not tried: the panel gave no option probabilities to measure swaps by")
    if ctx.options.calibrate_swaps and p_before is not None:
        swaps = distractor_swaps(ctx, task, base, direction, stored)
        tokens += swaps.tokens
        swap_problem = swaps.problem
        for draft in measure_drafts(ctx, task, swaps.items):
            tokens += draft.tokens
            measured.append(draft)
            texts.append(swaps.raw)
        n_swaps = len(measured)
        best, _ = best_draft(measured, p_before, direction) if measured else (None, "")
        if best is not None:
            return _calibration_candidate(measured, best, texts, tokens, p_before, direction, swaps=len(measured),
                                          asked=1, usable=len(measured), problems=[])
    stems = _stem_drafts(ctx, task, base, messages, tag)
    tokens += stems.tokens
    if not stems.drafts and not measured:
        return Candidate(stems.rejected, stems.raw, tokens, error=max(set(stems.problems), key=stems.problems.count))
    for draft in measure_drafts(ctx, task, [item for item, _ in stems.drafts]):
        tokens += draft.tokens
        measured.append(draft)
    texts.extend(text for _, text in stems.drafts)
    best, why = (None, "the panel gave no option probabilities for the original item") if p_before is None \
        else best_draft(measured, p_before, direction)
    if best is None and (p_before is None or all(m.p_correct is None for m in measured)):
        # nothing measurable here (e.g. an endpoint without logprobs): the first usable draft goes to the
        # validator unselected, whose own measurement then decides; the metadata says so
        best, why = measured[0], f"not selected: {why or 'the panel could not measure the drafts'}"
    if best is None:
        if swap_problem:
            why = f"{why}; no distractor swap either: {swap_problem}"
        return Candidate(None, stems.raw, tokens, error=why)
    return _calibration_candidate(measured, best, texts, tokens, p_before, direction, swaps=n_swaps, why=why,
                                  asked=len(stems.drafts) + len(stems.problems), usable=len(stems.drafts),
                                  problems=stems.problems)


@dataclass
class _StemDrafts:
    drafts: list[tuple[QAItem, str]]  # usable drafts and the writer text of each
    problems: list[str]  # why each other draft was set aside
    rejected: QAItem | None  # a draft that parsed but was set aside (the single-draft path keeps it too)
    raw: str
    tokens: int


def _stem_drafts(ctx: AgentContext, task: EditTask, base: QAItem, messages: list[dict[str, str]],
                 tag: CallTag) -> _StemDrafts:
    """`options.calibrate_drafts` independent stem rewrites; the unusable ones set aside with their reason."""
    writer = ctx.client("writer")

    def draw(k: int) -> CallResult | LLMCallFailed:
        try:
            return writer.structured(messages, ItemDraft, tag, sample=f"{task.edit_id}:{task.attempt}:{k}")
        except LLMCallFailed as exc:
            return exc

    results = run_together([partial(draw, k) for k in range(ctx.options.calibrate_drafts)])
    tokens, raws, drafts, problems = 0, [], [], []
    rejected: QAItem | None = None
    for result in results:
        if isinstance(result, LLMCallFailed):
            tokens += result.tokens
            raws.extend(result.raw_outputs)
            problems.append(f"writer output unusable: {result}")
            continue
        tokens += result.tokens
        raws.append(result.text)
        try:
            item = draft_to_item(result.parsed, task, base)
        except ValueError as exc:
            problems.append(f"structurally invalid: {validation_problems(exc)}")
            continue
        if item.same_text(base):
            problems.append("the edit changed nothing; rewrite as asked")
            rejected = rejected or item
        elif item.answer_text.strip() != base.answer_text.strip():
            problems.append("the correct option was changed; keep its text exactly and change the question "
                            "and the other options")
            rejected = rejected or item
        else:
            drafts.append((item, result.text))
    return _StemDrafts(drafts, problems, rejected, "\n---\n".join(raws), tokens)


def _calibration_candidate(measured: list[MeasuredDraft], best: MeasuredDraft, texts: list[str], tokens: int,
                           p_before: float | None, direction: str, *, swaps: int, asked: int, usable: int,
                           problems: list[str], why: str = "") -> Candidate:
    """The chosen draft as the candidate, with what was measured in its metadata (`calibration_drafts`):
    `kind` "swap" when it is one of the first `swaps` measured drafts (distractor swaps), else "stem"."""
    chosen = measured.index(best)
    if not why:
        why = f"best of {len(measured)} drafts: measured p(correct) {p_before:.3f} -> {best.p_correct:.3f}"
    item = best.item.model_copy(update={"metadata": {**best.item.metadata, "calibration_drafts": {
        "kind": "swap" if chosen < swaps else "stem", "swaps": swaps, "asked": asked, "usable": usable,
        "set_aside": problems, "direction": direction,
        "p_before": None if p_before is None else round(p_before, 4),
        "p_drafts": [None if m.p_correct is None else round(m.p_correct, 4) for m in measured],
        "chosen": chosen, "why": why}}})
    return Candidate(item, texts[chosen], tokens)
