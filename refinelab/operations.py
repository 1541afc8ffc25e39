"""The operation registry: the one place each edit operation is defined.

Every other part of RefineLab reads an operation's facts from here — the planner its cost and success
priors and the quality terms it moves, the refiner its prompt, its output schema and how it drafts
(`batched`, `measured_first`, `multi_draft`), the validator whether and how its result is checked
(`validated`, `measure`, `needs_fix_check`, `may_change_only_distractors`), the graph what a commit does and
which edits settle an item's suspected error (`clears_error`), the CLI which names exist — the way a
distilabel `Task` owns its template, its declared columns and its parsing. A decision about operations
asks the operation (`op.calls_model`, `op.creates_item`, `op.batched`, …) instead of comparing its name.

What the registry does not hold is an operation's own code, which lives in the layers that can run it
(this module sits at the bottom and imports none of them): the template variables each writer prompt
reads (agents/refiner.py, `PROMPT_VARIABLES`), what each output schema is turned into (agents/candidates.py,
agents/distractor_rewrite.py), the panel's key move a fix tries first (agents/key_correction.py), the fix
evidence bar (agents/validation/fix_evidence.py), calibrate's drafts (agents/calibration.py), and which
items each operation may be bought for and what it is expected to change (planner/problem.py,
`_CandidateMaker`, one rule per operation). Those are keyed by operation, or reached through the flags
here; a new operation adds its entry here and its code there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel

from refinelab.model_outputs import DistractorsOut, ItemDraft


class Op(StrEnum):
    """The six operations of the design (values are the names users and stores see)."""

    REMOVE = "remove"
    EXPAND = "expand"
    GENERATE = "generate"
    CALIBRATE = "calibrate"
    REWRITE_DISTRACTORS = "rewrite_distractors"
    FIX = "fix"


class Term(StrEnum):
    """Quality terms of the planner's objective an operation can move."""

    COVERAGE = "coverage"
    DIFFICULTY = "difficulty"
    ERRORS = "errors"
    DISTRACTORS = "distractors"


@dataclass(frozen=True)
class Operation:
    """One operation and everything the rest of the system needs to know about it.

    Priors are per attempt for an item of `length_tokens` tokens (`cost_intercept + cost_slope *
    length`); they assume one writer call (template ~400-600 tokens + item in + rewritten item out) plus
    one validator call. The planner refits them from the pilot and every finished edit.
    """

    op: Op
    description: str
    terms: frozenset[Term]
    cost_intercept: float  # prior tokens per attempt at length 0
    cost_slope: float  # prior tokens per token of item length
    success_prior: float  # prior probability that the validator passes an attempt
    success_strength: float = 10.0  # the prior's weight in pseudo-trials
    prompt: str | None = None  # the prompt template the refiner renders (None: no model call)
    output_schema: type[BaseModel] | None = None  # what the writer is asked to return
    creates_item: bool = False  # writes a new item (seeded by a template item) instead of editing one
    target: Literal["cell", "bucket"] | None = None  # what `EditTask.target` names
    must_change: bool = False  # an attempt that returns the item unchanged is rejected
    keeps_key_text: bool = False  # the correct option's text must survive the edit unchanged
    new_distractors: bool = False  # the distractor set must differ from the original's
    resets_difficulty: bool = False  # the edited item's difficulty is unknown until measured again
    # What must be measured to improve before the edit is committed (agents/validation/measured.py):
    # "p_correct" (the panel's probability of answering correctly moved in the intended direction) or
    # "diversity" (the distractor set's diversity rose) or "cell" (a new item is labelled, as the profiler
    # labels any item, into the domain x skill cell it was written for) or "bucket" (a new item's difficulty,
    # measured as the profile measured every item's, falls in the bucket it was written for). None: the
    # validator's pass is enough.
    measure: Literal["p_correct", "diversity", "cell", "bucket"] | None = None
    pilot_order: int | None = None  # order in which piloted item edits claim items; None: not piloted
    # New items for one target are drafted several to a writer call (`RunOptions.expand_batch`,
    # agents/expand_batches.py), and a round's difficulty aims are dealt over those batches.
    batched: bool = False
    # The first attempt asks no writer: the panel's measurements propose the candidate (a key move) or an
    # abstention (a doubt) (agents/key_correction.py); a writer drafts only on a retry.
    measured_first: bool = False
    # Several drafts are written and the one the panel measures best is kept (agents/calibration.py), when
    # `RunOptions.calibrate_drafts` asks for more than one.
    multi_draft: bool = False
    # A pass must also clear the fix evidence bar (agents/validation/fix_evidence.check_fix), and a refused
    # draft goes to review once its attempts are spent: the item was bought the edit because it is suspect.
    needs_fix_check: bool = False
    # Giving the edit up on an item marks it a defect the planner may remove (planner_agent.failed_fixes):
    # an error that could not be repaired.
    failure_marks_defect: bool = False
    # Committing the edit, or confirming the item unchanged through it (`provenance.confirmed_by`), settles
    # the item's suspected error: it was bought for that error and passed on independent evidence, so the
    # report's expected errors count it 0 (graph/outputs.py). Any other edit keeps the key it was given, and
    # its item keeps the p_error the profile measured (counting 0 there made distractor rewrites look like
    # error fixes).
    clears_error: bool = False
    # The edit may leave the stem and key as they were and change only distractors; the answer check then
    # judges only what it wrote: a solver's pick of a distractor the original had doubts the original, not
    # the edit (agents/validation/answer.original_of_distractor_edit).
    may_change_only_distractors: bool = False

    @property
    def name(self) -> str:
        return self.op.value

    @property
    def calls_model(self) -> bool:
        """Whether the operation asks a model for anything (a removal does not)."""
        return self.prompt is not None

    @property
    def validated(self) -> bool:
        """Whether a candidate goes through the validator (structural checks + the pack's method)."""
        return self.calls_model

    @property
    def removes_item(self) -> bool:
        return not self.calls_model and not self.creates_item

    @property
    def moves_bucket(self) -> bool:
        """Whether the operation edits an existing item into another difficulty bucket (calibrate): its
        planned candidates name that bucket (`CandidateOp.to_bucket`), and the pilot values it by how
        far the move closes the buckets' gaps."""
        return self.target == "bucket" and not self.creates_item

    @property
    def committed_status(self) -> str:
        """The store status an item gets when the edit is committed."""
        return "removed" if self.removes_item else "new" if self.creates_item else "edited"


_ITEM_DRAFT = ItemDraft

REGISTRY: dict[Op, Operation] = {
    Op.REMOVE: Operation(
        Op.REMOVE, "drop an item: a defect not worth fixing (or a failed fix), a duplicate, or, when the user "
        "allows shrinking, an over-represented cell or bucket",
        frozenset({Term.COVERAGE, Term.DIFFICULTY, Term.ERRORS}),
        # no model call: a removal costs no tokens, and is priced at what it costs (issue 15)
        cost_intercept=0.0, cost_slope=0.0, success_prior=0.98, success_strength=50),
    Op.EXPAND: Operation(
        Op.EXPAND, "write a new item for an under-covered domain x skill cell", frozenset({Term.COVERAGE}),
        # success per attempt as measured (evals/results): 6 of 28 planned expands committed with the default
        # labeller, 21 of 43 with the exemplars, two attempts each (jsd_curve_measured / jsd_curve_exemplars);
        # priced at 0.75 before, the planner bought expands that mostly came back unplaced. Tokens per attempt
        # as measured (writer, answer check, key check): 564 on the 149 attempts of jsd_curve_100k, with no
        # dependence on the template's length (least squares: 567 + 0.0 x tokens); priced at 1100 + 3 x
        # tokens before, 2.4x that, so a first round without a pilot bought under half what it could afford
        cost_intercept=600, cost_slope=0.0, success_prior=0.2, prompt="refine_expand",
        output_schema=_ITEM_DRAFT, creates_item=True, target="cell", measure="cell", pilot_order=3, batched=True),
    Op.GENERATE: Operation(
        Op.GENERATE, "write a new item aimed at an under-filled difficulty bucket", frozenset({Term.DIFFICULTY}),
        # success per attempt, measured into its bucket (measure="bucket"): 0 of 9 planned generates committed
        # in two demo-sized runs, every measured draft easy for the judge (evals/results/
        # demo_yield_other_slice_c.md, README demo); 0.6 before, when nothing measured where new items landed
        cost_intercept=1200, cost_slope=3.0, success_prior=0.1, prompt="refine_generate",
        output_schema=_ITEM_DRAFT, creates_item=True, target="bucket", measure="bucket", pilot_order=4),
    Op.CALIBRATE: Operation(
        Op.CALIBRATE, "rewrite stem/distractors to move an item to a neighbouring difficulty bucket",
        # priced for three drafts measured by the panel (RunOptions.calibrate_drafts); the pilot refits it
        # success per attempt as measured: 2 of 15 planned calibrations committed (calibrate_swaps.md)
        frozenset({Term.DIFFICULTY}), cost_intercept=2400, cost_slope=6.0, success_prior=0.1,
        prompt="refine_calibrate", output_schema=_ITEM_DRAFT, target="bucket", must_change=True,
        # the key's text stays: a 1.5B writer asked for "harder" otherwise rewrote the key into a wrong one,
        # and a measured drop in p(correct) cannot tell "harder" from "now mis-keyed"
        keeps_key_text=True, resets_difficulty=True, measure="p_correct", pilot_order=2, multi_draft=True,
        may_change_only_distractors=True),
    Op.REWRITE_DISTRACTORS: Operation(
        Op.REWRITE_DISTRACTORS, "replace weak, duplicate or giveaway distractors", frozenset({Term.DISTRACTORS}),
        # success per attempt as measured: 35 of 40 rewrites committed in 54 attempts (distractors_bar.md)
        cost_intercept=500, cost_slope=1.5, success_prior=0.65, prompt="refine_rewrite_distractors",
        output_schema=DistractorsOut, must_change=True, keeps_key_text=True, new_distractors=True,
        measure="diversity", pilot_order=1, may_change_only_distractors=True),
    Op.FIX: Operation(
        Op.FIX, "correct a wrong key or repair an unclear / multi-answer / no-answer item",
        frozenset({Term.ERRORS}), cost_intercept=1000, cost_slope=3.5, success_prior=0.7, prompt="refine_fix",
        output_schema=_ITEM_DRAFT, pilot_order=0, measured_first=True, needs_fix_check=True,
        failure_marks_defect=True, clears_error=True),
}

#: Every operation name, in registry order (the CLI's choices, the default set a run may buy).
OPERATION_NAMES: tuple[str, ...] = tuple(op.value for op in REGISTRY)
#: Operations that write new items (the others edit or remove an existing item, at most one per item).
NEW_ITEM_OPS: tuple[Op, ...] = tuple(op for op, spec in REGISTRY.items() if spec.creates_item)


def operation(name: Op | str) -> Operation:
    """The registry entry for `name`; a clear error for an unknown one."""
    try:
        return REGISTRY[Op(name)]
    except ValueError:
        raise ValueError(f"unknown operation {name!r}; choose from {', '.join(OPERATION_NAMES)}") from None


_NEW_ITEM_NAMES = frozenset(op.value for op in NEW_ITEM_OPS)
_ERROR_CLEARING_NAMES = frozenset(op.value for op, spec in REGISTRY.items() if spec.clears_error)


def writes_new_item(name: str) -> bool:
    """Whether the operation recorded under `name` (in a store or a changelog) wrote a new item."""
    return name in _NEW_ITEM_NAMES


def cleared_error(name: str | None) -> bool:
    """Whether the operation an item's provenance names (`created_by` or `confirmed_by`) settled its suspected
    error (`Operation.clears_error`); "original", "review" and None name no operation and settle nothing."""
    return name in _ERROR_CLEARING_NAMES
